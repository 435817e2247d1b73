"""The store's declared schema, its readers (pandas, pyarrow datasets, polars, duckdb) and its
image subfolders, on real Parquet files and real PNGs."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from PIL import Image

import sdexp
from sdexp.schema import row_schema
from sdexp.store import Store, StoreError, image_relpath


def rows_of(sweep: str, n: int, **extra) -> list[dict]:
    """Rows as a sweep writes them, with the optional columns the sweep does not use left out."""
    return [{"sweep": sweep, "cell_id": f"c{i % 3}", "image_id": f"{sweep}-{i:04d}", "model": "tiny",
             "sampler": "Euler a", "steps": 4, "cfg": 7.0, "clip_skip": 1, "seed": i, "prompt": "a cat",
             "image_path": image_relpath(f"{sweep}-{i:04d}"), "clip_score": 20.0 + i, **extra}
            for i in range(n)]


def test_every_column_typed_even_when_null(tmp_path):
    store = Store(tmp_path / "a")
    store.rows.mkdir(parents=True)
    part = store.append_rows(rows_of("a", 3))
    schema = pq.read_schema(part)
    declared = row_schema()
    assert schema.names[:len(declared)] == declared.names
    for field in declared:
        assert schema.field(field.name).type == field.type, field.name
    assert pq.read_table(part).column("lora").null_count == 3


def test_unknown_columns_are_written_and_read(tmp_path):
    store = Store(tmp_path / "a")
    store.rows.mkdir(parents=True)
    store.append_rows(rows_of("a", 2))
    store.append_rows(rows_of("a", 2, new_axis=1.5, note=None))
    df = store.load_rows()
    assert len(df) == 4 and "new_axis" in df.columns and "note" in df.columns
    assert df.new_axis.isna().sum() == 2 and (df.new_axis.dropna() == 1.5).all()


def write_two_sweeps(root):
    """Two sweeps with different optional columns in use: one with a LoRA, one with img2img."""
    for name, extra in (("lora", {"lora": "style", "lora_weight": 0.8}),
                        ("img2img", {"init_image": "cat.png", "strength": 0.5})):
        store = Store(root / name)
        store.rows.mkdir(parents=True)
        store.append_rows(rows_of(name, 4, **extra))
        store.append_rows(rows_of(name + "b", 2))     # a second part file, without the optional columns


def test_two_sweeps_read_as_one_table(tmp_path):
    write_two_sweeps(tmp_path)
    files = sorted(str(p) for p in tmp_path.glob("*/rows/*.parquet"))
    table = ds.dataset(files, format="parquet").to_table()
    assert table.num_rows == 12
    assert sorted(set(table.column("lora").drop_null().to_pylist())) == ["style"]
    assert table.column("strength").drop_null().to_pylist() == [0.5] * 4

    polars = pytest.importorskip("polars")
    frame = polars.scan_parquet(str(tmp_path / "*" / "rows" / "*.parquet")).collect()
    assert frame.height == 12 and frame["lora_weight"].drop_nulls().to_list() == [0.8] * 4

    duckdb = pytest.importorskip("duckdb")
    con = duckdb.connect()
    got = con.execute(f"select sweep, count(*), max(lora_weight), max(strength) from "
                      f"read_parquet('{tmp_path}/*/rows/*.parquet') group by sweep order by sweep").fetchall()
    assert got == [("img2img", 4, None, 0.5), ("img2imgb", 2, None, None), ("lora", 4, 0.8, None),
                   ("lorab", 2, None, None)]


def test_old_part_files_with_null_typed_columns_still_read(tmp_path):
    """Parts written before the schema: optional columns null-typed in one file, strings in another."""
    store = Store(tmp_path / "old")
    store.rows.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows_of("old", 2, lora=None)), store.rows / "part-1.parquet")
    pq.write_table(pa.Table.from_pylist([{**r, "lora": "x", "steps": 4.0}
                                         for r in rows_of("old", 2)]), store.rows / "part-2.parquet")
    assert pq.read_schema(store.rows / "part-1.parquet").field("lora").type == pa.null()
    df = sdexp.load_rows(store.folder)
    assert len(df) == 4 and df.lora.isna().sum() == 2 and set(df.lora.dropna()) == {"x"}
    assert df.steps.tolist() == [4, 4, 4, 4] and str(df.steps.dtype) == "int64"


def test_load_rows_columns_and_filters(tmp_path):
    store = Store(tmp_path / "a")
    store.rows.mkdir(parents=True)
    store.append_rows(rows_of("a", 10))
    df = sdexp.load_rows(store.folder, columns=["image_id", "seed"], filters=[("seed", ">=", 7)])
    assert list(df.columns) == ["image_id", "seed"] and sorted(df.seed) == [7, 8, 9]
    assert store.image_ids() == {f"a-{i:04d}" for i in range(10)}


def test_resume_check_reads_only_image_id(tmp_path, monkeypatch):
    store = Store(tmp_path / "a")
    store.rows.mkdir(parents=True)
    store.append_rows(rows_of("a", 3))
    asked = []
    real = Store.read_table
    monkeypatch.setattr(Store, "read_table", lambda self, columns=None, filters=None:
                        asked.append(columns) or real(self, columns, filters))
    assert len(store.image_ids()) == 3
    assert asked == [["image_id"]]


def test_unreadable_part_file_is_named(tmp_path):
    store = Store(tmp_path / "a")
    store.rows.mkdir(parents=True)
    part = store.append_rows(rows_of("a", 3))
    part.write_bytes(part.read_bytes()[:100])
    with pytest.raises(StoreError, match=part.name):
        store.load_rows()
    with pytest.raises(StoreError, match="verify"):
        store.image_ids()


def test_images_in_subfolders_and_flat_stores_resume(tmp_path):
    store = Store(tmp_path / "a")
    img = Image.fromarray(np.full((8, 8, 3), 7, np.uint8))
    facts = store.write_image("abcdef0123456789", img)
    assert facts["image_path"] == "images/ab/abcdef0123456789.png"
    data = (store.folder / facts["image_path"]).read_bytes()
    assert facts["image_bytes"] == len(data)
    import hashlib
    assert facts["image_sha256"] == hashlib.sha256(data).hexdigest()
    # a flat store of before: rows name images/<id>.png; the ids count as stored
    flat = Store(tmp_path / "flat")
    flat.images.mkdir(parents=True)
    flat.rows.mkdir()
    img.save(flat.images / "0011.png")
    pq.write_table(pa.Table.from_pylist([{"image_id": "0011", "image_path": "images/0011.png"}]),
                   flat.rows / "part-0.parquet")
    assert flat.image_ids() == {"0011"}


def test_lock_never_follows_a_link(tmp_path):
    precious = tmp_path / "precious"
    precious.write_text("keep me")
    store = Store(tmp_path / "a")
    store.folder.mkdir()
    (store.folder / ".lock").symlink_to(precious)
    with pytest.raises(StoreError, match="symbolic link"):
        with store.lock():
            pass
    assert precious.read_text() == "keep me"


def test_lock_is_not_truncated_and_excludes_a_second_run(tmp_path):
    store = Store(tmp_path / "a")
    store.folder.mkdir()
    (store.folder / ".lock").write_text("x")
    with store.lock():
        with pytest.raises(StoreError, match="another sdexp run"):
            with Store(store.folder).lock():
                pass
    assert (store.folder / ".lock").read_text() == "x"


def test_pandas_reads_the_rows_folder(tmp_path):
    write_two_sweeps(tmp_path)
    df = pd.read_parquet(tmp_path / "lora" / "rows")
    assert len(df) == 6


def test_a_full_disk_names_the_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    import errno
    import os

    store = Store(tmp_path / "a")
    store.rows.mkdir(parents=True)

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(StoreError, match=r"cannot write .*rows/part-.*\.parquet: No space left on device"):
        store.append_rows(rows_of("a", 1))
    assert list(store.rows.iterdir()) == []
