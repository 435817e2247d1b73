"""Every config file and every sweep file composes, and every job of a sweep plans."""
from __future__ import annotations

import itertools

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from sdexp.paths import CONF_DIR, SWEEPS_DIR
from sdexp.models import BUILTIN_FOLDERS, MODEL_BUILTINS
from sdexp.plan import make_plan

GROUP_OPTIONS = [(g.name, f.stem) for g in sorted(CONF_DIR.iterdir()) if g.is_dir() for f in sorted(g.glob("*.yaml"))]
SWEEPS = sorted(p.stem for p in SWEEPS_DIR.glob("*.yaml"))
OFFLINE = {"source": ("tiny", "tiny_alt")}


def test_there_is_something_to_check():
    assert ("model", "tiny") in GROUP_OPTIONS and "demo" in SWEEPS


@pytest.mark.parametrize("group,option", GROUP_OPTIONS, ids=[f"{g}={o}" for g, o in GROUP_OPTIONS])
def test_group_option_composes(group, option, compose_cfg):
    cfg = compose_cfg([f"{group}={option}"])
    assert cfg[group] is not None


def _sweep_jobs(cfg_with_hydra) -> list[list[str]]:
    params = cfg_with_hydra.hydra.sweeper.params or {}
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    values = [[f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()] if o.is_sweep_override()
              else [f"{o.get_key_element()}={o.get_value_element_as_str()}"] for o in parsed]
    return [list(job) for job in itertools.product(*values)]


# the samplers sweep plans every sampler (about a minute); tests/test_launcher_compose.py composes it by default
PLANNED = [pytest.param(n, marks=pytest.mark.slow) if n == "samplers" else n for n in SWEEPS]


@pytest.mark.parametrize("name", PLANNED)
def test_sweep_file_composes_and_plans(name, compose_cfg):
    cfg = compose_cfg([f"sweep={name}"], return_hydra_config=True)
    jobs = _sweep_jobs(cfg)
    assert jobs, f"sweeps/{name}.yaml sweeps nothing"
    configs = [compose_cfg([f"sweep={name}", *job]) for job in jobs]
    offline = [c for c in configs if c.model.source in (*MODEL_BUILTINS, *BUILTIN_FOLDERS)]   # shipped with sdexp
    plan = make_plan(offline, [j.split("=")[0] for j in jobs[0]])
    assert len(plan.cells) >= len(offline)
    assert plan.grid["x"] is not None
