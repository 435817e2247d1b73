"""Image health: a decoded image holding NaN or infinite values, or of one colour only.

Such images come from an infinite CFG, a float16 VAE overflowing, or a broken checkpoint. Their
row's `image_flags` names what is wrong ("nan", "inf", "constant", comma-separated; empty when
the image is healthy; null in rows written before the check). Metrics, the best cell and group
scores leave flagged images out and say how many; grids mark them.
"""
from __future__ import annotations

import pandas as pd

FLAG_MEANING = "NaN or infinite values, or a single colour"


def image_flags(decoded, arrays: list) -> list[str]:
    """Per image: the flags of the VAE's float output (N, C, H, W) and of its uint8 arrays."""
    import torch

    nan = torch.isnan(decoded).flatten(1).any(1).tolist()
    inf = torch.isinf(decoded).flatten(1).any(1).tolist()
    out = []
    for n, i, a in zip(nan, inf, arrays):
        flags = [name for name, on in (("nan", n), ("inf", i), ("constant", a.min() == a.max())) if on]
        out.append(",".join(flags))
    return out


def flagged(rows: pd.DataFrame) -> pd.Series:
    """True for rows whose image is flagged."""
    if "image_flags" not in rows.columns:
        return pd.Series(False, index=rows.index)
    return rows["image_flags"].fillna("").astype(str).ne("")


def is_flagged(record: dict) -> bool:
    """A record's image is flagged (null, from rows written before the check, counts as healthy)."""
    value = record.get("image_flags")
    return isinstance(value, str) and value != ""


def healthy(rows: pd.DataFrame, log=None, what: str = "metrics") -> pd.DataFrame:
    """The rows whose image is not flagged; `log` is told how many were left out."""
    mask = flagged(rows)
    if mask.any() and log is not None:
        log(f"sdexp: {int(mask.sum())} flagged images ({FLAG_MEANING}) left out of the {what}")
    return rows[~mask]


def flag_note(records: list[dict]) -> str | None:
    """A grid cell's line about its flagged images, e.g. '1 flagged (constant), left out'."""
    kinds = sorted({f for r in records if is_flagged(r) for f in str(r["image_flags"]).split(",")})
    n = sum(map(is_flagged, records))
    return f"{n} flagged ({', '.join(kinds)}), left out" if n else None
