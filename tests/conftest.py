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
