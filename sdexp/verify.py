"""`sdexp verify RESULTS/NAME [--repair]`: every row has exactly one readable image whose content
hash matches the one recorded when it was written; duplicate rows, foreign files and unreadable
part files are named. `--repair` moves damaged and foreign files into RESULTS/NAME/quarantine/
(nothing is deleted) and drops the rows whose image is missing or damaged, so the next run
renders those images again.

Every rerun starts with the cheap form (`quick_repair`): part-file footers, the image_id column,
and each image's presence and size, without reading the images.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from .schema import conform, read_schema
from .store import TMP_SUFFIX, Store, StoreError, is_rows_schema, not_a_store, part_schemas, stamp

CHECK_COLUMNS = ("image_id", "image_path", "image_bytes", "image_sha256")


@dataclass
class Finding:
    path: str                 # relative to the sweep folder
    problem: str

    def line(self) -> str:
        return f"{self.path}: {self.problem}"


@dataclass
class Inspection:
    findings: list[Finding] = field(default_factory=list)
    move: list[str] = field(default_factory=list)                 # files to quarantine (relative paths)
    drop: dict[str, set[int]] = field(default_factory=dict)       # part file name -> row positions to drop
    rows: int = 0
    images: int = 0

    @property
    def clean(self) -> bool:
        return not self.findings


def inspect(store: Store, deep: bool = True) -> Inspection:
    """What is wrong with a store. `deep` also hashes every image and reads every part file whole,
    and names files no row refers to; the cheap form stats images and reads footers only."""
    out = Inspection()
    parts = store.part_files()
    schemas = part_schemas(parts)
    good = []
    for p, s in schemas.items():
        if isinstance(s, Exception):
            out.findings.append(Finding(rel(store, p), f"unreadable part file ({type(s).__name__}: {s})"))
            out.move.append(rel(store, p))
        elif not is_rows_schema(s):
            out.findings.append(Finding(rel(store, p), "foreign file: a Parquet file without sdexp's image_id"))
            out.move.append(rel(store, p))
        else:
            good.append(p)
    table, bad = read_check_columns(good, schemas, deep)
    for p, e in bad.items():
        out.findings.append(Finding(rel(store, p), f"unreadable part file ({type(e).__name__}: {e})"))
        out.move.append(rel(store, p))
    out.rows = table.num_rows
    _check_rows(store, table.to_pylist(), deep, out)
    _foreign_rows_files(store, out)
    if deep:
        _unnamed_images(store, table.column("image_path").to_pylist() if table.num_rows else [], out)
    return out


def read_check_columns(parts: list[Path], schemas: dict, deep: bool) -> tuple[pa.Table, dict]:
    """image_id, image_path, image_bytes, image_sha256 with each row's file and position; part files
    that fail to read are returned apart (each read alone once the read of all of them fails)."""
    schema = read_schema([schemas[p] for p in parts])
    columns = [c for c in CHECK_COLUMNS]
    if deep:
        tables, bad = [], {}
        for p in parts:
            try:
                t = pq.read_table(p)          # every page read, not only the columns checked
                tables.append(_tag(conform(t, schema).select(columns), p))
            except (OSError, pa.ArrowException) as e:
                bad[p] = e
        return _concat(tables, columns), bad
    try:
        dataset = ds.dataset([str(p) for p in parts], schema=schema, format="parquet")
        t = dataset.to_table(columns=[*columns, "__filename"])
        names = pa.array([Path(f).name for f in t.column("__filename").to_pylist()])
        t = t.drop_columns(["__filename"]).append_column("part", names)
        return _positions(t), {}
    except (OSError, pa.ArrowException):
        tables, bad = [], {}
        for p in parts:
            try:
                tables.append(_tag(conform(pq.read_table(p), schema).select(columns), p))
            except (OSError, pa.ArrowException) as e:
                bad[p] = e
        return _concat(tables, columns), bad


def _tag(t: pa.Table, part: Path) -> pa.Table:
    return t.append_column("part", pa.array([part.name] * t.num_rows, pa.string())) \
        .append_column("pos", pa.array(range(t.num_rows), pa.int64()))


def _positions(t: pa.Table) -> pa.Table:
    """Each row's position inside its part file (rows of one file come in file order)."""
    seen: dict[str, int] = {}
    pos = []
    for name in t.column("part").to_pylist():
        pos.append(seen.get(name, 0))
        seen[name] = pos[-1] + 1
    return t.append_column("pos", pa.array(pos, pa.int64()))


def _concat(tables: list[pa.Table], columns: list[str]) -> pa.Table:
    if tables:
        return pa.concat_tables(tables)
    return pa.table({**{c: pa.array([], pa.string()) for c in columns}, "part": pa.array([], pa.string()),
                     "pos": pa.array([], pa.int64())})


def _check_rows(store: Store, rows: list[dict], deep: bool, out: Inspection) -> None:
    """Keep, per image id, the first row whose image is whole; every other row is dropped, and a
    damaged image file is moved aside."""
    status: dict[str, str | None] = {}        # image path -> None when whole, else what is wrong

    def image_problem(row) -> str | None:
        path = row["image_path"]
        if path is None:
            return "row names no image"
        key = (path, row["image_bytes"], row["image_sha256"] if deep else None)
        if key not in status:
            status[key] = _image_problem(store.folder / path, row["image_bytes"],
                                         row["image_sha256"] if deep else None, deep)
        return status[key]

    kept: set[str] = set()
    for row in rows:
        where = f"rows/{row['part']}"
        if row["image_id"] is None:
            out.findings.append(Finding(where, f"row {row['pos']} has no image_id"))
            out.drop.setdefault(row["part"], set()).add(row["pos"])
            continue
        problem = image_problem(row)
        if problem is None and row["image_id"] not in kept:
            kept.add(row["image_id"])
            continue
        out.drop.setdefault(row["part"], set()).add(row["pos"])
        if problem is None:
            out.findings.append(Finding(where, f"duplicate row of image {row['image_id']}"))
            continue
        out.findings.append(Finding(row["image_path"] or where, f"{problem} (image {row['image_id']})"))
        if row["image_path"] and (store.folder / row["image_path"]).exists() \
                and row["image_path"] not in out.move:
            out.move.append(row["image_path"])
    out.images = len(kept)
    # an image that a kept row shows is never moved (another row of it was the damaged one)
    shown = {r["image_path"] for r in rows if r["image_id"] in kept and image_problem(r) is None}
    out.move = [m for m in out.move if m not in shown]


def _image_problem(path: Path, size, sha256: str | None, deep: bool) -> str | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return "image missing"
    if size is not None and st.st_size != size:
        return f"image is {st.st_size} bytes, {size} when written"
    if not deep:
        return None
    data = path.read_bytes()
    if sha256 is not None:
        got = hashlib.sha256(data).hexdigest()
        return None if got == sha256 else f"image content differs from when written (sha256 {got[:12]}, " \
                                          f"{sha256[:12]} when written)"
    return _undecodable(data)


def _undecodable(data: bytes) -> str | None:
    """An image without a recorded hash (written before hashes): it must decode."""
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
    except Exception as e:  # PIL raises many kinds on a damaged file
        return f"image cannot be decoded ({type(e).__name__})"
    return None


def _foreign_rows_files(store: Store, out: Inspection) -> None:
    """Files in rows/ that are not sdexp part files."""
    known = {rel(store, p) for p in store.all_part_files()}
    for p in sorted(store.rows.iterdir()) if store.rows.is_dir() else []:
        r = rel(store, p)
        if p.is_file() and r not in known and not p.name.endswith(TMP_SUFFIX) and r not in out.move:
            out.findings.append(Finding(r, "foreign file in rows/"))
            out.move.append(r)


def _unnamed_images(store: Store, paths: list[str], out: Inspection) -> None:
    """Files in images/ that no row names (a killed run's last images, or foreign files)."""
    named = set(paths)
    for p in sorted(store.images.rglob("*")) if store.images.is_dir() else []:
        r = rel(store, p)
        if p.is_file() and r not in named and not p.name.endswith(TMP_SUFFIX) and r not in out.move:
            out.findings.append(Finding(r, "file in images/ that no row names"))
            out.move.append(r)


def rel(store: Store, path: Path) -> str:
    return path.relative_to(store.folder).as_posix()


def repair(store: Store, found: Inspection) -> Path | None:
    """Move what `inspect` found into quarantine/<time>/ (same relative paths) and drop its rows.
    Call with the store locked. Each step is a rename, so a kill leaves a store the next check
    repairs further; nothing is deleted."""
    if found.clean:
        return None
    name = f"quarantine/{stamp()}"
    target = store.folder / name
    for r in found.move:
        src = store.folder / r
        if src.exists():
            dest = target / r
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dest)
    moved = {Path(r).name for r in found.move if r.startswith("rows/")}
    partial, whole = [], []
    for part, positions in found.drop.items():
        if part in moved or not (store.rows / part).exists():
            continue
        n = pq.read_metadata(store.rows / part).num_rows
        (whole if len(positions) >= n else partial).append(part)
    for part in whole:
        dest = target / "rows" / part
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(store.rows / part, dest)
    if partial:
        tables = [pq.read_table(store.rows / p) for p in partial]
        schema = read_schema([t.schema for t in tables])
        kept = [conform(t, schema).take([i for i in range(t.num_rows) if i not in found.drop[p]])
                for p, t in zip(partial, tables)]
        store.write_merged(pa.concat_tables(kept), [store.rows / p for p in partial], then=f"{name}/rows")
    return target


def quick_repair(store: Store, log=print) -> Inspection:
    """The cheap check every rerun starts with; what it finds is moved aside and rendered again."""
    found = inspect(store, deep=False)
    if not found.clean:
        for f in found.findings:
            log(f"sdexp: store check: {f.line()}")
        target = repair(store, found)
        log(f"sdexp: store check: moved {len(found.move)} files to {target}, dropped "
            f"{sum(map(len, found.drop.values()))} rows; their images are rendered again")
    return found


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="sdexp verify",
        description="Check a stored sweep: one readable image per row, matching the hash recorded when it was "
                    "written; name duplicate rows, foreign files and unreadable part files.")
    parser.add_argument("folder", help="the sweep's folder, e.g. results/demo")
    parser.add_argument("--repair", action="store_true",
                        help="move damaged and foreign files to FOLDER/quarantine/ (nothing is deleted) and drop "
                             "their rows, so the next run renders those images again")
    args = parser.parse_args(argv)
    store = Store(args.folder)
    if not store.rows.is_dir():
        print(f"sdexp: error: {not_a_store(args.folder)}", file=sys.stderr)
        return 2
    if not args.repair:
        found = inspect(store)
        _print(found)
        if not found.clean:
            print(f"sdexp: verify: {len(found.findings)} problems; `sdexp verify {args.folder} --repair` moves "
                  f"the damaged files to {store.quarantine}/ and the next run renders their images again")
        return 0 if found.clean else 1
    try:
        with store.lock():
            found = inspect(store)
            _print(found)
            target = repair(store, found)
    except StoreError as e:
        print(f"sdexp: error: {e}", file=sys.stderr)
        return 1
    if target is not None:
        print(f"sdexp: verify: moved {len(found.move)} files to {target}, dropped "
              f"{sum(map(len, found.drop.values()))} rows; run the sweep again to render the missing images")
    return 0


def _print(found: Inspection) -> None:
    for f in found.findings:
        print(f"sdexp: verify: {f.line()}")
    if found.clean:
        print(f"sdexp: verify: {found.rows} rows, {found.images} images: no problems")
