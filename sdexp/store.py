"""The results store: results/<name>/ with images, Parquet part files of rows, and configs.

    images/<ab>/<image_id>.png   one PNG per image, in subfolders by the first characters of its id
                                 (stores written before keep images/<image_id>.png: each row's
                                 image_path says where its image is)
    rows/part-*.parquet          the rows, in the declared schema of sdexp.schema
    config/run-*.yaml            the resolved config of every run
    timings/run-*.parquet        each run's seconds per stage and batch (sdexp.stages)
    quarantine/                  damaged or foreign files that `sdexp verify --repair` moved aside

Every file is written to a temporary name in its final folder and renamed into place, so a run
killed at any moment leaves only whole files; leftovers are removed by the next run. A part file
that replaces others (compaction, repair: its name ends in "-merged.parquet") lists them in its
Parquet metadata: from the moment it is renamed into place readers skip the files it lists, and
the next run that locks the store finishes removing them. A lock file keeps two runs from
writing one sweep at once.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import io
import json
import os
import stat
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import yaml

from .schema import read_schema, row_schema, rows_table

TMP_SUFFIX = ".tmp"
MERGED_SUFFIX = "-merged.parquet"
REPLACES_KEY = b"sdexp.replaces"
SHARD_CHARS = 2          # images/<first SHARD_CHARS characters of image_id>/<image_id>.png
COMPACT_EVERY = 256      # part files one Store appends between two compactions (a long sweep's resume stays fast)


def png_bytes(image) -> bytes:
    """A PIL image as PNG, with the text chunks it carries (sdexp.render.png_with_parameters)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=image.info.get("pnginfo"))
    return buf.getvalue()


class StoreError(RuntimeError):
    """A fault of the store on disk: locked by another run, a lock that is a link, unreadable rows."""


RUNTIME_FAULTS = (StoreError, OSError)     # reported as one line, exit status 1


def atomic_write_bytes(path: Path, data: bytes, sync: bool = True) -> None:
    """Write to a temporary name beside `path`, then rename; a failed write (disk full) names the
    file and leaves no temporary behind. `sync=False` leaves the fsync to the caller (`sync_files`,
    before anything that names the file is written)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}{TMP_SUFFIX}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            if sync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise StoreError(f"cannot write {path}: {e.strerror or e}") from e


@lru_cache(maxsize=1)
def _syncfs():
    """libc's syncfs(fd) (Linux), or None where there is none."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int]
    return fn


def sync_files(paths: list[Path]) -> None:
    """Make files written with `atomic_write_bytes(sync=False)` durable, with their names: one
    syncfs(2) of their file system (data, inodes and the directory entries of the renames), or one
    fsync per file and per folder where syncfs is missing. Called before the row naming them is written."""
    if not paths:
        return
    fn = _syncfs()
    if fn is not None:
        fd = os.open(paths[0].parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if fn(fd) == 0:
                return
        finally:
            os.close(fd)
    for p in [*paths, *dict.fromkeys(q for p in paths for q in (p.parent, p.parent.parent))]:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        except OSError as e:
            raise StoreError(f"cannot write {p}: {e.strerror or e}") from e
        finally:
            os.close(fd)


def image_relpath(image_id: str) -> str:
    """Where a new image goes, relative to the sweep folder."""
    return f"images/{image_id[:SHARD_CHARS]}/{image_id}.png"


def stamp() -> str:
    return f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"


def open_lock(path: Path) -> int:
    """Open (create) a lock file without following a link and without truncating it."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise StoreError(f"{path} is a symbolic link; sdexp's lock must be a plain file: remove the link "
                             f"(its target is left alone) and run again") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise StoreError(f"{path} is not a plain file; remove it and run again")
    return fd


def replaced_by(part: Path) -> dict:
    """What a merged part file replaces: {"files": [names], "then": "delete" | quarantine folder}."""
    if not part.name.endswith(MERGED_SUFFIX):
        return {}
    try:
        meta = pq.read_schema(part).metadata or {}
        return json.loads(meta[REPLACES_KEY]) if REPLACES_KEY in meta else {}
    except (OSError, pa.ArrowException, ValueError):
        return {}        # an unreadable merged file replaces nothing: its sources still count


def part_schemas(parts: list[Path]) -> dict[Path, pa.Schema | Exception]:
    """Each part file's own schema (its footer), or the error reading it."""
    def one(p):
        try:
            return pq.read_schema(p)
        except (OSError, pa.ArrowException) as e:
            return e

    with ThreadPoolExecutor(8) as pool:
        return dict(zip(parts, pool.map(one, parts)))


def is_rows_schema(schema) -> bool:
    return isinstance(schema, pa.Schema) and "image_id" in schema.names


class Store:
    def __init__(self, folder: Path | str):
        self.folder = Path(folder)
        self.images = self.folder / "images"
        self.rows = self.folder / "rows"
        self.grids = self.folder / "grids"
        self.configs = self.folder / "config"
        self.timings = self.folder / "timings"
        self.quarantine = self.folder / "quarantine"
        self.appended = 0        # part files this Store has written

    @contextmanager
    def lock(self):
        """Create the folders, take the sweep's lock, clear temporary files of killed runs and finish
        replacements a killed compaction or repair left."""
        for d in (self.images, self.rows, self.grids, self.configs):
            d.mkdir(parents=True, exist_ok=True)
        fd = open_lock(self.folder / ".lock")
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StoreError(f"{self.folder} is being written by another sdexp run; wait for it to end") from None
            self.clear_leftovers()
            yield self
        finally:
            os.close(fd)

    def clear_leftovers(self) -> None:
        for d in (self.images, self.rows, self.grids, self.configs, self.timings):
            for tmp in [*d.glob(f".*{TMP_SUFFIX}"), *d.glob(f"*/.*{TMP_SUFFIX}")]:
                tmp.unlink(missing_ok=True)
        self.finish_replacements()

    # rows -----------------------------------------------------------------------------------
    def all_part_files(self) -> list[Path]:
        return sorted(self.rows.glob("part-*.parquet")) if self.rows.is_dir() else []

    def part_files(self) -> list[Path]:
        """The live part files: rows/part-*.parquet but those a merged part file replaces."""
        parts = self.all_part_files()
        gone = {name for p in parts for name in replaced_by(p).get("files", ())}
        return [p for p in parts if p.name not in gone]

    def finish_replacements(self) -> None:
        """Remove (or move to quarantine) the files that merged part files replace."""
        for part in self.all_part_files():
            info = replaced_by(part)
            for name in info.get("files", ()):
                src = self.rows / name
                if not src.exists():
                    continue
                if info.get("then", "delete") == "delete":
                    src.unlink()
                else:
                    dest = self.folder / info["then"] / name
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(src, dest)

    def write_merged(self, table: pa.Table, replaces: list[Path], then: str = "delete") -> Path:
        """One part file holding `table` that replaces `replaces` (then deleted, or moved to the
        quarantine folder `then`): the rename is the moment of change, so a kill leaves either the
        old files or the new one in effect, never both and never neither."""
        meta = {REPLACES_KEY: json.dumps({"files": [p.name for p in replaces], "then": then}).encode()}
        path = self.rows / f"part-{stamp()}{MERGED_SUFFIX}"
        buf = pa.BufferOutputStream()
        pq.write_table(table.replace_schema_metadata(meta), buf, row_group_size=1 << 16)
        atomic_write_bytes(path, buf.getvalue().to_pybytes())
        self.finish_replacements()
        return path

    def append_rows(self, rows: list[dict]) -> Path:
        buf = pa.BufferOutputStream()
        pq.write_table(rows_table(rows), buf)
        path = self.rows / f"part-{stamp()}.parquet"
        atomic_write_bytes(path, buf.getvalue().to_pybytes())
        self.appended += 1
        if self.appended % COMPACT_EVERY == 0:     # called with the store locked, as every writer is
            from .compact import compact

            compact(self)
        return path

    def dataset(self, columns: list[str] | None = None, parts: list[Path] | None = None) -> ds.Dataset:
        """The live part files as one pyarrow dataset in the declared schema. Part files that are not
        sdexp rows (no image_id) are left out; an unreadable one is an error naming it. With `columns`
        all declared, footers are not read (the fast path of the resume check)."""
        parts = self.part_files() if parts is None else parts
        schema = row_schema()
        if columns is None or not set(columns) <= set(schema.names):
            found = part_schemas(parts)
            for p, s in found.items():
                if isinstance(s, Exception):
                    raise unreadable(p, s)
            parts = [p for p in parts if is_rows_schema(found[p])]
            schema = read_schema([found[p] for p in parts], schema)
        return ds.dataset([str(p) for p in parts], schema=schema, format="parquet")

    def read_table(self, columns: list[str] | None = None, filters=None) -> pa.Table:
        dataset = self.dataset(columns)
        if filters is not None and not isinstance(filters, ds.Expression):
            filters = pq.filters_to_expression(filters)
        try:
            return dataset.to_table(columns=columns, filter=filters)
        except (OSError, pa.ArrowException) as e:
            for p, s in part_schemas(self.part_files()).items():
                if isinstance(s, Exception):
                    raise unreadable(p, s) from None
            raise StoreError(f"{self.rows}: cannot read the rows ({e}); run `sdexp verify {self.folder}`") from None

    def load_rows(self, columns: list[str] | None = None, filters=None) -> pd.DataFrame:
        if not self.part_files():
            return pd.DataFrame(columns=columns) if columns else pd.DataFrame()
        return self.read_table(columns, filters).to_pandas()

    def image_ids(self) -> set[str]:
        """The stored image ids: the resume check, which reads the image_id column alone."""
        if not self.part_files():
            return set()
        ids = set(self.read_table(["image_id"]).column("image_id").to_pylist())
        ids.discard(None)
        return ids

    # images and configs ---------------------------------------------------------------------
    def write_image(self, image_id: str, image, sync: bool = True) -> dict:
        """Write a PIL image (with its text chunks), or the bytes of a PNG encoded elsewhere (a Ray
        worker), atomically into its subfolder. Returns the row's facts about it: image_path
        (relative to the store), image_sha256 and image_bytes of the file. `sync=False`: not yet
        durable; `sync_files` the images before writing their rows."""
        data = image if isinstance(image, bytes) else png_bytes(image)
        rel = image_relpath(image_id)
        path = self.folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data, sync)
        return {"image_path": rel, "image_sha256": hashlib.sha256(data).hexdigest(), "image_bytes": len(data)}

    def write_png(self, image_id: str, image) -> str:
        """Write a PIL image; returns its path relative to the store."""
        return self.write_image(image_id, image)["image_path"]

    def save_timings(self, batches: list[dict]) -> Path | None:
        """One run's stage timings, one row per batch and VAE (sdexp.stages), as timings/run-*.parquet."""
        if not batches:
            return None
        self.timings.mkdir(parents=True, exist_ok=True)
        buf = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pylist(batches), buf)
        path = self.timings / f"run-{stamp()}.parquet"
        atomic_write_bytes(path, buf.getvalue().to_pybytes())
        return path

    def save_config(self, configs: list[dict]) -> Path:
        path = self.configs / f"run-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}.yaml"
        atomic_write_bytes(path, yaml.safe_dump({"jobs": configs}, sort_keys=False, allow_unicode=True).encode())
        return path


def unreadable(part: Path, error: Exception) -> StoreError:
    folder = part.parent.parent
    return StoreError(f"{part} cannot be read ({type(error).__name__}: {error}); `sdexp verify {folder} --repair` "
                      f"moves it to {folder / 'quarantine'}/ and the next run renders its images again")


def not_a_store(folder) -> str:
    return (f"folder={str(folder)!r} holds no sdexp results (no rows/ folder); "
            f"valid: a results/<name> folder written by a sweep")


def load_rows(folder: Path | str, columns: list[str] | None = None, filters=None) -> pd.DataFrame:
    """One row per image of a stored sweep, as a pandas DataFrame (see the README for the schema).
    columns: read only these; filters: a pyarrow expression or DNF tuples, [("cfg", ">", 5)]."""
    folder = Path(folder)
    if not (folder / "rows").is_dir():
        raise FileNotFoundError(f"{folder} holds no sdexp results (no rows/ folder)")
    return Store(folder).load_rows(columns, filters)
