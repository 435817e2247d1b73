"""Shared fixtures: compose the real configs (conf/ + sweeps/) with results pointed at tmp_path."""
from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from sdexp.hydra_setup import register_all
from sdexp.paths import CONF_DIR


@pytest.fixture
def compose_cfg(tmp_path):
    """compose_cfg(overrides) -> the job config Hydra would give sdexp, results under tmp_path."""
    register_all()

    def _compose(overrides=(), return_hydra_config=False):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose("config", overrides=[f"results_root={tmp_path / 'results'}", *overrides],
                           return_hydra_config=return_hydra_config)

    yield _compose
    GlobalHydra.instance().clear()


# A prompt holding HTML and script, to prove the report shows user text as text.
EVIL_PROMPT = '<script>alert(1)</script><b>x</b>" onerror="alert(2)'


@pytest.fixture(scope="session")
def report_sweep(tmp_path_factory):
    """A small sweep rendered once per session with the real engine (2 CFG x 2 seeds x 2 prompts,
    one prompt holding HTML); the sweep builds its grids and report when it ends. Copy the
    folder before changing it."""
    from omegaconf import OmegaConf

    from sdexp.sweep import run_sweep

    register_all()
    root = tmp_path_factory.mktemp("report") / "results"
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfgs = [compose("config", overrides=[f"cfg={c}", "steps=1", "seed=[0,1]", "name=rep",
                                             f"results_root={root}"]) for c in (3, 7)]
    GlobalHydra.instance().clear()
    for cfg in cfgs:
        OmegaConf.update(cfg, "prompts.items", ["a red apple on a table", EVIL_PROMPT])
    return run_sweep(cfgs, ["cfg"], log=lambda *a: None)


def pytest_collection_modifyitems(config, items):
    """`gpu` tests (run by `make test-all`) are skipped where no CUDA device is at hand."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
