"""Command-line overrides made to mean what a Stable Diffusion user means, before Hydra parses them.

- A prompt is one prompt: `prompt="masterpiece, best quality, a cat"` is quoted, so Hydra's sweeper
  never splits it at its commas (several prompts: `prompt='[a cat, a dog]'`, a prompt set or a file).
- A1111 ranges (`steps=10-30 (+10)`, `cfg=3-7 [5]`) are quoted, so Hydra's grammar leaves the brackets
  and spaces to the axis registry, which expands them inside one job.
- Without `-m`, a comma list (`cfg=3,5,7`) is one job listing its values, as A1111's X/Y/Z plot reads it;
  with `-m` it stays Hydra's sweep, one job per value.
- A key outside the schema fails at once, with the nearest valid key (`samplr` -> sampler), `+` or not.
"""
from __future__ import annotations

import re

from .axes import BY_NAME, ConfigError
from .axis_values import RANGE_HINT
from .config import key_problem

_GROUPS = ("model", "vae", "prompts", "scorer", "sweep")
_FUNCTION = re.compile(r"^\s*\w+\(.*\)\s*$")        # Hydra sweep functions: range(), choice(), glob()


def _quoted(value: str) -> bool:
    v = value.strip()
    return len(v) >= 2 and v[0] == v[-1] and v[0] in "'\""


def quote(value: str) -> str:
    """A Hydra quoted string holding `value` as it is."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    return "'" + value.replace("\\'", "\\\\'").replace("'", "\\'") + "'"


def _axis_of(key: str):
    axes = [a for a in BY_NAME.values() if a.grid and a.config_key == key]
    return axes[0] if axes else None


def prepare(argv: list[str]) -> list[str]:
    """argv with each override's value made explicit for Hydra; raises ConfigError for unknown keys."""
    multirun = any(a in ("-m", "--multirun") for a in argv)
    out = []
    for arg in argv:
        if arg.startswith("-") or "=" not in arg:
            out.append(arg)
            continue
        key, value = arg.split("=", 1)
        bare = key.lstrip("+~")
        if bare.split(".")[0] not in _GROUPS or "." in bare:
            problem = key_problem(bare)
            if problem:
                raise ConfigError(f"{arg!r}: {problem}")
        axis = _axis_of(bare)
        if axis is not None and not _quoted(value) and not value.lstrip().startswith("[") \
                and not _FUNCTION.match(value):
            if axis.kind == "text":
                value = quote(value)
            elif axis.kind in ("int", "float", "seed") and RANGE_HINT.match(value) and re.search(r"[\s(\[]", value):
                value = quote(value)
            elif not multirun and axis.splits and "," in value:
                value = quote(value)
        out.append(f"{key}={value}")
    # `-m` may come anywhere (`sdexp seed=1 -m cfg=3,5`): Hydra's parser takes overrides after it only
    flags = [a for a in out if a in ("-m", "--multirun")]
    return flags + [a for a in out if a not in ("-m", "--multirun")]
