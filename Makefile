# Two commands do all the set-up on a fresh machine:
#   make demo   creates .venv, installs sdexp, runs sweeps/demo.yaml on the shapes model and scores it
#               against held-out shapes (FD and CMMD on the shapes CLIP, the shapes judge)
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
	$(PY) -m sdexp.shapes.reference results/demo-heldout --prompts conf/prompts/shapes.yaml --count 192
	$(VENV)/bin/sdexp score results/demo metrics=[clip_score,fd_clip,cmmd,shapes_judge] \
	    reference=results/demo-heldout group_by=[cfg,steps]

# The suite runs in one pytest worker per core (pytest-xdist), each test file on one worker so its
# module fixtures are built once, and torch on one thread per worker: two torch processes with two
# threads each on two cores spin against each other and run many times slower.
WORKERS ?= auto
PYTEST := OMP_NUM_THREADS=1 $(PY) -m pytest -q -n $(WORKERS) --dist loadfile

test: install
	$(PYTEST)

test-all: install
	$(PYTEST) -m ''

clean:
	rm -rf $(VENV) *.egg-info
