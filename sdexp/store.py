"""The results store: results/<name>/ with images, append-only Parquet part files and configs.

Every file is written to a temporary name in its final folder and renamed into place, so a
run killed at any moment leaves only whole files; leftovers are removed by the next run.
A lock file keeps two runs from writing one sweep at once.
"""
from __future__ import annotations

import fcntl
import io
import os
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

TMP_SUFFIX = ".tmp"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}{TMP_SUFFIX}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class Store:
    def __init__(self, folder: Path | str):
        self.folder = Path(folder)
        self.images = self.folder / "images"
        self.rows = self.folder / "rows"
        self.grids = self.folder / "grids"
        self.configs = self.folder / "config"

    @contextmanager
    def lock(self):
        """Create the folders, take the sweep's lock, and clear temporary files of killed runs."""
        for d in (self.images, self.rows, self.grids, self.configs):
            d.mkdir(parents=True, exist_ok=True)
        with open(self.folder / ".lock", "w") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RuntimeError(f"{self.folder} is being written by another sdexp run; wait for it to end")
            for d in (self.images, self.rows, self.grids, self.configs):
                for tmp in d.glob(f".*{TMP_SUFFIX}"):
                    tmp.unlink(missing_ok=True)
            yield self

    def part_files(self) -> list[Path]:
        return sorted(self.rows.glob("part-*.parquet")) if self.rows.is_dir() else []

    def image_ids(self) -> set[str]:
        ids: set[str] = set()
        for part in self.part_files():
            ids.update(pq.read_table(part, columns=["image_id"]).column("image_id").to_pylist())
        return ids

    def write_png(self, image_id: str, image) -> str:
        """Write a PIL image (with its text chunks) atomically; returns the path relative to the store."""
        buf = io.BytesIO()
        image.save(buf, format="PNG", pnginfo=image.info.get("pnginfo"))
        path = self.images / f"{image_id}.png"
        atomic_write_bytes(path, buf.getvalue())
        return path.relative_to(self.folder).as_posix()

    def append_rows(self, rows: list[dict]) -> Path:
        buf = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pylist(rows), buf)
        name = f"part-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.parquet"
        path = self.rows / name
        atomic_write_bytes(path, buf.getvalue().to_pybytes())
        return path

    def save_config(self, configs: list[dict]) -> Path:
        path = self.configs / f"run-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}.yaml"
        atomic_write_bytes(path, yaml.safe_dump({"jobs": configs}, sort_keys=False, allow_unicode=True).encode())
        return path

    def load_rows(self) -> pd.DataFrame:
        parts = self.part_files()
        if not parts:
            return pd.DataFrame()
        return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)


def load_rows(folder: Path | str) -> pd.DataFrame:
    """One row per image of a stored sweep, as a pandas DataFrame (see the README for the schema)."""
    folder = Path(folder)
    if not (folder / "rows").is_dir():
        raise FileNotFoundError(f"{folder} holds no sdexp results (no rows/ folder)")
    return Store(folder).load_rows()
