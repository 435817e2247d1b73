"""The two metric tables `sdexp score` writes next to the rows (README, "Metrics"):

results/<name>/image_metrics/<metric>-<scorer key>.parquet  one row per image, metric and scoring model
results/<name>/groups/<metric>-<statistic>-<key>.parquet    one row per group, metric and statistic

Each file holds one result set (a metric, its scoring model or feature extractor, the grouping and the
reference) and is replaced as a whole, atomically, when that result set is scored again; other result
sets (another CLIP model, another reference, another grouping) are kept. No timestamps are stored, so
scoring the same store twice writes identical files.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..axes import AXES, arrow_types

AXIS_TYPES = {name: getattr(pa, kind)() for name, kind in arrow_types().items()}   # from the axis registry

GROUP_SCHEMA = pa.schema(
    [("sweep", pa.string()), ("metric", pa.string()), ("statistic", pa.string()), ("grouping", pa.string()),
     ("group", pa.string()), ("cell_id", pa.string())]
    + [(a, AXIS_TYPES.get(a, pa.string())) for a in AXES]
    + [("value", pa.float64()), ("ci_low", pa.float64()), ("ci_high", pa.float64()), ("std", pa.float64()),
       ("confidence", pa.float64()), ("n", pa.int64()), ("n_reference", pa.int64()),
       ("reference", pa.string()), ("reference_kind", pa.string()), ("reference_hash", pa.string()),
       ("feature_extractor", pa.string()), ("resize", pa.string()), ("subset_size", pa.int64()),
       ("implementation", pa.string()), ("implementation_version", pa.string()),
       ("sdexp_version", pa.string()), ("warning", pa.string())])

IMAGE_METRIC_SCHEMA = pa.schema(
    [("image_id", pa.string()), ("metric", pa.string()), ("scorer", pa.string()), ("value", pa.float64()),
     ("implementation", pa.string()), ("implementation_version", pa.string())])


def key_digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _write(path: Path, table: pa.Table) -> Path:
    from ..store import atomic_write_bytes

    path.parent.mkdir(parents=True, exist_ok=True)
    buf = pa.BufferOutputStream()
    pq.write_table(table, buf)
    atomic_write_bytes(path, buf.getvalue().to_pybytes())
    return path


def _table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist([{c: r.get(c) for c in schema.names} for r in rows], schema=schema)


# --- image metrics --------------------------------------------------------------------------------

def image_metrics_path(folder: Path | str, metric: str, model: str) -> Path:
    return Path(folder) / "image_metrics" / f"{metric}-{key_digest(metric, model)}.parquet"


def read_image_metric(folder: Path | str, metric: str, model: str) -> dict[str, float]:
    """image_id -> value of one metric under one scoring model (empty when never scored)."""
    path = image_metrics_path(folder, metric, model)
    if not path.is_file():
        return {}
    t = pq.read_table(path, columns=["image_id", "value"])
    return dict(zip(t.column("image_id").to_pylist(), t.column("value").to_pylist()))


def write_image_metric(folder: Path | str, metric: str, model: str, values: dict[str, float],
                       implementation: str, version: str) -> Path:
    rows = [{"image_id": i, "metric": metric, "scorer": model, "value": float(values[i]),
             "implementation": implementation, "implementation_version": version} for i in sorted(values)]
    return _write(image_metrics_path(folder, metric, model), _table(rows, IMAGE_METRIC_SCHEMA))


def load_image_metrics(folder: Path | str) -> pd.DataFrame:
    """Every per-image metric `sdexp score` stored: image_id, metric, scorer (the scoring model), value,
    implementation, implementation_version. Merge with sdexp.load_rows(folder) on image_id."""
    parts = sorted((Path(folder) / "image_metrics").glob("*.parquet"))
    if not parts:
        return IMAGE_METRIC_SCHEMA.empty_table().to_pandas()
    return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)


# --- groups ---------------------------------------------------------------------------------------

def groups_path(folder: Path | str, metric: str, statistic: str, key: tuple) -> Path:
    return Path(folder) / "groups" / f"{metric}-{statistic}-{key_digest(metric, statistic, *key)}.parquet"


def write_groups(folder: Path | str, metric: str, statistic: str, key: tuple, rows: list[dict]) -> Path:
    """Replace the result set (metric, statistic, key) with these rows."""
    return _write(groups_path(folder, metric, statistic, key), _table(rows, GROUP_SCHEMA))


def load_groups(folder: Path | str) -> pd.DataFrame:
    """The group-metrics table of a stored sweep (README, "Metrics"): one row per group, metric and
    statistic; empty (with the columns) when nothing was scored yet."""
    folder = Path(folder)
    if not (folder / "rows").is_dir():
        raise FileNotFoundError(f"{folder} holds no sdexp results (no rows/ folder)")
    parts = sorted((folder / "groups").glob("*.parquet"))
    if not parts:
        return GROUP_SCHEMA.empty_table().to_pandas()
    return pd.concat([pq.read_table(p).to_pandas() for p in parts], ignore_index=True)
