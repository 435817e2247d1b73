"""Registration in Hydra's ConfigStore: the typed schema and every sweep file as group `sweep`.

Sweep files live in the repository's sweeps/ folder (one `# @package _global_` YAML each) and
are registered by absolute path, so `sweep=NAME` works from any working directory.
"""
from __future__ import annotations

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from .config import register as register_schema
from .paths import SWEEPS_DIR


def register_all() -> None:
    register_schema()
    store = ConfigStore.instance()
    for path in sorted(SWEEPS_DIR.glob("*.yaml")):
        store.store(group="sweep", name=path.stem, node=OmegaConf.load(path), package="_global_",
                    provider="sdexp")
