"""The cells table of the report as data: report/data/cells.js holds every row (settings, each
metric with its interval and best mark, and the paired difference against the baseline cell),
and report.js shows it a page at a time, sorted and filtered in the browser, so a sweep of
10^5 images does not put 10^4 rows into index.html."""
from __future__ import annotations

import json
from urllib.parse import quote

import pandas as pd

from ..estimates import decimals, format_number, reference_of
from ..grid import format_value
from .comparisons import diff_cells, paired_differences
from .viewer import label


def direction(info, groups) -> str:
    """'lower is better', and the reference a per-group metric was measured against."""
    text = "higher is better" if info.higher_is_better else "lower is better"
    ref = reference_of(groups, info)
    return text + (f"; reference {ref}" if ref else "")


def _estimate_cell(est, best: bool) -> list:
    if est is None:
        return ["n/a", "", "", False]
    places = decimals(est.value)
    interval = (f"[{format_number(est.low, places)}, {format_number(est.high, places)}]"
                if est.has_interval else "")
    return [format_number(est.value, places), interval, repr(est.value), best]


def cells_view(table, rows: pd.DataFrame, groups, images: pd.DataFrame, base) -> dict:
    """Header and rows of the cells table; `images` (report.images.image_facts) gives thumbnails."""
    diffs = paired_differences(rows, table, table.metrics, base)
    thumb_of = dict(zip(images["image_id"], images["thumb"]))
    out = []
    for c in table.cells:
        settings = []
        for a in table.axes:
            v = c.settings[a]
            num = isinstance(v, (int, float)) and not isinstance(v, bool)
            settings.append([format_value(v), repr(v) if num else format_value(v), num])
        thumb = thumb_of.get(c.first_image_id)
        out.append({
            "id": c.cell_id, "n": c.n_images, "s": settings,
            "thumb": quote("../" + thumb) if isinstance(thumb, str) else None,
            "href": quote("../" + c.first_image) if c.first_image else None,
            "m": [_estimate_cell(c.estimates.get(m.name), m.name in c.best) for m in table.metrics],
            "d": [[d["value"], d["interval"], d["sort"], d["n"], d.get("clear", False)]
                  for d in diff_cells(diffs, table.metrics, c.cell_id, base is not None and c is base)],
        })
    metrics = [{"name": m.display_name, "direction": direction(m, groups)} for m in table.metrics]
    return {
        "axes": [label(a) for a in table.axes], "metrics": metrics,
        "diffs": [{"name": m.display_name, "direction": direction(m, groups)}
                  for m in table.metrics if m.name in diffs],
        "baseline": None if base is None else {
            "id": base.cell_id, "settings": ", ".join(f"{label(a)}: {format_value(v)}" for a, v in base.settings.items())},
        "rows": out,
    }


def cells_js(view: dict) -> bytes:
    return ("sdexpReport.cells(" + json.dumps(view["rows"], separators=(",", ":"), allow_nan=False)
            + ");\n").encode()
