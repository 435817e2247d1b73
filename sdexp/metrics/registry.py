"""The metric registry: each metric declares its name, direction and unit of measure, so grids,
tables and reports can show any metric without code written for it."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricInfo:
    name: str                  # key in configs and in the groups table's `metric` column
    display_name: str          # shown in grids and reports
    higher_is_better: bool
    per: str                   # "image": a column of the rows table; "group": rows of the groups table
    column: str | None = None  # for per-image metrics: the rows column holding it
    short: str = ""            # short label under grid cells, e.g. "CLIP"

    @property
    def lower_is_better(self) -> bool:
        return not self.higher_is_better


METRICS: dict[str, MetricInfo] = {}


def register(info: MetricInfo) -> MetricInfo:
    if info.per not in ("image", "group"):
        raise ValueError(f"per={info.per!r} is not valid; valid: 'image', 'group'")
    METRICS[info.name] = info
    return info


register(MetricInfo("clip_score", "CLIP score", True, "image", column="clip_score", short="CLIP"))
register(MetricInfo("fid", "FID", False, "group", short="FID"))
register(MetricInfo("kid", "KID", False, "group", short="KID"))


def get_metric(name: str) -> MetricInfo:
    if name not in METRICS:
        raise ValueError(f"metric={name!r} is not a known metric; valid: {', '.join(METRICS)}")
    return METRICS[name]
