"""Compaction: many part files become one, atomically; killed at any step, no row is lost or read
twice, and the next locked run finishes what the killed one began."""
from __future__ import annotations

import shutil
import time

import pytest

import sdexp
from sdexp.compact import COMPACT_AT, compact, compact_if_needed
from sdexp.store import MERGED_SUFFIX, Store
from helpers import run_cli
from store_helpers import killed_after, killed_at_step, synthetic_store


def ids(folder):
    return sdexp.load_rows(folder, columns=["image_id"]).image_id.tolist()


def test_compact_merges_every_row_once(tmp_path):
    store = synthetic_store(tmp_path / "s", parts=30, rows_per_part=3)
    before = sdexp.load_rows(store.folder).sort_values("seed").reset_index(drop=True)
    with store.lock():
        done = compact(store)
    assert done["merged"] == 30 and done["rows"] == 90
    assert [p.name for p in store.all_part_files()] == [done["path"].name]
    after = sdexp.load_rows(store.folder).sort_values("seed").reset_index(drop=True)
    assert after.equals(before)


def test_sweep_end_compacts_above_the_threshold(tmp_path):
    store = synthetic_store(tmp_path / "s", parts=COMPACT_AT, rows_per_part=1)
    with store.lock():
        compact_if_needed(store, log=lambda m: None)
        assert len(store.part_files()) == COMPACT_AT          # not above: left alone
        store.append_rows([{"image_id": "extra", "image_path": "images/ex/extra.png"}])
        said = []
        compact_if_needed(store, log=said.append)
    assert len(store.part_files()) == 1 and "compacted 65 part files" in said[0]
    assert len(ids(store.folder)) == COMPACT_AT + 1


def test_cli_compact(tmp_path, capsys):
    from sdexp.compact import main

    store = synthetic_store(tmp_path / "s", parts=5, rows_per_part=2)
    out = run_cli(["compact", str(store.folder)], cwd=tmp_path)
    assert "5 part files (10 rows) merged" in out.stdout
    assert len(store.part_files()) == 1
    assert main([str(tmp_path / "nothing")]) == 2
    assert capsys.readouterr().err.startswith("sdexp: error: folder=")


def compact_locked(folder):
    def run():
        with Store(folder).lock() as store:
            compact(store)
    return run


def test_killed_at_every_step_loses_and_repeats_nothing(tmp_path):
    """The merged file's rename and each deletion after it: a kill at each leaves the rows whole."""
    base = synthetic_store(tmp_path / "base", parts=4, rows_per_part=3)
    expected = sorted(ids(base.folder))
    step = 1
    while True:
        folder = tmp_path / f"k{step}"
        shutil.copytree(base.folder, folder)
        killed = killed_at_step(compact_locked(folder), step)
        assert sorted(ids(folder)) == expected, f"killed at step {step}"        # read as is, before any repair
        with Store(folder).lock():                                            # the next run finishes it
            pass
        assert sorted(ids(folder)) == expected
        assert len(Store(folder).all_part_files()) == (4 if step == 1 else 1)
        if not killed:
            break
        step += 1
    assert step >= 6            # the rename and four deletions were each a kill point


@pytest.mark.slow
def test_killed_at_random_moments(tmp_path):
    """SIGKILL at moments spread over a compaction of 200 part files (fractions of its own duration);
    then load, finish and compact again."""
    base = synthetic_store(tmp_path / "base", parts=200, rows_per_part=2, images=False)
    expected = sorted(ids(base.folder))
    shutil.copytree(base.folder, tmp_path / "timed")
    t0 = time.monotonic()
    compact_locked(tmp_path / "timed")()
    took = time.monotonic() - t0
    for i, after in enumerate(took * f for f in (0.1, 0.4, 0.7, 0.9, 0.98)):
        folder = tmp_path / f"r{i}"
        shutil.copytree(base.folder, folder)
        killed_after(compact_locked(folder), after)
        assert sorted(ids(folder)) == expected
        with Store(folder).lock() as store:
            compact(store)
        assert sorted(ids(folder)) == expected
        parts = Store(folder).all_part_files()
        assert len(parts) == 1 and parts[0].name.endswith(MERGED_SUFFIX)
