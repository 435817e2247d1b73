"""`sdexp report results/NAME [grid.KEY=VALUE ...]`: rebuild a stored sweep's grids and its
static HTML report (results/NAME/report/index.html) from the store alone."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .build import build_report

__all__ = ["build_report", "main"]


def main(argv: list[str]) -> int:
    from ..axes import ConfigError
    from ..store import Store

    parser = argparse.ArgumentParser(
        prog="sdexp report",
        description="Rebuild the grids and the HTML report of a stored sweep, rendering nothing.")
    parser.add_argument("folder", help="the sweep's folder, e.g. results/demo")
    parser.add_argument("overrides", nargs="*", metavar="grid.KEY=VALUE",
                        help="grid options on top of the sweep's own: grid.x, grid.y, grid.z (axes), "
                             "grid.seed (first, all or a seed), grid.metric (a metric or null), "
                             "grid.max_pixels (page size)")
    parser.add_argument("--baseline", default=None, metavar="CELL_ID",
                        help="the cell every other cell is compared with, paired on prompt and seed (a cell id "
                             "or unique prefix, as in cells.csv); default: the first value of every swept axis")
    args = parser.parse_args(argv)
    folder = Path(args.folder)
    if not (folder / "rows").is_dir():
        print(f"sdexp: error: {str(folder)!r} holds no sdexp results (no rows/ folder); "
              "give a sweep folder such as results/demo", file=sys.stderr)
        return 2
    try:
        with Store(folder).lock():
            index = build_report(folder, overrides=args.overrides, baseline=args.baseline)
    except (ConfigError, ValueError, RuntimeError) as e:
        print(f"sdexp: error: {e}", file=sys.stderr)
        return 2
    print(f"sdexp: report  {index.resolve()}")
    return 0
