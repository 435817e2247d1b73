"""The README's local-files sweep (checkpoint x LoRA weight x clip skip x VAE), run as written on
tiny files built from code: two single-file checkpoints, a VAE file and a kohya LoRA."""
from __future__ import annotations

import re
import shlex

import pytest
import torch

from adapter_files import write_kohya_lora
from helpers import run_cli
from render_helpers import tiny_pipeline
from sdexp.paths import CONF_DIR
from sdexp.single_file import save_original_checkpoint, save_original_vae

README = CONF_DIR.parent / "README.md"
FAST = {"steps": "2", "seed": "[1]", "prompts": "single", "scorer": "tiny"}   # same command, less work


def readme_command() -> list[str]:
    text = README.read_text()
    block = re.search(r"<!-- local-files-sweep -->\s*```bash\n(.*?)```", text, re.S).group(1)
    args = shlex.split(block.replace("\\\n", " "))
    assert args[0] == "sdexp"
    return args[1:]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from diffusers import AutoencoderKL

    from sdexp import tiny

    root = tmp_path_factory.mktemp("models")
    (root / "Lora").mkdir()
    pipe = tiny_pipeline()
    save_original_checkpoint(pipe, root / "dreamshaper_8.safetensors")
    write_kohya_lora(root / "Lora" / "add_detail.safetensors", pipe)
    with torch.no_grad():      # a second checkpoint: the same model with other UNet weights
        for p in pipe.unet.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(5)) * 0.02)
    save_original_checkpoint(pipe, root / "realisticVisionV60B1.safetensors")
    save_original_vae(AutoencoderKL.from_pretrained(tiny.tiny_vae_folder("tiny_alt")),
                      root / "vae-ft-mse-840000-ema-pruned.safetensors")
    return root


@pytest.mark.slow
def test_readme_local_files_sweep_runs_as_written(models, tmp_path):
    args = []
    for arg in readme_command():
        if "=" not in arg:          # flags such as -m
            args.append(arg)
            continue
        key, _, value = arg.partition("=")
        value = FAST.get(key, value).replace("/models/", f"{models}/")
        args.append(f"{key}={value}")
    from sdexp import tiny

    # the tiny files need the tiny model's configs where real SD1.5 files use the shipped skeleton
    # (and render at 64x64, where real SD1.5 files default to 512x512)
    skeletons = [f"model.skeleton={tiny.tiny_model_folder()}", f"vae.skeleton={tiny.tiny_vae_folder('tiny_alt')}",
                 "size=64x64"]
    run_cli([*args, *skeletons, f"results_root={tmp_path / 'results'}", "run.progress=false"], cwd=tmp_path)

    import sdexp

    rows = sdexp.load_rows(tmp_path / "results" / "local")
    assert len(rows) == 2 * 3 * 2 * 2
    assert set(rows.model) == {"dreamshaper", "realvis"} and set(rows.vae) == {"Automatic", "ft-mse"}
    assert set(rows.lora) == {"add_detail"} and sorted(rows.lora_weight.unique()) == [0.0, 0.5, 1.0]
    assert rows.groupby("model").model_hash.nunique().eq(1).all() and rows.model_hash.nunique() == 2
    grids = sorted(p.name for p in (tmp_path / "results" / "local" / "grids").glob("*.png"))
    assert grids == ["grid-lora_weight-x-clip_skip-y-vae-z-model_dreamshaper.png",
                     "grid-lora_weight-x-clip_skip-y-vae-z-model_realvis.png"]
