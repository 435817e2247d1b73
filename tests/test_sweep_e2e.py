"""End-to-end sweeps through the real console script, into a temporary results root."""
from __future__ import annotations

import os
import signal
import subprocess
import time

import pandas as pd
import pytest
from PIL import Image

import sdexp
from sdexp.metadata import parse_a1111_parameters
from helpers import SDEXP, run_cli

SCHEMA = ["sweep", "cell_id", "image_id", "model", "model_source", "model_hash", "vae", "vae_hash", "sampler",
          "scheduler", "steps", "cfg", "clip_skip", "seed", "prompt", "negative_prompt", "width", "height",
          "image_path", "clip_score", "seconds", "batch_size", "batch_index", "device", "dtype",
          "torch_version", "diffusers_version", "transformers_version", "sdexp_version", "created_at"]


@pytest.mark.slow
def test_multirun_renders_the_whole_grid(tmp_path):
    root = tmp_path / "results"
    proc = run_cli(["-m", "model=tiny", "vae=tiny,tiny_alt", "clip_skip=1,2", "sampler=euler_a,dpmpp_2m_karras",
                    "cfg=1,7", "seed=range(0,2)", "steps=3", "prompts=default", f"results_root={root}",
                    "name=e2e", "grid.x=cfg", "grid.y=sampler", "grid.z=vae"], cwd=tmp_path)
    df = sdexp.load_rows(root / "e2e")
    n_prompts = 2
    assert len(df) == 2 * 2 * 2 * 2 * 2 * n_prompts
    assert df.image_id.is_unique
    assert set(SCHEMA) <= set(df.columns)
    assert set(df.sampler) == {"Euler a", "DPM++ 2M Karras"}
    assert set(df.vae) == {"tiny", "tiny_alt"} and set(df.seed) == {0, 1} and set(df.cfg) == {1.0, 7.0}
    assert df.clip_score.between(0, 100).all()
    # one grid cell = all settings but seed and prompt
    assert df.groupby("cell_id").size().eq(2 * n_prompts).all()
    # the two VAEs decode one shared trajectory: same batch position, different pixels
    first = df.sort_values(["vae"]).groupby(["sampler", "cfg", "clip_skip", "seed", "prompt"]).image_path.apply(list)
    a, b = (Image.open(root / "e2e" / p) for p in first.iloc[0])
    assert a.tobytes() != b.tobytes()
    image = Image.open(root / "e2e" / df.image_path.iloc[0])
    meta = parse_a1111_parameters(image.text["parameters"])
    row = df.iloc[0]
    assert meta["prompt"] == row.prompt and meta["Sampler"] == row.sampler and int(meta["Seed"]) == row.seed
    assert meta["Clip skip"] == str(row.clip_skip) and meta["Model hash"] == row.model_hash[:10]
    grids = sorted((root / "e2e" / "grids").glob("*.png"))
    assert len(grids) == 2 * n_prompts          # clip_skip and prompt are left over: one grid each
    assert all(str(g) in proc.stdout for g in grids)
    # rerunning renders nothing
    again = run_cli(["-m", "model=tiny", "vae=tiny,tiny_alt", "clip_skip=1,2", "sampler=euler_a,dpmpp_2m_karras",
                     "cfg=1,7", "seed=range(0,2)", "steps=3", f"results_root={root}", "name=e2e"], cwd=tmp_path)
    assert "0 to render" in again.stdout
    assert len(sdexp.load_rows(root / "e2e")) == len(df)


@pytest.mark.slow
def test_sweep_file_from_another_directory(tmp_path):
    """sweep=demo resolves by absolute path; command-line values override the sweep's grid."""
    work = tmp_path / "elsewhere"
    work.mkdir()
    run_cli(["-m", "sweep=demo", "seed=0", "steps=2,4", "prompt=a red apple", "results_root=out"], cwd=work)
    df = sdexp.load_rows(work / "out" / "demo")
    assert len(df) == 2 * 3 * 2 and sorted(set(df.steps)) == [2, 4]   # sampler x cfg x steps, one seed and prompt
    assert (work / "out" / "demo" / "grids").glob("*.png")


def test_sdexp_launcher_stores_each_jobs_config_as_hydra_composes_it(tmp_path):
    """A multirun through sdexp's launcher (its jobs reach the planner as resolved plain values)
    renders and stores each job's config: Hydra's own composition of that job, resolved."""
    import yaml
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from sdexp.hydra_setup import register_all
    from sdexp.paths import CONF_DIR

    root = tmp_path / "results"
    fixed = ["steps=2", "prompts=single", "sampler=ddim", f"results_root={root}", "name=launched"]
    run_cli(["-m", "cfg=3,7", *fixed], cwd=tmp_path)
    assert sorted(sdexp.load_rows(root / "launched").cfg) == [3.0, 7.0]
    [saved] = (root / "launched" / "config").glob("run-*.yaml")
    register_all()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        expected = [OmegaConf.to_container(compose("config", overrides=[f"cfg={c}", *fixed]), resolve=True)
                    for c in (3, 7)]
    GlobalHydra.instance().clear()
    assert yaml.safe_load(saved.read_text())["jobs"] == expected


def test_basic_launcher_one_job_per_cell(tmp_path):
    root = tmp_path / "results"
    run_cli(["-m", "hydra/launcher=basic", "cfg=3,7", "steps=2", "prompts=single", f"results_root={root}",
             "name=basic"], cwd=tmp_path)
    df = sdexp.load_rows(root / "basic")
    assert sorted(df.cfg) == [3.0, 7.0] and df.batch_size.eq(1).all()
    assert list((root / "basic" / "grids").glob("*.png"))


@pytest.mark.slow
def test_seed_list_and_random_seed(tmp_path):
    root = tmp_path / "results"
    run_cli(["seed=[5,9]", "steps=2", "prompts=single", f"results_root={root}", "name=seeds"], cwd=tmp_path)
    assert sorted(sdexp.load_rows(root / "seeds").seed) == [5, 9]
    run_cli(["seed=-1", "steps=2", "prompts=single", f"results_root={root}", "name=random"], cwd=tmp_path)
    df = sdexp.load_rows(root / "random")
    assert len(df) == 1 and 0 <= df.seed.iloc[0] < 2**32
    text = Image.open(root / "random" / df.image_path.iloc[0]).text["parameters"]
    assert f"Seed: {df.seed.iloc[0]}," in text


def _part_files(folder):
    return list((folder / "rows").glob("part-*.parquet")) if (folder / "rows").is_dir() else []


@pytest.mark.slow
def test_resume_after_kill(tmp_path):
    root = tmp_path / "results"
    args = ["-m", "vae=tiny,tiny_alt", "cfg=3,7", "seed=range(0,6)", "steps=12", "run.batch_size=2",
            "prompts=default", f"results_root={root}", "name=killed"]
    proc = subprocess.Popen([*SDEXP, *args], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    folder = root / "killed"
    deadline = time.time() + 120
    while len(_part_files(folder)) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the sweep ended before it could be killed; make it longer"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    stored = len(sdexp.load_rows(folder))
    assert 0 < stored < 2 * 2 * 6 * 2
    out = run_cli(args, cwd=tmp_path)
    assert f"{stored} already stored" in out.stdout
    df = sdexp.load_rows(folder)
    assert len(df) == 2 * 2 * 6 * 2 and df.image_id.is_unique
    for path in df.image_path:
        Image.open(folder / path).load()
    leftovers = [p for p in folder.rglob(".*.tmp")]
    assert not leftovers
    for part in _part_files(folder):
        pd.read_parquet(part)


def test_two_sweeps_into_one_name_get_grids_and_report_over_both(compose_cfg):
    from sdexp.sweep import run_sweep

    base = ["model=tiny", "steps=1", "prompt=x", "scorer=none", "name=two", "run.progress=false"]
    first = [compose_cfg([*base, f"cfg={c}"]) for c in (3, 5)]
    out = run_sweep(first, ["cfg"], log=lambda *a: None)
    said = []
    second = [compose_cfg([*base, "cfg=3", f"steps={s}", "seed=5"]) for s in (1, 2)]
    out = run_sweep(second, ["steps"], log=said.append)
    assert any("2 stored images come from earlier runs of 'two'" in s for s in said)
    assert [p.name for p in out["grids"]] == ["grid-steps-x-cfg-y.png"]           # both runs' axes
    assert sorted(p.name for p in (out["folder"] / "grids").iterdir()) == ["grid-steps-x-cfg-y.png"]
    html = (out["folder"] / "report" / "index.html").read_text()
    assert "Seeds per cell and prompt</dt><dd>1 to 2</dd>" in html                  # cfg 3, steps 1: seeds 0 and 5
