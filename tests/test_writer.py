"""The writer pool (sdexp.writer): images written, made durable, then the rows that name them; killed
with SIGKILL at every file-system change, no stored row names a missing or partial image."""
from __future__ import annotations

import hashlib
import os

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import sdexp.writer as writer_module
from sdexp.store import Store, StoreError, image_relpath
from sdexp.writer import Writer
from store_helpers import killed_at_step

BATCHES, PER_BATCH = 4, 3


def batches():
    """BATCHES batches of PER_BATCH distinct noise images (64x64, so each PNG is a few KiB) and rows."""
    rng = np.random.default_rng(0)
    out = []
    for b in range(BATCHES):
        images, rows = [], []
        for k in range(PER_BATCH):
            image_id = hashlib.sha256(f"{b}-{k}".encode()).hexdigest()[:16]
            images.append((image_id, Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))))
            rows.append({"sweep": "w", "image_id": image_id, "seed": b * PER_BATCH + k})
        out.append((b, images, rows))
    return out


def write_all(folder, **kw):
    """What a sweep does with its batches: those not yet stored go to the writer (resume)."""
    with Store(folder).lock() as store, Writer(store, threads=2, max_pending=2, **kw) as writer:
        done = store.image_ids()
        for key, images, rows in batches():
            if images[0][0] not in done:
                writer.submit(key, images, rows)


def check_rows_name_whole_images(folder) -> int:
    """Every stored row's image exists and has the row's sha256 and size; returns the row count."""
    store = Store(folder)
    rows = store.load_rows()
    for r in rows.itertuples():
        data = (store.folder / r.image_path).read_bytes()
        assert r.image_path == image_relpath(r.image_id)
        assert len(data) == r.image_bytes and hashlib.sha256(data).hexdigest() == r.image_sha256
        Image.open(store.folder / r.image_path).load()
    return len(rows)


def test_writes_every_image_and_row(tmp_path):
    write_all(tmp_path / "s")
    assert check_rows_name_whole_images(tmp_path / "s") == BATCHES * PER_BATCH
    assert len(Store(tmp_path / "s").part_files()) == BATCHES        # one part file per batch


def test_rows_follow_the_sync_of_their_images(tmp_path, monkeypatch):
    """The order of events: each part file is renamed into place only after its images were renamed
    into place and synced."""
    events = []
    real_replace, real_sync = os.replace, writer_module.sync_files

    def replace(src, dst):
        real_replace(src, dst)
        events.append(("rename", str(dst)))

    def sync(paths):
        real_sync(paths)
        events.append(("sync", {str(p) for p in paths}))

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(writer_module, "sync_files", sync)
    write_all(tmp_path / "s")
    store = Store(tmp_path / "s")
    for part in store.part_files():
        at = events.index(("rename", str(part)))
        names = {str(store.folder / p) for p in pd.read_parquet(part).image_path}
        assert len(names) == PER_BATCH
        synced = set().union(*(e[1] for e in events[:at] if e[0] == "sync"))
        renamed = {e[1] for e in events[:at] if e[0] == "rename"}
        assert names <= synced and names <= renamed


def test_one_sync_per_batch_instead_of_one_fsync_per_file(tmp_path, monkeypatch):
    calls = {"fsync": 0, "syncfs": 0}
    real_fsync = os.fsync

    def fsync(fd):
        calls["fsync"] += 1
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    write_all(tmp_path / "each", durable_each=True)
    each = dict(calls)
    calls.update(fsync=0)
    from sdexp import store as store_module

    real = store_module._syncfs()
    if real is not None:
        monkeypatch.setattr(store_module, "_syncfs", lambda: lambda fd: calls.__setitem__(
            "syncfs", calls["syncfs"] + 1) or real(fd))
    write_all(tmp_path / "batch")
    assert each["fsync"] == BATCHES * (PER_BATCH + 1)                 # every image and part file
    if real is not None:
        assert calls == {"fsync": BATCHES, "syncfs": BATCHES}         # the part files, one sync per batch
    assert check_rows_name_whole_images(tmp_path / "batch") == BATCHES * PER_BATCH


def test_a_failed_batch_is_raised_and_writes_no_row(tmp_path, monkeypatch):
    import errno

    def full(*a, **k):
        raise StoreError("cannot write x: " + os.strerror(errno.ENOSPC))

    monkeypatch.setattr(writer_module, "sync_files", full)
    with pytest.raises(StoreError, match="No space left"):
        write_all(tmp_path / "s")
    assert Store(tmp_path / "s").part_files() == []


def test_killed_at_every_step_rows_name_only_whole_images(tmp_path):
    """A SIGKILL at each rename (images, part files) and deletion: the rows then stored name whole
    images; the next locked run removes the temporary files and writes the rest."""
    step, killed_any = 1, False
    while True:
        folder = tmp_path / f"k{step}"
        killed = killed_at_step(lambda: write_all(folder), step)
        stored = check_rows_name_whole_images(folder)
        if not killed:
            assert stored == BATCHES * PER_BATCH
            break
        killed_any = True
        assert stored < BATCHES * PER_BATCH
        write_all(folder)                       # the rerun: leftovers cleared, the rest written
        assert check_rows_name_whole_images(folder) == BATCHES * PER_BATCH
        assert not [p for p in folder.rglob(".*.tmp")]
        step += 1
    assert killed_any and step > BATCHES * (PER_BATCH + 1)     # every image and part-file rename was a kill point
