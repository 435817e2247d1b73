"""The declared Arrow schema of a store's rows (results/<name>/rows/*.parquet).

Every column has one type in every part file, null or not, so pyarrow datasets, polars and duckdb
read the rows of many sweeps as one table. `row_schema()` is built from two lists of
(column, Arrow type): the axis columns (the settings a cell is made of) and the fact columns
(sources, hashes, scores, timings, versions). `extra` appends more, such as new axes.

Rows written before this schema (optional columns null-typed, or missing) still read: `conform`
casts a table to the declared types, adds missing columns as nulls and keeps unknown columns,
appended after the declared ones.
"""
from __future__ import annotations

from typing import Iterable

import pyarrow as pa

from .axes import arrow_types

STR, INT, FLOAT = pa.string(), pa.int64(), pa.float64()

# The settings of a cell: every column of the axis registry (sdexp/axes.py), with its declared type.
AXIS_COLUMNS: list[tuple[str, pa.DataType]] = [(name, getattr(pa, kind)()) for name, kind in arrow_types().items()]

# Identity of the row and everything recorded about how its image was made and stored.
FACT_COLUMNS: list[tuple[str, pa.DataType]] = [
    ("sweep", STR), ("cell_id", STR), ("image_id", STR),
    ("model_source", STR), ("model_hash", STR), ("vae_source", STR), ("vae_hash", STR), ("scheduler", STR),
    ("lora_source", STR), ("lora_hash", STR), ("lcm_lora_source", STR), ("lcm_lora_hash", STR), ("extra_lora_hashes", STR),
    ("embedding_source", STR), ("embedding_hash", STR), ("init_image_source", STR), ("init_image_hash", STR),
    ("refiner_source", STR), ("refiner_hash", STR), ("final_width", INT), ("final_height", INT),
    ("image_path", STR), ("image_sha256", STR), ("image_bytes", INT), ("image_flags", STR),
    ("clip_score", FLOAT), ("clip_model", STR),
    ("seconds", FLOAT), ("warmup_seconds", FLOAT), ("batch_size", INT), ("batch_index", INT), ("batch_id", STR),
    ("device", STR), ("dtype", STR), ("sdexp_version", STR), ("torch_version", STR),
    ("diffusers_version", STR), ("transformers_version", STR), ("python_version", STR),
    ("created_at", STR),
]


def row_schema(extra: Iterable[tuple[str, pa.DataType]] = ()) -> pa.Schema:
    """The rows' schema: identity first, then the axes, then the other facts, then `extra`."""
    ident = FACT_COLUMNS[:3]
    fields = ident + AXIS_COLUMNS + FACT_COLUMNS[3:] + list(extra)
    seen: dict[str, pa.DataType] = {}
    for name, type_ in fields:
        seen.setdefault(name, type_)
    return pa.schema(list(seen.items()))


def infer_type(values: list) -> pa.DataType:
    """The Arrow type of a column the schema does not declare (string when all values are null)."""
    kinds = {type(v) for v in values if v is not None}
    if not kinds:
        return STR
    if kinds <= {bool}:
        return pa.bool_()
    if kinds <= {int}:
        return INT
    if kinds <= {int, float}:
        return FLOAT
    if kinds <= {str}:
        return STR
    return pa.array([v for v in values if v is not None]).type


def rows_table(rows: list[dict], schema: pa.Schema | None = None) -> pa.Table:
    """Rows (dicts) as a table of the declared schema; columns the rows lack are null, columns the
    schema lacks are appended with an inferred type."""
    schema = schema or row_schema()
    names = list(dict.fromkeys(k for r in rows for k in r))
    extra = [(n, infer_type([r.get(n) for r in rows])) for n in names if n not in schema.names]
    full = pa.schema([*schema, *(pa.field(n, t) for n, t in extra)])
    return pa.Table.from_pylist(rows, schema=full)


def read_schema(physical: Iterable[pa.Schema], schema: pa.Schema | None = None) -> pa.Schema:
    """The schema to read part files with: the declared one, then the columns only some files hold
    (typed as in the first file that has them as non-null)."""
    schema = schema or row_schema()
    extra: dict[str, pa.DataType] = {}
    for s in physical:
        for f in s:
            if f.name not in schema.names and (f.name not in extra or pa.types.is_null(extra[f.name])):
                extra[f.name] = STR if pa.types.is_null(f.type) else f.type
    return pa.schema([*schema, *(pa.field(n, t) for n, t in extra.items())])


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` with exactly the columns of `schema`, in its order and types (missing ones null)."""
    columns = []
    for f in schema:
        if f.name in table.column_names:
            col = table.column(f.name)
            columns.append(col if col.type == f.type else col.cast(f.type))
        else:
            columns.append(pa.nulls(len(table), f.type))
    return pa.Table.from_arrays(columns, schema=schema)
