"""The README's axis, sampler and schedule tables, generated from the registries.

`python -m sdexp.docs_tables` rewrites the tables between their markers in README.md;
tests/test_axis_registry.py fails when the README's copy differs from what this prints.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

from .axes import LEVELS, REGISTRY
from .samplers import NOT_EXPRESSIBLE, SAMPLERS, SCHEDULE_NOT_EXPRESSIBLE, SCHEDULES, alias_of

LEVEL_TEXT = {"model": "model load", "encoding": "text encodings", "batch": "batch", "trajectory": "denoise",
              "decode": "VAE decode only", "label": "nothing by itself"}
assert set(LEVEL_TEXT) == set(LEVELS)


def axis_table() -> str:
    lines = ["| Axis (row column) | Config key | Label | Infotext | Type | Off by default | A change redoes |",
             "|---|---|---|---|---|---|---|"]
    for a in REGISTRY:
        if not a.grid:
            continue
        off = "" if not a.optional else ("yes" if a.off is None else f"yes (`{a.off}`)")
        key = f"`{a.config_key}`" if a.name != "size" else "`size` (or `width`, `height`)"
        lines.append(f"| `{a.name}` | {key} | {a.label} | {a.infotext or ''} | {a.kind} ({a.arrow}) | {off} | "
                     f"{LEVEL_TEXT[a.level]} |")
    return "\n".join(lines)


def sampler_table() -> str:
    lines = ["| `sampler=` | A1111 name (grids, PNG info, rows) | diffusers scheduler |", "|---|---|---|"]
    for s in SAMPLERS:
        extra = ", seeded by `noise_sampler_seed`" if s.scheduler == "DPMSolverSDEScheduler" else ""
        lines.append(f"| `{s.alias}` | {s.name} | {s.describe()}{extra} |")
    lines += ["", "| A1111 sampler | Why sdexp has no equivalent |", "|---|---|"]
    lines += [f"| {name} | {why} |" for name, why in NOT_EXPRESSIBLE.items()]
    return "\n".join(lines)


def schedule_table() -> str:
    lines = ["| `schedule=` | A1111 Schedule type | scheduler flags |", "|---|---|---|"]
    for s in SCHEDULES:
        flags = ", ".join(f"{k}={v!r}" for k, v in s.flags.items()) or "the sampler's own (as its name says)"
        lines.append(f"| `{alias_of(s.name)}` | {s.name} | {flags} |")
    lines += ["", "| A1111 Schedule type | Why sdexp has no equivalent |", "|---|---|"]
    lines += [f"| {name} | {why} |" for name, why in SCHEDULE_NOT_EXPRESSIBLE.items()]
    return "\n".join(lines)


TABLES = {"axes-table": axis_table, "samplers-table": sampler_table, "schedules-table": schedule_table}


def render(readme: str) -> str:
    """README text with every marked table replaced by the generated one."""
    for marker, make in TABLES.items():
        pattern = re.compile(rf"(<!-- {marker} -->\n)(?:.*?\n)?(<!-- /{marker} -->)", re.S)
        readme = pattern.sub(lambda m: m[1] + make() + "\n" + m[2], readme)
    return readme


def main() -> int:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    path.write_text(render(path.read_text()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
