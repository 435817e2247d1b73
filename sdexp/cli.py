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


def fault_message(e: BaseException) -> str:
    """One line for a runtime fault: the error and, for file-system errors, the path."""
    if isinstance(e, OSError) and e.filename and str(e.filename) not in str(e):
        return f"{e.strerror or e}: {e.filename}"
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def interrupted(cfgs: list[DictConfig]) -> None:
    """Ctrl-C: what is stored stays stored; a rerun renders the rest."""
    from pathlib import Path

    from .store import Store

    folder = Path(cfgs[0]["results_root"]) / cfgs[0]["name"]
    try:
        n = len(Store(folder).image_ids())
    except Exception:  # a half-written store still gets the message below
        n = "some"
    print(f"\nsdexp: interrupted; {n} images are stored in {folder}; run the same command again to "
          f"resume (stored images are not rendered again)", file=sys.stderr)
    raise SystemExit(130)


def run_jobs(cfgs: list[DictConfig], override_keys: list[str], single_job_of_multirun: bool = False) -> dict:
    from .preflight import checked_plan
    from .store import RUNTIME_FAULTS

    faults = RUNTIME_FAULTS
    try:
        plan = checked_plan(cfgs, override_keys, single_job_of_multirun)
        from .models import LoadError
        from .ray_backend import WorkerFault
        from .sweep import run_sweep          # the rendering libraries load only for input known good

        faults = (*RUNTIME_FAULTS, LoadError, WorkerFault)
        return run_sweep(cfgs, override_keys, single_job_of_multirun=single_job_of_multirun, plan=plan)
    except ConfigError as e:
        fail(str(e))
    except KeyboardInterrupt:
        interrupted(cfgs)
    except faults as e:
        print(f"sdexp: error: {fault_message(e)}", file=sys.stderr)
        raise SystemExit(1)


# `sdexp -m --cfg job ...`: Hydra takes one mode, so main() keeps -m and takes `--cfg job` (and
# `--resolve`) off the command line; the multirun then prints each job's config instead of running it.
SHOW_JOBS: dict | None = None


def _show_jobs_request(argv: list[str]) -> tuple[list[str], dict | None]:
    """argv without `--cfg job`/`-c job`/`--cfg=job` and `--resolve` when -m is also given."""
    if not any(a in ("-m", "--multirun") for a in argv) or any(a in ("-p", "--package") for a in argv):
        return argv, None
    out, show, i = [], None, 0
    while i < len(argv):
        a = argv[i]
        if a in ("-c", "--cfg") and i + 1 < len(argv) and argv[i + 1] == "job":
            show, i = {"resolve": False}, i + 2
            continue
        if a == "--cfg=job":
            show = {"resolve": False}
        elif a != "--resolve":
            out.append(a)
        i += 1
    if show is None:
        return argv, None
    show["resolve"] = "--resolve" in argv
    return out, show


def print_job(cfg: DictConfig, title: str) -> None:
    from omegaconf import OmegaConf

    print(f"# {title}")
    print(OmegaConf.to_yaml(cfg, resolve=bool(SHOW_JOBS and SHOW_JOBS["resolve"])))


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def app(cfg: DictConfig) -> dict | None:
    """One job: a plain run, or one job of a multirun under `hydra/launcher=basic`."""
    hc = HydraConfig.get()
    if SHOW_JOBS is not None:
        print_job(cfg, f"job {hc.job.num + 1}: {' '.join(hc.overrides.task)}")
        return None
    return run_jobs([cfg], list(hc.overrides.task), single_job_of_multirun=hc.mode == RunMode.MULTIRUN)


SUBCOMMANDS = {
    # name: (module, function) taking the remaining argv; each rereads a stored sweep
    "report": ("sdexp.report", "main"),
    "score": ("sdexp.score", "main"),
    "verify": ("sdexp.verify", "main"),
    "compact": ("sdexp.compact", "main"),
    "reproduce": ("sdexp.reproduce", "main"),
}


def main() -> None:
    """`sdexp [overrides]` runs a sweep; `sdexp plan [overrides]` is its dry run;
    `sdexp NAME ...` runs a subcommand of SUBCOMMANDS on a stored sweep."""
    if len(sys.argv) > 1 and sys.argv[1] in SUBCOMMANDS:
        import importlib

        module, function = SUBCOMMANDS[sys.argv[1]]
        try:
            code = getattr(importlib.import_module(module), function)(sys.argv[2:])
        except KeyboardInterrupt:      # Ctrl-C: one line, as a sweep's, not a traceback
            print(f"\nsdexp: {sys.argv[1]} interrupted", file=sys.stderr)
            code = 130
        raise SystemExit(code)
    if any(a in ("--help", "-h") for a in sys.argv[1:]):
        from .usage import usage_text

        print(usage_text(SUBCOMMANDS))
    global SHOW_JOBS
    args, SHOW_JOBS = _show_jobs_request(sys.argv[1:])
    sys.argv = [sys.argv[0], *args]
    if any(a.split("=")[0] in ("-c", "--cfg", "-i", "--info") for a in sys.argv[1:]):
        # Hydra takes one mode: `--cfg hydra|all` and `--info` show the config as the sweep file composes
        # it (the sweep's values under hydra.sweeper.params) instead of failing on -m
        sys.argv = [a for a in sys.argv if a not in ("-m", "--multirun")]
    register_all()
    if len(sys.argv) > 1 and sys.argv[1] == "plan":
        sys.argv = [sys.argv[0], *sys.argv[2:], "plan.dry_run=true"]
    from .overrides import prepare

    try:
        sys.argv = [sys.argv[0], *prepare(sys.argv[1:])]
    except ConfigError as e:
        fail(str(e))
    app()


if __name__ == "__main__":
    from sdexp.cli import main as imported_main   # `python -m sdexp.cli`: one module, whose state the launcher reads
    imported_main()
