"""`sdexp reproduce`: an image rendered again from its id (with its batch: byte-identical), from a
PNG of a store, and from an AUTOMATIC1111 `parameters` text (equal to a sweep of the same settings);
keys it cannot reproduce are named. Also `sdexp --help` and `sdexp -m --cfg job`."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

import sdexp
from helpers import run_cli
from sdexp.reproduce import main, parameters_overrides, pixel_difference
from sdexp.axes import ConfigError


@pytest.fixture
def results(report_sweep, tmp_path) -> Path:
    root = tmp_path / "results"
    shutil.copytree(report_sweep["folder"], root / "rep")
    return root


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_pixel_difference_is_measured_not_assumed():
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 7
    assert pixel_difference(a, a) == {"same_size": True, "max": 0, "mean": 0.0, "equal": True}
    assert pixel_difference(a, b)["max"] == 7 and not pixel_difference(a, b)["equal"]
    assert pixel_difference(a, np.zeros((2, 2, 3), np.uint8))["same_size"] is False


# Settings that each give an infotext axis a value other than its default (the test below checks that
# every axis with an infotext key is among them, so a new axis needs a case here).
ROUND_TRIP = [
    ["seed=5", "steps=3", "cfg=4.5", "sampler=dpmpp_2m", "schedule=karras", "clip_skip=2", "width=72", "height=64",
     "rng=gpu", "subseed=9", "subseed_strength=0.3", "negative_prompt='ugly, blurry'", "vae=tiny"],
    ["sampler=ddim", "eta=0.5"],
    ["sampler=euler", "s_churn=0.5", "s_tmin=0.1", "s_tmax=10", "s_noise=1.01",
     "hires.scale=2", "hires.steps=3", "hires.strength=0.5", "hires.upscaler=lanczos"],
]
NOT_ROUND_TRIPPED = {"model", "strength", "refiner", "refiner_switch"}   # a file each, given as overrides


def test_sdexps_own_parameters_text_plans_the_same_image(compose_cfg):
    """Each setting, written into a PNG's parameters as a sweep writes it, is read back to the same
    image id (the id hashes every setting of the cell)."""
    from sdexp.axes import REGISTRY
    from sdexp.metadata import a1111_parameters
    from sdexp.plan import make_plan
    from sdexp.reproduce import compose_job

    changed = set()
    default = make_plan([compose_cfg(["prompt=a cat"])], check_grid=False).cells[0]
    for overrides in ROUND_TRIP:
        cell = make_plan([compose_cfg(["prompt=a cat", *overrides])], check_grid=False).cells[0]
        text = a1111_parameters(cell, model_hash="0123456789", vae_hash="abcdef0123")
        again = make_plan([compose_job(parameters_overrides(text))], check_grid=False).cells[0]
        assert again.image_id == cell.image_id, (overrides, text)
        changed |= {a.name for a in REGISTRY if a.field and a.infotext and cell.axis(a.name) != default.axis(a.name)}
    assert {a.name for a in REGISTRY if a.infotext and a.field} - NOT_ROUND_TRIPPED <= changed


def test_rng_of_a1111_parameters():
    assert "rng=gpu" in parameters_overrides("a cat\nSteps: 2, Seed: 1")            # A1111's default
    assert "rng=cpu" in parameters_overrides("a cat\nSteps: 2, Seed: 1, RNG: CPU")
    with pytest.raises(ConfigError, match="RNG: NV; valid: CPU, GPU"):
        parameters_overrides("a cat\nSteps: 2, Seed: 1, RNG: NV")


@pytest.mark.slow
def test_from_an_image_id_with_its_batch_is_byte_identical(results, capsys):
    rows = sdexp.load_rows(results / "rep")
    row = rows.sort_values("batch_index").iloc[3]
    out = results / "again"
    assert main([row.image_id[:10], "--batch", f"--results={results}", f"--out={out}"]) == 0
    printed = capsys.readouterr().out
    again = sdexp.load_rows(out)
    mates = rows[rows.batch_id == row.batch_id]
    assert len(again) == len(mates) and set(again.image_id) == set(mates.image_id)
    assert set(again.batch_id) == {row.batch_id}                      # the same batch, composed alike
    new = again[again.image_id == row.image_id].iloc[0]
    assert (out / new.image_path).read_bytes() == (results / "rep" / row.image_path).read_bytes()
    assert "max 0/255, mean 0.0000; byte-identical PNG" in printed
    assert list((out / "config").glob("run-*.yaml"))                  # the rebuilt config is kept


@pytest.mark.slow
def test_from_an_image_id_alone_and_from_its_png(results, capsys):
    rows = sdexp.load_rows(results / "rep")
    row = rows.iloc[0]
    assert main([str(results / "rep" / row.image_path), f"--out={results / 'one'}"]) == 0
    printed = capsys.readouterr().out
    again = sdexp.load_rows(results / "one")
    assert again.image_id.tolist() == [row.image_id] and again.batch_size.tolist() == [1]
    diff = pixel_difference(pixels(results / "one" / again.image_path[0]), pixels(results / "rep" / row.image_path))
    assert diff["max"] <= 2                                       # alone vs inside a batch of 8
    assert f"max {diff['max']}/255" in printed
    assert json.loads((results / "one" / "reproduce.json").read_text())["image_ids"] == [row.image_id]
    # the reproduction lies under results/ too: an id is taken from the sweep, not from it; each run
    # without --out renders into a new folder
    for name in ("rep-reproduce-" + row.image_id[:8], "rep-reproduce-" + row.image_id[:8] + "-2"):
        assert main([row.image_id, f"--results={results}"]) == 0
        assert f"reproducing the one in {results / 'rep'}" in capsys.readouterr().out
        assert sdexp.load_rows(results / name).image_id.tolist() == [row.image_id]
    # the PNG copied out of its sweep: read through its own parameters text to the same image
    copied = shutil.copy(results / "rep" / row.image_path, results.parent / "copied.png")
    assert main([str(copied), f"--out={results.parent / 'three'}"]) == 0
    assert "from its parameters" in capsys.readouterr().out
    three = sdexp.load_rows(results.parent / "three")
    assert three.image_id.tolist() == [row.image_id]
    assert np.array_equal(pixels(results.parent / "three" / three.image_path[0]),
                          pixels(results / "one" / again.image_path[0]))      # both rendered alone


def a1111_png(path: Path, text: str) -> Path:
    info = PngInfo()
    info.add_text("parameters", text)
    Image.new("RGB", (64, 64), (90, 120, 150)).save(path, pnginfo=info)
    return path


A1111_TEXT = ("a lighthouse at dusk <lora:none:1>\nNegative prompt: blurry\nSteps: 2, Sampler: Euler a, "
              "Schedule type: Automatic, CFG scale: 5, Seed: 3, Size: 64x64, Model hash: 0123456789, "
              "Model: tiny, Clip skip: 2, Version: v1.9.4")


def test_a1111_parameters_become_config_overrides():
    ov = parameters_overrides(A1111_TEXT.replace(" <lora:none:1>", ""))
    assert ov[:2] == ["prompt='a lighthouse at dusk'", "negative_prompt='blurry'"]
    assert {"steps=2", "sampler='Euler a'", "schedule='Automatic'", "cfg=5", "seed=3", "size='64x64'",
            "model=tiny", "clip_skip=2"} <= set(ov)
    with_lora = parameters_overrides("a cat <lora:detail:0.5>\nSteps: 2")
    assert "lora=detail" in with_lora and "lora_weight=0.5" in with_lora and "prompt='a cat'" in with_lora
    with pytest.raises(ConfigError) as err:
        parameters_overrides("a cat\nSteps: 2, Hires sampler: DDIM, ENSD: 31337, Model: tiny")
    assert "'Hires sampler', 'ENSD'" in str(err.value) and "--allow-unknown" in str(err.value)


def test_from_an_a1111_png_equals_a_sweep_of_the_same_settings(tmp_path, compose_cfg, capsys):
    from sdexp.sweep import run_sweep

    png = a1111_png(tmp_path / "00001-3.png", A1111_TEXT.replace(" <lora:none:1>", ""))
    out = tmp_path / "again"
    assert main([str(png), f"--out={out}"]) == 0
    printed = capsys.readouterr().out
    row = sdexp.load_rows(out).iloc[0]
    assert (row.prompt, row.negative_prompt, row.steps, row.cfg, row.seed, row.clip_skip, row.sampler,
            row.width, row.height) == ("a lighthouse at dusk", "blurry", 2, 5.0, 3, 2, "Euler a", 64, 64)
    assert "pixel difference from" in printed and "max " in printed
    assert row.rng == "gpu"                    # no RNG key: A1111 drew the noise on the GPU
    # an independent route to the same image: a sweep given the same settings on the command line
    ref = run_sweep([compose_cfg(["prompt=a lighthouse at dusk", "negative_prompt=blurry", "steps=2", "cfg=5",
                                  "seed=3", "clip_skip=2", "rng=gpu", "name=ref", "run.batch_size=1"])],
                    log=lambda *a: None)
    ref_row = sdexp.load_rows(ref["folder"]).iloc[0]
    assert ref_row.image_id == row.image_id
    assert np.array_equal(pixels(Path(ref["folder"]) / ref_row.image_path), pixels(out / row.image_path))


def test_unknown_keys_are_named_and_nothing_is_rendered(tmp_path, capsys):
    png = a1111_png(tmp_path / "x.png", "a cat\nSteps: 2, Sampler: Euler a, Seed: 1, Size: 64x64, Model: tiny, "
                                        "Hires sampler: DDIM, ENSD: 31337")
    out = tmp_path / "again"
    assert main([str(png), f"--out={out}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sdexp: error: the PNG's parameters hold keys sdexp cannot reproduce: 'Hires sampler', 'ENSD'")
    assert len(err.strip().splitlines()) == 1 and not out.exists()
    assert main([str(png), f"--out={out}", "--allow-unknown"]) == 0
    assert "sdexp: warning:" in capsys.readouterr().out and len(sdexp.load_rows(out)) == 1


@pytest.mark.parametrize("args, fragment", [
    (["0123456789abcdef"], "'0123456789abcdef': no stored image under"),
    (["missing.png"], "'missing.png' is not a file"),
])
def test_bad_sources_fail_in_one_line(tmp_path, capsys, args, fragment):
    assert main([*args, f"--results={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_help_lists_every_subcommand_then_hydras_help(tmp_path):
    from sdexp.cli import SUBCOMMANDS

    out = run_cli(["--help"], cwd=tmp_path).stdout
    head, _, hydra = out.partition("its help follows.")
    for name in [*SUBCOMMANDS, "plan"]:
        line = next((ln for ln in head.splitlines() if ln.strip().startswith(f"sdexp {name}")), None)
        assert line is not None and len(line.split("  ")[-1].split()) >= 3, (name, line)   # usage, then what it does
    assert "render one image again into a new folder" in head          # from the module's docstring
    assert "sdexp is powered by Hydra" in hydra and "== Config ==" in hydra


@pytest.mark.slow
def test_cfg_job_with_multirun_prints_every_jobs_config(tmp_path):
    import itertools

    import yaml

    from sdexp.paths import SWEEPS_DIR

    proc = run_cli(["-m", "--cfg", "job", "sweep=demo"], cwd=tmp_path)
    assert "Traceback" not in proc.stderr and not (tmp_path / "results").exists()
    jobs = proc.stdout.split("# job ")[1:]
    params = yaml.safe_load((SWEEPS_DIR / "demo.yaml").read_text())["hydra"]["sweeper"]["params"]
    grid = [str(params[k]).split(",") for k in ("sampler", "steps", "cfg")]
    assert len(jobs) == len(list(itertools.product(*grid))) == 18
    seen = set()
    for k, job in enumerate(jobs, 1):
        title, _, body = job.partition("\n")
        assert title.startswith(f"{k} of 18: model=shapes")
        cfg = yaml.safe_load(body)
        assert cfg["model"]["name"] == "shapes" and cfg["seed"] == [0, 1, 2, 3] and "hydra" not in cfg
        seen.add((cfg["sampler"], str(cfg["steps"]), str(cfg["cfg"])))
    assert seen == set(itertools.product(*grid))
