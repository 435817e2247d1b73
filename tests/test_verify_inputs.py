"""Inputs refused before anything under results/ changes (one `sdexp: error:` line, exit 2), runtime
faults as one line (exit 1), Ctrl-C, and weight files replaced at the same path between runs."""
from __future__ import annotations

import os
import shutil
import time

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from sdexp.axes import ConfigError
from sdexp.hydra_setup import register_all
from sdexp.paths import CONF_DIR
from sdexp.sweep import run_sweep
from helpers import ctrl_c_once_stored, run_cli, tree_state


def cfgs(root, *overrides):
    register_all()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["steps=1", "seed=0", "prompts=single", "name=inp",
                                           f"results_root={root}", *overrides])
    GlobalHydra.instance().clear()
    return [cfg]


def refused(root, *overrides, match: str):
    """The run is refused with `match` in its message and leaves every file under root as it was."""
    before = tree_state(root) if root.exists() else None
    with pytest.raises(ConfigError, match=match):
        run_sweep(cfgs(root, *overrides), [], log=lambda *a: None)
    assert (tree_state(root) if root.exists() else None) == before


@pytest.fixture(scope="module")
def vae_files(tmp_path_factory):
    """Two VAE single files (the tiny and tiny_alt weights), to swap one for the other."""
    from diffusers import AutoencoderKL

    from sdexp import single_file, tiny

    folder = tmp_path_factory.mktemp("vaes")
    skeleton = folder / "skeleton"              # the tiny model's configs: the files load through them
    shutil.copytree(tiny.tiny_model_folder(), skeleton, ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    out = {"skeleton": skeleton}
    for name in ("tiny", "tiny_alt"):
        vae = AutoencoderKL.from_pretrained(tiny.tiny_vae_folder(name), local_files_only=True)
        out[name] = folder / f"{name}.safetensors"
        single_file.save_original_vae(vae, out[name])
    return out


def test_replaced_vae_file_is_an_error_naming_both_hashes(tmp_path, vae_files):
    from sdexp.hashing import file_sha256

    root = tmp_path / "results"
    path = tmp_path / "last.safetensors"
    path.write_bytes(vae_files["tiny_alt"].read_bytes())
    old = file_sha256(path)
    vae = ["vae.name=last", f"vae.source={path}", f"vae.skeleton={vae_files['skeleton']}"]
    run_sweep(cfgs(root, *vae), [], log=lambda *a: None)
    path.write_bytes(vae_files["tiny"].read_bytes())
    new = file_sha256(path)
    refused(root, *vae,
            match=rf"vae.source='{path}' has changed .* sha256 {new[:12]} now, {old[:12]} in the rows")
    path.write_bytes(vae_files["tiny_alt"].read_bytes())          # the same file again: resumes
    said = []
    run_sweep(cfgs(root, *vae), [], log=said.append)
    assert any("1 already stored, 0 to render" in s for s in said)


def test_replaced_extra_lora_is_an_error(tmp_path):
    from adapter_files import write_kohya_lora
    from render_helpers import tiny_pipeline

    pipe = tiny_pipeline()
    path, other = tmp_path / "detail.safetensors", tmp_path / "other.safetensors"
    write_kohya_lora(path, pipe, seed=1)
    write_kohya_lora(other, pipe, seed=2)
    lora = [f"+loras.detail={path}", "+extra_loras.detail=0.5", "scorer=none"]
    run_sweep(cfgs(tmp_path / "results", *lora), [], log=lambda *a: None)
    path.write_bytes(other.read_bytes())
    refused(tmp_path / "results", *lora, match=rf"extra_loras.detail='{path}' has changed")


def test_cut_off_safetensors_is_refused(tmp_path, vae_files):
    path = tmp_path / "cut.safetensors"
    path.write_bytes(vae_files["tiny"].read_bytes()[:5000])
    refused(tmp_path / "results", "vae.name=cut", f"vae.source={path}", f"vae.skeleton={vae_files['skeleton']}",
            match="not a whole .safetensors file")


def _tensors(path, names):
    import torch
    from safetensors.torch import save_file

    save_file({n: torch.zeros(2) for n in names}, str(path))
    return path


@pytest.mark.parametrize("names, overrides, match", [
    (["a"], ["checkpoint={path}"], "holds no UNet weights"),
    (["model.diffusion_model.x", "first_stage_model.x"], ["checkpoint={path}"], "holds no text encoder weights"),
    (["a"], ["vae.name=junk", "vae.source={path}"], "holds no VAE encoder/decoder weights"),
])
def test_weight_file_without_its_parts_is_refused(tmp_path, names, overrides, match):
    path = _tensors(tmp_path / "junk.safetensors", names)
    refused(tmp_path / "results", *[o.format(path=path) for o in overrides], match=match)


def test_checkpoint_that_fails_to_load_is_one_line_exit_1(tmp_path, capsys):
    from sdexp.cli import run_jobs

    path = _tensors(tmp_path / "bad.safetensors", ["model.diffusion_model.x", "cond_stage_model.x",
                                                    "first_stage_model.x"])
    with pytest.raises(SystemExit) as exit_:
        run_jobs(cfgs(tmp_path / "results", f"checkpoint={path}", "scorer=none"), [])
    assert exit_.value.code == 1
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line.lower()]   # not the bar's
    assert len(err) == 1 and err[0].startswith("sdexp: error: checkpoint 'bad'") and "could not be loaded" in err[0]


def test_results_root_that_is_a_file(tmp_path):
    root = tmp_path / "results"
    root.write_text("not a folder")
    refused(root, match="is a file, not a folder")
    assert root.read_text() == "not a folder"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes read-only folders")
def test_read_only_results_root(tmp_path):
    root = tmp_path / "results"
    root.mkdir()
    root.chmod(0o500)
    try:
        refused(root, match="cannot be written")
    finally:
        root.chmod(0o700)


def test_name_too_long(tmp_path):
    refused(tmp_path / "results", "name=" + "n" * 300, match="valid: a folder name of at most 255 bytes")


def test_hub_id_offline_fails_at_plan_time(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    t0 = time.monotonic()
    refused(tmp_path / "results", "model.name=x", "model.source=nobody-org/no-such-model",
            match="not in the local Hugging Face cache")
    assert time.monotonic() - t0 < 30
@pytest.mark.slow
def test_cli_exit_codes_and_one_line(tmp_path):
    root = tmp_path / "results"
    bad = run_cli(["steps=1", "prompts=single", "name=" + "n" * 300, f"results_root={root}"], cwd=tmp_path,
                  check=False)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("sdexp: error: name=")
    assert len(bad.stderr.strip().splitlines()) == 1 and not root.exists()
    (root / "locked").mkdir(parents=True)
    precious = tmp_path / "precious"
    precious.write_text("keep")
    (root / "locked" / ".lock").symlink_to(precious)
    fault = run_cli(["steps=1", "prompts=single", "name=locked", f"results_root={root}"], cwd=tmp_path,
                    check=False)
    assert fault.returncode == 1, fault.stderr
    assert fault.stderr.strip().splitlines()[-1].startswith("sdexp: error: ") and "symbolic link" in fault.stderr
    assert "Traceback" not in fault.stderr and precious.read_text() == "keep"


@pytest.mark.slow
def test_ctrl_c_says_what_is_stored(tmp_path):
    root = tmp_path / "results"
    args = ["seed=range(0,40)", "-m", "steps=6", "run.batch_size=2", "prompts=single", f"results_root={root}",
            "name=intr"]
    code, err = ctrl_c_once_stored(args, tmp_path, root / "intr" / "rows", timeout=120)
    assert code == 130, err
    assert "images are stored in" in err and "run the same command again to resume" in err
    assert "Traceback" not in err
