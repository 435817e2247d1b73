"""What FID and KID compare a group against, and paired differences are taken from (`reference=`):

- a folder of images (.png .jpg .jpeg .webp .bmp, searched recursively);
- an .npz of FID statistics with arrays `mu` and `sigma` (pytorch-fid, clean-fid, torch-fidelity); FID only;
- `cell:CELL_ID` (or a unique prefix of it): one cell of the same sweep, e.g. a baseline;
- `group:AXIS=VALUE,AXIS=VALUE`: the sweep's images with those axis values, pooled over the others
  (e.g. `group:sampler=Euler a,cfg=7`).

Every reference carries a hash of its content (image bytes, statistics file bytes, or image ids), stored
with each groups-table row, so results against different references are never confused.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..axes import AXES, ConfigError

KINDS_HELP = ("a folder of images, an .npz with 'mu' and 'sigma', cell:CELL_ID, "
              "or group:AXIS=VALUE,... (axes: " + ", ".join(AXES) + ")")


@dataclass
class Reference:
    kind: str                    # folder | npz | group
    spec: str                    # as written in the groups table's `reference` column
    hash: str                    # sha256 of the content
    files: list[Path] = field(default_factory=list)           # folder
    mu: np.ndarray | None = None                              # npz
    sigma: np.ndarray | None = None
    image_ids: list[str] = field(default_factory=list)        # group: the reference images of the sweep
    fixed: dict = field(default_factory=dict)                 # group: axis -> value the selection fixes

    @property
    def n(self) -> int | None:
        if self.kind == "folder":
            return len(self.files)
        if self.kind == "group":
            return len(self.image_ids)
        return None


def _content_hash(files: list[Path], root: Path) -> str:
    digest = hashlib.sha256()
    for p in files:
        digest.update(p.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(p.read_bytes()).digest())
    return digest.hexdigest()


def _match(column: pd.Series, axis: str, value: str) -> pd.Series:
    if axis == "sampler":
        from ..samplers import get_sampler

        try:
            value = get_sampler(value).name
        except ValueError:
            pass
    if pd.api.types.is_numeric_dtype(column):
        try:
            return column == float(value)
        except ValueError:
            return pd.Series(False, index=column.index)
    return column.astype(str) == value


def _select(rows: pd.DataFrame, spec: str) -> tuple[pd.DataFrame, dict]:
    """Rows of `group:AXIS=VALUE,...` or `cell:CELL_ID`; ConfigError names what is wrong."""
    if spec.startswith("cell:"):
        prefix = spec[len("cell:"):].strip()
        ids = sorted({c for c in rows["cell_id"] if str(c).startswith(prefix)}) if prefix else []
        if len(ids) != 1:
            valid = ", ".join(sorted(rows["cell_id"].unique()))
            what = "matches no cell" if not ids else f"matches {len(ids)} cells"
            raise ConfigError(f"reference={spec!r} {what}; valid: cell:<one of {valid}>")
        sel = rows[rows["cell_id"] == ids[0]]
        fixed = {a: sel[a].iloc[0] for a in AXES if a in sel.columns and a not in ("seed", "prompt")}
        return sel, fixed
    body = spec[len("group:"):]
    fixed, mask = {}, pd.Series(True, index=rows.index)
    for item in (s for s in body.split(",") if s.strip()):
        axis, eq, value = item.partition("=")
        axis, value = axis.strip(), value.strip()
        if not eq or axis not in AXES or axis not in rows.columns:
            raise ConfigError(f"reference={spec!r}: {item.strip()!r} is not AXIS=VALUE; valid axes: {', '.join(AXES)}")
        m = _match(rows[axis], axis, value)
        if not m.any():
            values = ", ".join(str(v) for v in sorted(rows[axis].dropna().unique(), key=str))
            raise ConfigError(f"reference={spec!r}: no image has {axis}={value!r}; valid: {values}")
        mask &= m
        fixed[axis] = rows.loc[m, axis].iloc[0]
    if not fixed:
        raise ConfigError(f"reference={spec!r} selects nothing; write group:AXIS=VALUE,... (axes: {', '.join(AXES)})")
    sel = rows[mask]
    if sel.empty:
        raise ConfigError(f"reference={spec!r} matches no image (each value exists, but not together)")
    return sel, fixed


def resolve_reference(spec: str, rows: pd.DataFrame) -> Reference:
    """Check and describe `reference=`; reads nothing large (folder images are hashed, not decoded)."""
    from .fid import load_npz
    from .inception import IMAGE_SUFFIXES, reference_images

    spec = str(spec).strip()
    if spec.startswith(("cell:", "group:")):
        sel, fixed = _select(rows, spec)
        ids = sorted(sel["image_id"])
        digest = hashlib.sha256("\n".join(ids).encode()).hexdigest()
        return Reference("group", spec, digest, image_ids=list(sel["image_id"]), fixed=fixed)
    path = Path(spec).expanduser()
    if path.is_dir():
        files = reference_images(path)
        if not files:
            raise ConfigError(f"reference={spec!r} holds no images; valid: a folder with "
                              f"{' '.join(IMAGE_SUFFIXES)} files, or {KINDS_HELP}")
        return Reference("folder", str(path.resolve()), _content_hash(files, path), files=files)
    if path.is_file() and path.suffix == ".npz":
        try:
            mu, sigma = load_npz(path)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        return Reference("npz", str(path.resolve()), hashlib.sha256(path.read_bytes()).hexdigest(), mu=mu, sigma=sigma)
    if path.is_file():
        raise ConfigError(f"reference={spec!r} is a file but not an .npz; valid: {KINDS_HELP}")
    raise ConfigError(f"reference={spec!r} not found; valid: {KINDS_HELP}")
