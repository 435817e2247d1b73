"""The metric registry: each metric declares its name, direction and unit of measure, so grids,
tables and reports can show any metric without code written for it.

A per-image metric that `sdexp score` can compute also carries a `scorer` factory: a callable
`factory(options: dict, device: torch.device) -> ImageScorer`, where an ImageScorer has

    model_id: str          identifies the model and weights (a key of the image_metrics table)
    implementation: str    e.g. "sdexp.metrics.clip_backends.OpenClipScorer"
    version: str           library version behind it
    score(images: list[PIL.Image.Image], prompts: list[str]) -> list[float]

That is the extension point for preference models (ImageReward, PickScore, HPSv2): write the
factory so it loads local weights from its options, then register it with
`register_image_metric(...)` in a module that `sdexp score plugins=[module]` imports (README, "Adding
a preference model").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class MetricInfo:
    name: str                  # key in configs and in the groups table's `metric` column
    display_name: str          # shown in grids and reports
    higher_is_better: bool
    per: str                   # "image": a column of the rows table; "group": rows of the groups table
    column: str | None = None  # for per-image metrics: the rows column holding it
    short: str = ""            # short label under grid cells, e.g. "CLIP"
    scorer: Callable | None = None  # per-image metrics: factory(options, device) -> ImageScorer (see above)
    description: str = ""      # one line for `sdexp score --help` and the docs
    features: str = ""         # per-group metrics: the image features they compare ("inception" or "clip")

    @property
    def lower_is_better(self) -> bool:
        return not self.higher_is_better


METRICS: dict[str, MetricInfo] = {}


def register(info: MetricInfo) -> MetricInfo:
    if info.per not in ("image", "group"):
        raise ValueError(f"per={info.per!r} is not valid; valid: 'image', 'group'")
    METRICS[info.name] = info
    return info


def register_image_metric(name: str, display_name: str, scorer: Callable, higher_is_better: bool = True,
                          short: str = "", description: str = "") -> MetricInfo:
    """Register a per-image metric computed by `scorer(options, device)` (e.g. a preference model).

    Its values go to the image_metrics table (keyed by image, metric and the scorer's model_id), and
    `sdexp score` adds each group's mean with a bootstrap interval to the groups table."""
    return register(MetricInfo(name, display_name, higher_is_better, "image", column=None,
                               short=short or display_name, scorer=scorer, description=description))


def _clip_scorer(options: dict, device):
    from .clip_backends import make_clip_scorer

    return make_clip_scorer(options, device)


register(MetricInfo("clip_score", "CLIP score", True, "image", column="clip_score", short="CLIP",
                    scorer=_clip_scorer,
                    description="max(100 * cos(image, text), 0) with transformers CLIP or open_clip"))
register(MetricInfo("fid", "FID", False, "group", short="FID", features="inception",
                    description="Frechet Inception Distance of a group against a reference"))
register(MetricInfo("kid", "KID", False, "group", short="KID", features="inception",
                    description="Kernel Inception Distance (unbiased MMD, cubic polynomial kernel)"))
register(MetricInfo("fd_clip", "FD (CLIP)", False, "group", short="FD", features="clip",
                    description="Frechet distance of unit-norm CLIP image embeddings (clip.source), no Inception"))
register(MetricInfo("cmmd", "CMMD", False, "group", short="CMMD", features="clip",
                    description="CMMD (Jayasumana et al. 2024): RBF-kernel MMD of CLIP image embeddings x 1000"))


def _shapes_judge(options: dict, device):
    from ..shapes.reference import JudgeScorer

    return JudgeScorer(options, device)


register_image_metric("shapes_judge", "Shapes judge", _shapes_judge, short="judge",
                      description="1 when a rule-based judge sees the prompted colour and shape "
                                  "(shapes captions only)")


def get_metric(name: str) -> MetricInfo:
    if name not in METRICS:
        raise ValueError(f"metric={name!r} is not a known metric; valid: {', '.join(METRICS)}")
    return METRICS[name]


def image_metrics() -> list[MetricInfo]:
    return [m for m in METRICS.values() if m.per == "image"]


def group_metrics() -> list[MetricInfo]:
    return [m for m in METRICS.values() if m.per == "group"]
