# Two commands do all the set-up on a fresh machine:
#   make demo   creates .venv, installs sdexp, runs sweeps/demo.yaml on the embedded tiny model
#   make test   creates .venv, installs sdexp with test extras, runs the test suite
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python

.PHONY: install demo test test-all clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]' --config-settings editable_mode=compat
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/sdexp -m sweep=demo

test: install
	$(PY) -m pytest -q

test-all: install
	$(PY) -m pytest -q -m ''

clean:
	rm -rf $(VENV) *.egg-info
