"""The README's example sweeps, expanded into their multirun jobs as Hydra's sweeper does, and planned."""
from __future__ import annotations

import itertools
import re
import shlex

import pandas as pd

from sdexp.dryrun import summary
from sdexp.overrides import prepare
from sdexp.paths import CONF_DIR
from sdexp.plan import make_plan


def readme_sweep(compose_cfg, marker: str) -> tuple[list, object, dict]:
    """(job configs, plan, dry-run summary) of the first command in the README block after <!-- marker -->."""
    block = re.search(rf"<!-- {marker} -->\s*```bash\n(.*?)```", (CONF_DIR.parent / "README.md").read_text(),
                      re.DOTALL).group(1)
    commands = [c for c in block.replace("\\\n", " ").splitlines() if c.strip() and not c.startswith("#")]
    words = shlex.split(commands[0])
    assert words[0] == "sdexp"
    args = ["sdexp", *prepare(words[1:])]
    assert args[:2] == ["sdexp", "-m"]
    fixed = [a for a in args[2:] if not re.fullmatch(r"[\w.]+=[^'\"\[]*,.*", a)]
    swept = [[f"{a.split('=')[0]}={v}" for v in a.split("=", 1)[1].split(",")] for a in args[2:] if a not in fixed]
    cfgs = [compose_cfg([*fixed, *job]) for job in itertools.product(*swept)]
    plan = make_plan(cfgs, [s[0].split("=")[0] for s in swept])
    return cfgs, plan, summary(plan, set(), pd.DataFrame(), 8)
