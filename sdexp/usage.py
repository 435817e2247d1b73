"""`sdexp --help`: every subcommand with one line, taken from its module's docstring (read from
the source, nothing imported), then Hydra's own help for the sweep command."""
from __future__ import annotations

import ast
import importlib.util
import re

PLAN = ("sdexp plan [-m] [KEY=VALUE ...]", "the dry run of a sweep: what it would render and load, rendering nothing")
SWEEP = ("sdexp [-m] [KEY=VALUE ...]", "run a sweep (a Hydra app; -m for multirun), resuming what is stored")


def docstring_line(module: str) -> tuple[str, str]:
    """('sdexp report results/NAME ...', 'rebuild a stored sweep's grids ...') of a subcommand module,
    whose docstring starts "`usage`: what it does. ..."."""
    spec = importlib.util.find_spec(module)
    source = open(spec.origin, encoding="utf-8").read() if spec and spec.origin else ""
    doc = ast.get_docstring(ast.parse(source)) or ""
    first = " ".join(doc.split("\n\n")[0].split())
    m = re.match(r"`([^`]+)`:\s*(.*)", first)
    usage, what = (m.group(1), m.group(2)) if m else (module, first)
    what = re.split(r"(?<=[a-z0-9)])\.\s", what + " ")[0].strip().rstrip(".")
    return usage, what


def usage_text(subcommands: dict) -> str:
    lines = [SWEEP, PLAN] + [docstring_line(module) for module, _ in subcommands.values()]
    width = min(48, max(len(u) for u, _ in lines))
    out = ["sdexp: parameter-sweep experiments and evaluation for Stable Diffusion.", "", "Commands:"]
    for u, what in lines:
        out.append(f"  {u:<{width}}  {what}" if len(u) <= width else f"  {u}\n  {'':<{width}}  {what}")
    out += ["", "`sdexp NAME --help` tells each subcommand's arguments. The sweep command is a Hydra app; "
                "its help follows.", ""]
    return "\n".join(out)
