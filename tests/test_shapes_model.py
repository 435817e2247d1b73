"""Known answers through the real sweep and score commands, on the trained shapes model:

- CFG 7 beats CFG 1 on the independent judge and on CLIP score, each with a paired interval (same
  seed and prompt) above 0 (sdexp/shapes/train.py says why the weights are the UNet at step 4100);
- 20 steps beat 2 on FD (CLIP features) against held-out shapes of the same captions;
- a VAE with noise on its decoder weights loses on FD and on CLIP score (a paired interval below 0).

One sweep serves all three (CFG 1,7 x steps 2,20 x the model's VAE and the noised one: 4 denoises,
each decoded by both VAEs), scored three times: paired against CFG 1, against the held-out folder,
paired against the noised VAE.

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


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes_model")
    ref = root / "heldout"
    dataset.write_folder(ref, "heldout", 126, PROMPTS)          # the captions the sweep renders
    noisy = noised_vae(root / "noisy_vae")
    prompts = root / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n")
    run_cli(["-m", "model=shapes", "scorer=shapes", f"prompts.file={prompts}", "seed=[0,1]", "sampler=euler_a",
             "cfg=1,7", "steps=2,20", f"+vaes.noisy={noisy}", "vae_file=none,noisy",
             f"results_root={root / 'results'}", "name=known"], cwd=root)
    folder = root / "results" / "known"
    by = "group_by=[cfg,steps,vae]"
    run_cli(["score", str(folder), "metrics=[clip_score,shapes_judge]", "reference=group:cfg=1", by,
             "bootstrap.n=1000"], cwd=root)
    run_cli(["score", str(folder), "metrics=[fd_clip]", f"reference={ref}", by, "bootstrap.n=300"], cwd=root)
    run_cli(["score", str(folder), "metrics=[clip_score]", "reference=group:vae=noisy", by, "bootstrap.n=1000"],
            cwd=root)
    g = sdexp.load_groups(folder)
    own = next(v for v in g.vae.unique() if v != "noisy")
    return g.assign(vae=g.vae.where(g.vae == "noisy", "own")), own


def row(g, metric, statistic, cfg, steps, vae, reference=None):
    sel = g[(g.metric == metric) & (g.statistic == statistic) & (g.cfg == cfg) & (g.steps == steps) & (g.vae == vae)]
    if reference is not None:
        sel = sel[sel.reference.astype(str).str.contains(reference, regex=False)]
    assert len(sel) == 1, (metric, statistic, cfg, steps, vae, len(sel))
    return sel.iloc[0]


def test_cfg_7_beats_cfg_1_on_judge_and_clip_score(scored):
    g, _ = scored
    for metric in ("clip_score", "shapes_judge"):
        d = row(g, metric, "paired_diff", 7, 20, "own", "cfg=1")              # CFG 7 - CFG 1, same image
        assert d.n == 2 * len(PROMPTS) and d.ci_low > 0, (metric, d.value, d.ci_low, d.ci_high)


def test_20_steps_beat_2_on_fd(scored):
    g, _ = scored
    twenty, two = row(g, "fd_clip", "value", 7, 20, "own"), row(g, "fd_clip", "value", 7, 2, "own")
    assert twenty.n == two.n == 2 * len(PROMPTS) and twenty.n_reference == 126
    assert twenty.ci_high < two.ci_low, (twenty.value, two.value)


def test_a_noised_decoder_loses_on_fd_and_clip_score(scored):
    g, own = scored
    fd_own, fd_noisy = row(g, "fd_clip", "value", 7, 20, "own"), row(g, "fd_clip", "value", 7, 20, "noisy")
    assert fd_own.ci_high < fd_noisy.ci_low, (fd_own.value, fd_noisy.value)
    for cfg in (1, 7):
        d = row(g, "clip_score", "paired_diff", cfg, 20, "own", "vae=noisy")     # own VAE - noised, same image
        assert d.n == 2 * len(PROMPTS) and d.ci_low > 0, (own, cfg, d.value, d.ci_low, d.ci_high)
