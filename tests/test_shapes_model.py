"""Known answers through the real sweep and score commands, on the trained shapes model:

- CLIP score ranks CFG 1 against CFG 7 as the independent judge does, each with a paired interval
  (same seed and prompt) that excludes 0. The committed weights answer "CFG 1": the model's
  conditional prediction is already sharp, so guidance at 7 overshoots (benchmarks/shapes_quality.py);
- 20 steps beat 2 on FD (CLIP features) against held-out shapes of the same captions;
- a VAE with noise on its decoder weights loses on FD and CLIP score.

They need the committed weights (sdexp/shapes/weights/); without them they are skipped with the
command that builds them.
"""
from __future__ import annotations

import pytest

import sdexp
from sdexp.shapes import WEIGHTS_DIR, dataset
from helpers import run_cli

pytestmark = pytest.mark.skipif(not (WEIGHTS_DIR / "model" / "model_index.json").is_file(),
                                reason="shapes weights not built: python scripts/train_shapes.py")
PROMPTS = dataset.CAPTIONS[::6]                 # 21 captions: every colour, shape and background


def noised_vae(folder, scale: float = 0.5):
    """The shapes VAE with Gaussian noise (scale x each tensor's std) on its decoder weights."""
    import torch
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(str(WEIGHTS_DIR / "model" / "vae"))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in vae.decoder.named_parameters():
            if p.ndim > 1:
                p.add_(torch.randn(p.shape, generator=gen) * p.std() * scale)
    vae.save_pretrained(str(folder), safe_serialization=True)
    return folder


def sweep(root, name, *overrides):
    prompts = root / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n")
    run_cli(["-m", "model=shapes", "scorer=shapes", f"prompts.file={prompts}", "seed=[0,1]", "sampler=euler_a",
             *overrides, f"results_root={root / 'results'}", f"name={name}"], cwd=root)
    return root / "results" / name
def test_clip_score_ranks_cfg_1_and_7_as_the_judge_does(tmp_path):
    folder = sweep(tmp_path, "cfg", "cfg=1,7", "steps=20")
    run_cli(["score", str(folder), "metrics=[clip_score,shapes_judge]", "reference=group:cfg=1", "group_by=[cfg]",
             "bootstrap.n=1000"], cwd=tmp_path)
    g = sdexp.load_groups(folder)
    diff = {m: g[(g.metric == m) & (g.statistic == "paired_diff") & (g.cfg == 7)].iloc[0]
            for m in ("clip_score", "shapes_judge")}
    for m, d in diff.items():
        assert d.n == 2 * len(PROMPTS) and (d.ci_low > 0 or d.ci_high < 0), (m, d.value, d.ci_low, d.ci_high)
    assert (diff["clip_score"].value > 0) == (diff["shapes_judge"].value > 0), {m: d.value for m, d in diff.items()}


@pytest.mark.slow
def test_20_steps_beat_2_on_fd_and_a_noised_vae_loses(tmp_path):
    ref = tmp_path / "heldout"
    dataset.write_folder(ref, "heldout", 126, PROMPTS)          # the captions the sweep renders
    noisy = noised_vae(tmp_path / "noisy_vae")
    folder = sweep(tmp_path, "steps", "cfg=7", "steps=2,20", f"+vaes.noisy={noisy}", "vae_file=none,noisy")
    run_cli(["score", str(folder), "metrics=[clip_score,fd_clip]", f"reference={ref}", "group_by=[steps,vae]",
             "bootstrap.n=300"], cwd=tmp_path)
    g = sdexp.load_groups(folder)
    fd = g[g.metric == "fd_clip"].set_index(["steps", "vae"])
    clip = g[(g.metric == "clip_score") & (g.statistic == "mean")].set_index(["steps", "vae"])
    own = fd.index.get_level_values("vae")[fd.index.get_level_values("vae") != "noisy"][0]
    assert fd.loc[(20, own), "ci_high"] < fd.loc[(2, own), "ci_low"]
    assert fd.loc[(20, own), "ci_high"] < fd.loc[(20, "noisy"), "ci_low"]
    assert clip.loc[(20, own), "value"] > clip.loc[(20, "noisy"), "value"]
