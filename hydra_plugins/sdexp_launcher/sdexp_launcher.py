"""sdexp's Hydra launcher: receives every job of a multirun at once and runs them as one sweep,
so the planner sees the whole grid (each model loaded once, shared encodings and latents)."""

import logging
from dataclasses import dataclass
from typing import Sequence

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus, configure_log, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from .compose import JobComposer

log = logging.getLogger(__name__)


@dataclass
class SdexpLauncherConf:
    _target_: str = "hydra_plugins.sdexp_launcher.sdexp_launcher.SdexpLauncher"


ConfigStore.instance().store(group="hydra/launcher", name="sdexp", node=SdexpLauncherConf, provider="sdexp")


class SdexpLauncher(Launcher):
    def __init__(self) -> None:
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def compose(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int,
                resolved: bool = False) -> list:
        """Each job's config, identical to Hydra's composition for that job (see compose.py), without
        the hydra node; with `resolved`, as plain resolved values (a ResolvedJob) wherever that is
        exact. Hydra's job config (hydra.job.id, num, override_dirname, ...) is set as Hydra's
        launchers leave it after the last job."""
        composer = JobComposer(self.hydra_context.config_loader, self.config)

        def one(overrides):
            cfg = composer.resolved(overrides) if resolved else None
            return composer.compose(overrides) if cfg is None else cfg

        configs = [one(overrides) for overrides in job_overrides]
        if job_overrides:
            last = len(job_overrides) - 1
            HydraConfig.instance().set_config(composer.compose_with_hydra(job_overrides[last], initial_job_idx + last))
        log.debug(f"sdexp launcher: {composer.full_compositions} full compositions for {len(configs)} jobs")
        return configs

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from sdexp import cli

        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        if cli.SHOW_JOBS is not None:          # `sdexp -m --cfg job`: each job's config, nothing run
            configs = self.compose(job_overrides, initial_job_idx)
            for k, (overrides, cfg) in enumerate(zip(job_overrides, configs)):
                cli.print_job(cfg, f"job {initial_job_idx + k + 1} of {len(configs)}: {' '.join(overrides)}")
            result = None
        else:
            log.info(f"sdexp launcher: {len(job_overrides)} jobs planned as one sweep")
            configs = self.compose(job_overrides, initial_job_idx, resolved=True)
            keys = [o.split("=", 1)[0] for o in (job_overrides[0] if job_overrides else [])]
            result = cli.run_jobs(configs, keys)
        returns = []
        for overrides, cfg in zip(job_overrides, configs):
            ret = JobReturn(overrides=list(overrides), cfg=cfg, status=JobStatus.COMPLETED)
            ret.return_value = result
            returns.append(ret)
        return returns
