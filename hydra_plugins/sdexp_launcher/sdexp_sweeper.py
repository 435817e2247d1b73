"""sdexp's Hydra sweeper: Hydra's basic sweeper (same `hydra.sweeper.params`, same job order), except
that it leaves the check that every job composes to sdexp's launcher, which composes every job
before it runs any. The basic sweeper composes each job once more beforehand, at Hydra's full
cost per job; under any other launcher (`hydra/launcher=basic`) it still does."""

from dataclasses import dataclass
from typing import Dict, Optional, Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore

from .sdexp_launcher import SdexpLauncher


@dataclass
class SdexpSweeperConf:
    _target_: str = "hydra_plugins.sdexp_launcher.sdexp_sweeper.SdexpSweeper"
    max_batch_size: Optional[int] = None
    params: Optional[Dict[str, str]] = None


ConfigStore.instance().store(group="hydra/sweeper", name="sdexp", node=SdexpSweeperConf, provider="sdexp")


class SdexpSweeper(BasicSweeper):
    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        if not isinstance(self.launcher, SdexpLauncher):
            super().validate_batch_is_legal(batch)
