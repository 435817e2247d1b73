"""A table of store damages on a rendered sweep: `sdexp verify` names each one, `--repair` moves the
damaged files to quarantine/ (nothing deleted), and a rerun ends with one row and one good image per
image id. Also a rerun that meets the damage without verify, and kills during repair."""
from __future__ import annotations

import hashlib
import os
import shutil
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

import sdexp
from sdexp import verify
from sdexp.hydra_setup import register_all
from sdexp.paths import CONF_DIR
from sdexp.store import Store
from sdexp.sweep import run_sweep
from store_helpers import killed_after, killed_at_step, synthetic_store

N_IMAGES = 6        # 6 seeds in batches of 2: three part files


def sweep_cfgs(root):
    register_all()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfgs = [compose("config", overrides=["cfg=3", "steps=1", "seed=[0,1,2,3,4,5]", "prompts=single",
                                             "name=dmg", "run.batch_size=2", f"results_root={root}"])]
    GlobalHydra.instance().clear()
    return cfgs


def rerun(root) -> list[str]:
    said = []
    run_sweep(sweep_cfgs(root), [], log=said.append)
    return said


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    root = tmp_path_factory.mktemp("verify") / "results"
    rerun(root)
    return root


@pytest.fixture
def copy(rendered, tmp_path):
    root = tmp_path / "results"
    shutil.copytree(rendered, root)
    return root


def assert_clean(folder, n=N_IMAGES):
    df = sdexp.load_rows(folder)
    assert len(df) == n and df.image_id.is_unique
    for rec in df.to_dict("records"):
        data = (folder / rec["image_path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == rec["image_sha256"] and len(data) == rec["image_bytes"]
    assert verify.inspect(Store(folder)).clean


# each damage: what it does, returning the path (relative to the sweep) that verify must name; each
# touches its own part file or image, so that all of them can be done to one store together
def part_images(store, k):
    return [store.folder / p for p in pq.read_table(store.part_files()[k], columns=["image_path"])
            .column("image_path").to_pylist()]


def delete_png(store):
    p = part_images(store, 0)[0]
    p.unlink()
    return p


def garbage_png(store, same_size=True):
    p = part_images(store, 0)[1] if same_size else part_images(store, 1)[0]
    p.write_bytes(os.urandom(p.stat().st_size if same_size else 100))
    return p


def truncate_part(store):
    p = store.part_files()[2]
    p.write_bytes(p.read_bytes()[:200])
    return p


def foreign_parquet(store):
    pq.write_table(pa.table({"x": [1, 2]}), store.rows / "part-foreign.parquet")
    pq.write_table(pa.table({"y": ["a"]}), store.rows / "other.parquet")
    return store.rows / "part-foreign.parquet"


def duplicate_part(store):
    src = store.part_files()[1]
    dest = store.rows / "part-zzzzcopy.parquet"
    shutil.copy(src, dest)
    return dest


DAMAGES = {"deleted png": delete_png, "garbage png": garbage_png,
           "garbage png of another size": lambda s: garbage_png(s, same_size=False),
           "truncated part file": truncate_part, "foreign parquet": foreign_parquet,
           "duplicated part file": duplicate_part}
CHEAP = ["deleted png", "garbage png of another size", "truncated part file", "foreign parquet",
         "duplicated part file"]     # what the cheap check of every rerun sees


def damage_all(folder, names):
    store = Store(folder)
    parts = store.part_files()        # before any damage adds part files
    store.part_files = lambda: parts
    paths = [DAMAGES[n](store).relative_to(folder).as_posix() for n in names]
    del store.part_files
    return paths


@pytest.mark.parametrize("damage", DAMAGES)
def test_verify_names_and_repair_moves_each_damage(copy, damage, capsys):
    folder = copy / "dmg"
    files_before = sum(1 for p in folder.rglob("*") if p.is_file())
    stored_before = Store(folder).image_ids()
    path = DAMAGES[damage](Store(folder)).relative_to(folder).as_posix()
    capsys.readouterr()
    assert verify.main([str(folder)]) == 1
    out = capsys.readouterr().out
    assert path in out and "--repair" in out
    assert verify.main([str(folder), "--repair"]) == 0
    quarantined = [p.relative_to(folder).as_posix() for p in (folder / "quarantine").rglob("*") if p.is_file()]
    if damage != "deleted png":
        assert any(q.endswith(path) for q in quarantined), quarantined
    assert verify.inspect(Store(folder)).clean
    df = sdexp.load_rows(folder)
    assert df.image_id.is_unique
    assert set(df.image_id) < stored_before or damage in ("foreign parquet", "duplicated part file")
    files_after = sum(1 for p in folder.rglob("*") if p.is_file() and "quarantine" not in p.parts)
    assert files_after + len(quarantined) >= files_before        # nothing deleted


def test_every_damage_verify_repair_then_rerun_ends_clean(copy, capsys):
    folder = copy / "dmg"
    paths = damage_all(folder, list(DAMAGES))
    assert verify.main([str(folder)]) == 1
    out = capsys.readouterr().out
    assert all(p in out for p in paths), out
    assert verify.main([str(folder), "--repair"]) == 0
    said = rerun(copy)
    assert any(f"{N_IMAGES} images planned" in s and "0 to render" not in s for s in said)
    assert_clean(folder)
@pytest.mark.slow
def test_rerun_alone_repairs_what_the_cheap_check_sees(copy):
    folder = copy / "dmg"
    damage_all(folder, CHEAP)
    said = rerun(copy)
    assert any(line.startswith("sdexp: store check:") for line in said)
    assert_clean(folder)


def test_report_draws_around_a_missing_png(copy):
    from sdexp.report import build_report

    folder = copy / "dmg"
    delete_png(Store(folder))
    assert build_report(folder, log=lambda *a: None).is_file()


def test_rerun_after_killed_compaction(copy):
    from sdexp.compact import compact

    folder = copy / "dmg"

    def compact_locked():
        with Store(folder).lock() as store:
            compact(store)

    assert killed_at_step(compact_locked, 2)           # the merged file in place, its sources not yet deleted
    assert len(sdexp.load_rows(folder)) == N_IMAGES
    said = rerun(copy)
    assert f"sdexp: {N_IMAGES} images planned, {N_IMAGES} already stored, 0 to render" in said
    assert_clean(folder)
    assert len(Store(folder).all_part_files()) == 1


def damaged_synthetic(folder):
    """A synthetic store with every kind of damage: images deleted and overwritten (same size),
    a duplicated part file and a foreign one. Returns the image ids that stay good."""
    store = synthetic_store(folder, parts=4, rows_per_part=3)
    df = sdexp.load_rows(folder)
    (folder / df.image_path.iloc[0]).unlink()
    bad = folder / df.image_path.iloc[4]
    bad.write_bytes(os.urandom(bad.stat().st_size))
    shutil.copy(store.part_files()[1], store.rows / "part-zzzzcopy.parquet")
    pq.write_table(pa.table({"x": [1]}), store.rows / "foreign.parquet")
    return sorted(set(df.image_id) - {df.image_id.iloc[0], df.image_id.iloc[4]})


def repair_locked(folder):
    def run():
        with Store(folder).lock() as store:
            verify.repair(store, verify.inspect(store))
    return run


def assert_repaired(folder, good, files):
    assert verify.main([str(folder), "--repair"]) == 0
    assert sorted(sdexp.load_rows(folder).image_id) == good
    assert verify.inspect(Store(folder)).clean
    kept = sum(1 for p in folder.rglob("*") if p.is_file() and p.name != ".lock")
    assert kept >= files, "a file was deleted"


def test_repair_killed_at_every_step(tmp_path, capsys):
    base = tmp_path / "base"
    good = damaged_synthetic(base)
    files = sum(1 for p in base.rglob("*") if p.is_file())
    step = 1
    while True:
        folder = tmp_path / f"k{step}"
        shutil.copytree(base, folder)
        killed = killed_at_step(repair_locked(folder), step)
        assert_repaired(folder, good, files)
        if not killed:
            break
        step += 1
    assert step >= 5        # two images and two part files moved, one part file rewritten


@pytest.mark.slow
def test_repair_killed_at_random_moments(tmp_path, capsys):
    base = tmp_path / "base"
    store = synthetic_store(base, parts=150, rows_per_part=3)
    df = sdexp.load_rows(base)
    for p in df.image_path.iloc[::7]:
        (base / p).unlink()
    for p in store.part_files()[::9]:
        shutil.copy(p, p.with_name(p.stem + "-zcopy.parquet"))
    good = sorted(set(df.image_id) - set(df.image_id.iloc[::7]))
    files = sum(1 for p in base.rglob("*") if p.is_file())
    shutil.copytree(base, tmp_path / "timed")
    t0 = time.monotonic()
    repair_locked(tmp_path / "timed")()
    took = time.monotonic() - t0
    for i, after in enumerate(took * f for f in (0.2, 0.5, 0.8, 0.95)):
        folder = tmp_path / f"r{i}"
        shutil.copytree(base, folder)
        killed_after(repair_locked(folder), after)
        assert_repaired(folder, good, files)
