"""The shapes set, the judge, CMMD and the CLIP-feature group metrics (fd_clip, cmmd) through `sdexp score`.

These need no trained weights: the metrics' plumbing runs on the tiny random CLIP, and every value is
compared with an independent computation (scipy's sqrtm Frechet distance, CMMD written from its paper).
"""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

import sdexp
from sdexp.shapes import dataset, judge
from helpers import run_cli, tree_state


def test_images_are_a_function_of_split_and_index(tmp_path):
    a, b = dataset.image("heldout", 7), dataset.image("heldout", 7)
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8 and a.tobytes() == b.tobytes()
    assert dataset.image("train", 7).tobytes() != a.tobytes()          # another split, another geometry
    assert len(dataset.CAPTIONS) == len(set(dataset.CAPTIONS)) == 3 * 7 * 6
    assert dataset.item("train", 0).caption == "a red circle on a green background"
    first = [p.read_bytes() for p in dataset.write_folder(tmp_path / "a", count=5)]
    assert first == [p.read_bytes() for p in dataset.write_folder(tmp_path / "b", count=5)]


def test_parse_caption():
    for it in dataset.COMBINATIONS[:20]:
        assert dataset.parse_caption(it.caption) == it
    assert dataset.parse_caption("a red apple on a table") is None
    assert dataset.parse_caption("a red circle on a red background") is None


def test_judge_reads_every_held_out_image_right():
    """The judge's rules against the ground truth the drawing code used, on 252 held-out images."""
    images, _ = dataset.batch("heldout", 0, 252)
    items = [dataset.item("heldout", i) for i in range(252)]
    assert judge.rates(images, items) == {"colour": 1.0, "shape": 1.0, "background": 1.0, "all": 1.0}


def test_judge_sees_no_shape_on_a_flat_image_and_names_its_background():
    flat = np.full((64, 64, 3), dataset.COLOURS["blue"], np.uint8)
    v = judge.judge(flat)
    assert v.shape is None and v.colour is None and v.background == "blue"


def cmmd_from_paper(x: np.ndarray, y: np.ndarray) -> float:
    """1000 * MMD^2 with k(a, b) = exp(-|a-b|^2 / (2 * 10^2)), every pair (diagonal included), by loops."""
    k = lambda a, b: np.exp(-np.sum((a - b) ** 2) / 200.0)  # noqa: E731
    mean = lambda p, q: np.mean([[k(a, b) for b in q] for a in p])  # noqa: E731
    return 1000 * (mean(x, x) + mean(y, y) - 2 * mean(x, y))


def test_cmmd_matches_its_definition():
    from sdexp.metrics.cmmd import cmmd

    rng = np.random.default_rng(0)
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    x, y = unit(rng.normal(size=(30, 16))), unit(rng.normal(size=(25, 16)) + 0.5)
    assert cmmd(x, y) == pytest.approx(cmmd_from_paper(x, y), rel=1e-9)
    assert abs(cmmd(x, x)) < 1e-9 and cmmd(x, y) > 0.1
    with pytest.raises(ValueError, match="equal d"):
        cmmd(x, y[:, :8])


def scipy_fd(f1, f2) -> float:
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((f1.mean(0) - f2.mean(0)) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def clip_embeddings(folder, paths) -> np.ndarray:
    """Unit-norm image embeddings straight from transformers (not through sdexp's extractor)."""
    import torch
    from PIL import Image
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(str(folder)).eval()
    proc = CLIPProcessor.from_pretrained(str(folder))
    images = [Image.open(p).convert("RGB") for p in paths]
    with torch.no_grad():
        out = model.get_image_features(pixel_values=proc(images=images, return_tensors="pt")["pixel_values"])
    emb = out if isinstance(out, torch.Tensor) else out.pooler_output
    return (emb / emb.norm(dim=-1, keepdim=True)).numpy().astype(np.float64)


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """A tiny sweep (2 CFG x 6 seeds) scored with fd_clip, cmmd and the judge against written held-out shapes."""
    root = tmp_path_factory.mktemp("shapes")
    ref = root / "heldout"
    proc = run_cli_module(["sdexp.shapes.reference", str(ref), "--count", "40"], root)
    assert "40 heldout shapes" in proc.stdout
    run_cli(["-m", "cfg=1,7", "steps=2", "seed=[0,1,2,3,4,5]", "prompt=a red circle on a white background",
             f"results_root={root / 'results'}", "name=s"], cwd=root)
    folder = root / "results" / "s"
    out = run_cli(["score", str(folder), "metrics=[fd_clip,cmmd,shapes_judge]", f"reference={ref}",
                   "group_by=[cfg]", "bootstrap.n=200"], cwd=root)
    return folder, ref, out.stdout


def run_cli_module(args, cwd):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, check=True)


@pytest.mark.slow
def test_fd_clip_and_cmmd_through_score_match_independent_values(scored):
    from sdexp.metrics.inception import reference_images
    from sdexp.tiny import tiny_clip_folder

    folder, ref, stdout = scored
    groups = sdexp.load_groups(folder)
    rows = sdexp.load_rows(folder)
    ref_feats = clip_embeddings(tiny_clip_folder(), reference_images(ref))
    for metric, formula in (("fd_clip", scipy_fd), ("cmmd", cmmd_from_paper)):
        g = groups[groups.metric == metric].sort_values("cfg")
        assert list(g.cfg) == [1.0, 7.0] and list(g.n) == [6, 6] and list(g.n_reference) == [40, 40]
        assert ((g.ci_low <= g.value) & (g.value <= g.ci_high)).all() and g.feature_extractor.str.startswith("clip-image:").all()
        for _, r in g.iterrows():
            paths = [folder / p for p in rows[rows.cfg == r.cfg].image_path]
            mine = clip_embeddings(tiny_clip_folder(), paths)
            assert r.value == pytest.approx(formula(mine, ref_feats), rel=1e-4, abs=1e-6), metric
    assert "fd_clip (value, grouping cfg" in stdout and "cmmd (value" in stdout
    judged = groups[groups.metric == "shapes_judge"]
    assert len(judged) == 2 and judged.value.between(0, 1).all()     # a random model: any rate


@pytest.mark.slow
def test_clip_feature_metrics_refuse_an_npz_and_open_clip(scored, tmp_path):
    from sdexp.metrics.fid import save_npz
    from sdexp.score import main

    folder, ref, _ = scored
    npz = save_npz(tmp_path / "stats.npz", np.random.default_rng(0).normal(size=(10, 4)))
    before = tree_state(folder)
    assert main([str(folder), "metrics=[cmmd]", f"reference={npz}"]) == 2
    assert main([str(folder), "metrics=[fd_clip]", f"reference={ref}", "clip.backend=open_clip",
                 "clip.source=tiny"]) == 2
    assert tree_state(folder) == before


def test_training_resumes_only_into_the_same_architecture(tmp_path):
    """A stage's checkpoint restores its weights and step, and is refused by a model of other sizes."""
    import torch

    from sdexp.shapes import arch
    from sdexp.shapes.checkpoints import Stage

    def stage(module):
        opt = torch.optim.Adam(module.parameters())
        return Stage("vae", tmp_path, 5, {"vae": module}, opt, save_every=1, log=lambda m: None)

    first = stage(arch.make_vae(0))
    first.record(0.5)
    resumed = stage(arch.make_vae(1))
    assert resumed.step == 1 and all(torch.equal(a, b) for a, b in zip(
        resumed.modules["vae"].state_dict().values(), first.modules["vae"].state_dict().values()))
    from diffusers import AutoencoderKL

    other = AutoencoderKL(latent_channels=4, block_out_channels=(8, 8), norm_num_groups=2,
                          down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2)
    with pytest.raises(SystemExit, match="^sdexp: error: .*another architecture"):
        stage(other)


def test_reference_folder_of_a_sweeps_captions(tmp_path, capsys):
    """`--prompts` writes held-out shapes of only those captions, in turn; a caption outside the set
    is one `sdexp: error:` line and exit 2."""
    from sdexp.shapes.reference import main

    prompts = tmp_path / "p.yaml"
    prompts.write_text("items:\n  - a red circle on a white background\n  - a blue square on a yellow background\n")
    assert main([str(tmp_path / "ref"), "--prompts", str(prompts), "--count", "5"]) == 0
    lines = (tmp_path / "ref" / "captions.txt").read_text().splitlines()
    assert [ln.split("\t")[1] for ln in lines] == ["a red circle on a white background",
                                                    "a blue square on a yellow background"] * 2 + [
                                                    "a red circle on a white background"]
    assert len({ln.split("\t")[0] for ln in lines}) == 5                  # five distinct held-out images
    (tmp_path / "bad.txt").write_text("a photo of a cat\n")
    with pytest.raises(SystemExit) as e:
        main([str(tmp_path / "ref2"), "--prompts", str(tmp_path / "bad.txt")])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and err[0].startswith("sdexp: error: --prompts=")
    assert not (tmp_path / "ref2").exists()


def test_fd_and_cmmd_intervals_hold_their_value():
    """Replicates that all lie above the value (as FD's do at small N) give an interval around it,
    of the replicates' width, never below 0."""
    from sdexp.metrics.clip_features import centred_interval

    boots = np.linspace(0.053, 0.148, 201)
    low, high = centred_interval(0.06, boots, 0.95)
    assert 0 < low <= 0.06 <= high and high - low == pytest.approx(np.quantile(boots, 0.975) - np.quantile(boots, 0.025))
    assert centred_interval(0.001, boots, 0.95)[0] == 0.0
    assert centred_interval(0.1005, boots, 0.95) == pytest.approx(tuple(np.quantile(boots, [0.025, 0.975])))
