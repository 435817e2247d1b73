"""The `sdexp` console script: a Hydra app (multirun sweeps from the shell)."""
from __future__ import annotations

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from .hydra_setup import register_all
from .paths import CONF_DIR
from .axes import ConfigError


def fail(message: str) -> None:
    print(f"sdexp: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def run_jobs(cfgs: list[DictConfig], override_keys: list[str], single_job_of_multirun: bool = False) -> dict:
    from .sweep import run_sweep

    try:
        return run_sweep(cfgs, override_keys, single_job_of_multirun=single_job_of_multirun)
    except ConfigError as e:
        fail(str(e))


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def app(cfg: DictConfig) -> dict:
    """One job: a plain run, or one job of a multirun under `hydra/launcher=basic`."""
    hc = HydraConfig.get()
    return run_jobs([cfg], list(hc.overrides.task), single_job_of_multirun=hc.mode == RunMode.MULTIRUN)


SUBCOMMANDS = {
    # name: (module, function) taking the remaining argv; each rereads a stored sweep
    "report": ("sdexp.report", "main"),
    "score": ("sdexp.score", "main"),
}


def main() -> None:
    """`sdexp [overrides]` runs a sweep; `sdexp plan [overrides]` is its dry run;
    `sdexp NAME ...` runs a subcommand of SUBCOMMANDS on a stored sweep."""
    if len(sys.argv) > 1 and sys.argv[1] in SUBCOMMANDS:
        import importlib

        module, function = SUBCOMMANDS[sys.argv[1]]
        raise SystemExit(getattr(importlib.import_module(module), function)(sys.argv[2:]))
    register_all()
    if len(sys.argv) > 1 and sys.argv[1] == "plan":
        sys.argv = [sys.argv[0], *sys.argv[2:], "plan.dry_run=true"]
    app()


if __name__ == "__main__":
    main()
