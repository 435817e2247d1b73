"""`sdexp compact RESULTS/NAME`: merge a store's small part files into one larger file.

A sweep writes one part file per batch; reading slows with their number. A sweep ends by
compacting when it has more than COMPACT_AT small part files. The merged file lists the files it
replaces in its metadata and is renamed into place in one step: from then on readers skip the
old files, which are deleted right after (or by the next run, if this one is killed). No row is
lost or read twice, whenever the process is killed.
"""
from __future__ import annotations

import argparse
import sys

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from .schema import read_schema
from .store import Store, StoreError, is_rows_schema, not_a_store, part_schemas

COMPACT_AT = 64                 # small part files a sweep leaves before it compacts them
LARGE_ROWS = 50_000             # a part file with this many rows is left as it is


def small_parts(store: Store) -> tuple[list, dict]:
    """Readable sdexp part files under LARGE_ROWS rows (damaged and foreign ones are left to verify)."""
    parts = store.part_files()
    schemas = part_schemas(parts)
    ok = [p for p in parts if is_rows_schema(schemas[p])]
    small = []
    for p in ok:
        try:
            if pq.read_metadata(p).num_rows < LARGE_ROWS:
                small.append(p)
        except (OSError, pa.ArrowException):
            continue
    return small, schemas


def compact(store: Store, at_least: int = 2) -> dict:
    """Merge the small part files into one, if there are at least `at_least`. Call with the store
    locked. Returns {"merged": files merged, "rows": rows, "path": the new file or None}."""
    small, schemas = small_parts(store)
    if len(small) < max(at_least, 2):
        return {"merged": 0, "rows": 0, "path": None}
    schema = read_schema([schemas[p] for p in small])
    try:
        table = ds.dataset([str(p) for p in small], schema=schema, format="parquet").to_table()
    except (OSError, pa.ArrowException) as e:
        raise StoreError(f"{store.rows}: cannot read every part file ({e}); run `sdexp verify {store.folder}` "
                         f"first") from None
    path = store.write_merged(table, small, then="delete")
    return {"merged": len(small), "rows": table.num_rows, "path": path}


def compact_if_needed(store: Store, log=print) -> None:
    """What a sweep does at its end: compact when more than COMPACT_AT small part files are left."""
    done = compact(store, at_least=COMPACT_AT + 1)
    if done["path"] is not None:
        log(f"sdexp: compacted {done['merged']} part files ({done['rows']} rows) into {done['path'].name}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="sdexp compact",
                                     description="Merge a stored sweep's small part files into one file.")
    parser.add_argument("folder", help="the sweep's folder, e.g. results/demo")
    args = parser.parse_args(argv)
    store = Store(args.folder)
    if not store.rows.is_dir():
        print(f"sdexp: error: {not_a_store(args.folder)}", file=sys.stderr)
        return 2
    try:
        with store.lock():
            done = compact(store)
    except StoreError as e:
        print(f"sdexp: error: {e}", file=sys.stderr)
        return 1
    if done["path"] is None:
        print(f"sdexp: compact: nothing to merge in {store.rows}")
    else:
        print(f"sdexp: compact: {done['merged']} part files ({done['rows']} rows) merged into {done['path']}")
    return 0
