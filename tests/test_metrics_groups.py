"""Group metrics of a rendered sweep, scored in-process with the real components (tiny SD model, tiny
CLIP, an Inception with random weights from a local file): FID and KID per cell against a folder, an
.npz and a baseline cell; CLIP means with intervals and paired differences; regrouping; rescoring."""
from __future__ import annotations

import hashlib
import warnings

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import scipy.linalg

import sdexp
from sdexp.metrics.fid import save_npz
from sdexp.score import main
from sdexp.stats import bootstrap_mean_ci, paired_difference_ci
from metrics_helpers import copy_scored, random_inception, reference_folder


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """The sweep scored with fid once (metrics_helpers.scored_sweep: features extracted), then with
    clip_score, fid and kid: the second run reuses every stored feature."""
    weights = random_inception(tmp_path_factory)
    ref = reference_folder(tmp_path_factory)
    folder = copy_scored(tmp_path_factory, tmp_path_factory.mktemp("groups") / "metrics")
    assert main([str(folder), "metrics=[clip_score,fid,kid]", f"reference={ref}", f"inception.weights={weights}"]) == 0
    return {"folder": folder, "weights": weights, "ref": ref}


def test_features_are_extracted_once_per_image(env):
    folder = env["folder"]
    (key_dir,) = (folder / "features").iterdir()
    (part,) = key_dir.glob("part-*.parquet")                       # one extraction, reused by later runs
    ids = pq.read_table(part, columns=["image_id"]).column("image_id").to_pylist()
    assert sorted(ids) == sorted(sdexp.load_rows(folder).image_id)
    assert len(list((key_dir / "references").glob("*.npy"))) == 1


def stored_features(folder) -> dict[str, np.ndarray]:
    """The features table read back with pyarrow alone."""
    (part_dir,) = (folder / "features").iterdir()
    out = {}
    for part in sorted(part_dir.glob("part-*.parquet")):
        t = pq.read_table(part)
        for i, f in zip(t.column("image_id").to_pylist(), t.column("features").to_pylist()):
            out[i] = np.asarray(f, np.float64)
    return out


def reference_features(folder) -> np.ndarray:
    (part_dir,) = (folder / "features").iterdir()
    (npy,) = (part_dir / "references").glob("*.npy")
    return np.load(npy).astype(np.float64)


def scipy_fid(f1: np.ndarray, f2: np.ndarray) -> float:
    """Independent FID with scipy.linalg.sqrtm. Both covariances live in the span of the centred features,
    so sqrtm is taken there (an orthonormal basis from scipy.linalg.orth): the same trace as on the full
    2048 x 2048 product, without its round-off and its minute of compute."""
    c1, c2 = f1 - f1.mean(0), f2 - f2.mean(0)
    q = scipy.linalg.orth(np.vstack([c1, c2]).T)                     # d x r
    s1 = (c1 @ q).T @ (c1 @ q) / (len(f1) - 1)
    s2 = (c2 @ q).T @ (c2 @ q) / (len(f2) - 1)
    with warnings.catch_warnings():                                  # s1 s2 is singular when s1 is
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        covmean = scipy.linalg.sqrtm(s1 @ s2).real
    diff = f1.mean(0) - f2.mean(0)
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def table(folder, metric, statistic="value", grouping="cell", reference_kind=None) -> pd.DataFrame:
    g = sdexp.load_groups(folder)
    sel = g[(g.metric == metric) & (g.statistic == statistic) & (g.grouping == grouping)]
    if reference_kind:
        sel = sel[sel.reference_kind == reference_kind]
    return sel.reset_index(drop=True)


def test_fid_per_cell_matches_independent_scipy(env):
    folder = env["folder"]
    rows, feats, ref = sdexp.load_rows(folder), stored_features(folder), reference_features(folder)
    assert len(feats) == len(rows) == 8 and ref.shape == (4, 2048)
    fid = table(folder, "fid", reference_kind="folder")
    assert len(fid) == 4 and set(fid.cell_id) == set(rows.cell_id)
    for _, r in fid.iterrows():
        ids = rows[rows.cell_id == r.cell_id].image_id
        expected = scipy_fid(np.stack([feats[i] for i in ids]), ref)
        assert expected > 0 and abs(r.value - expected) <= 1e-6 * expected, (r.value, expected)
        assert r.n == 2 and r.n_reference == 4 and r.reference == str(env["ref"].resolve())
        assert "fid.min_images=50" in r.warning and "not torch-fidelity's" in r.warning
        assert r.resize.startswith("tf1-bilinear") and r.feature_extractor.startswith("inception-v3-compat:")
        assert r.implementation == "sdexp.metrics.fid.frechet_distance" and r.reference_hash == fid.reference_hash[0]
        assert r.vae in ("tiny", "tiny_alt") and r.cfg in (3.0, 7.0) and pd.isna(r.seed) and r.steps == 2


def test_kid_per_cell_matches_torch_fidelity(env):
    import torch
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, kid_features_to_metric

    folder = env["folder"]
    rows, feats, ref = sdexp.load_rows(folder), stored_features(folder), reference_features(folder)
    kid = table(folder, "kid", reference_kind="folder")
    assert len(kid) == 4 and (kid.subset_size == 2).all()           # adapted: min(1000, N=2, N_ref=4)
    assert kid.warning.str.contains("subset size 2").all()
    for _, r in kid.iterrows():
        x = np.stack([feats[i] for i in rows[rows.cell_id == r.cell_id].image_id]).astype(np.float64)
        theirs = kid_features_to_metric(torch.from_numpy(x), torch.from_numpy(ref.astype(np.float64)),
                                        kid_subsets=100, kid_subset_size=2, rng_seed=2020, verbose=False,
                                        kid_kernel="poly", kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None,
                                        kid_kernel_poly_coef0=1)[KEY_METRIC_KID_MEAN]
        assert abs(r.value - theirs) <= 1e-5 * abs(theirs) + 1e-9, (r.value, theirs)
        assert r["std"] > 0 and r.n == 2 and r.n_reference == 4


def test_clip_means_with_bootstrap_intervals(env):
    folder = env["folder"]
    rows = sdexp.load_rows(folder)
    clip = table(folder, "clip_score", statistic="mean")
    assert len(clip) == 4 and (clip.feature_extractor == "transformers:tiny").all()
    for _, r in clip.iterrows():
        values = rows[rows.cell_id == r.cell_id].clip_score
        mean, low, high = bootstrap_mean_ci(values)
        assert (r.value, r.ci_low, r.ci_high, r.n, r.confidence) == (mean, low, high, 2, 0.95)
        assert pd.isna(r.reference) and r.implementation == "sdexp.clipscore.ClipScorer"
    # the per-image values: the rows' own scores (same scorer), kept in image_metrics
    im = sdexp.load_image_metrics(folder)
    merged = rows.merge(im, on="image_id")
    assert len(merged) == 8 and (merged.clip_score == merged.value).all()
    assert (merged.scorer == "transformers:tiny").all()


def test_baseline_cell_self_fid_and_paired_differences(env, capsys):
    """reference=cell:ID: FID of the cell against itself ~ 0; CLIP differences paired on seed and prompt;
    no Inception feature is extracted again."""
    folder = env["folder"]
    rows = sdexp.load_rows(folder)
    base = rows.sort_values(["vae", "cfg"]).cell_id.iloc[0]
    parts = sorted((folder / "features").rglob("*.parquet"))
    assert main([str(folder), f"reference=cell:{base[:8]}", f"inception.weights={env['weights']}"]) == 0
    assert "Inception features for" not in capsys.readouterr().out
    assert sorted((folder / "features").rglob("*.parquet")) == parts

    fid = table(folder, "fid", reference_kind="group").set_index("cell_id")
    feats = stored_features(folder)
    trace = np.trace(np.cov(np.stack([feats[i] for i in rows.image_id]), rowvar=False))
    assert abs(fid.loc[base, "value"]) <= 1e-9 * trace                    # self-FID
    assert (fid.drop(index=base).value > 1e-6 * trace).all()
    assert (fid.reference == f"cell:{base[:8]}").all() and (fid.n_reference == 2).all()

    diff = table(folder, "clip_score", statistic="paired_diff").set_index("cell_id")
    assert diff.loc[base, "value"] == 0 and diff.loc[base, "n"] == 2
    baseline = rows[rows.cell_id == base].set_index(["seed", "prompt"]).clip_score
    for cell, r in diff.drop(index=base).iterrows():
        mine = rows[rows.cell_id == cell].set_index(["seed", "prompt"]).clip_score
        expected = paired_difference_ci(mine.to_numpy(), baseline.reindex(mine.index).to_numpy())
        assert (r.value, r.ci_low, r.ci_high, r.n) == expected


def test_npz_reference_gives_the_folder_fid(env, tmp_path):
    folder = env["folder"]
    npz = save_npz(tmp_path / "ref_stats.npz", reference_features(folder))
    assert main([str(folder), "metrics=[fid]", f"reference={npz}", f"inception.weights={env['weights']}"]) == 0
    by_npz = table(folder, "fid", reference_kind="npz").set_index("cell_id").value
    by_folder = table(folder, "fid", reference_kind="folder").set_index("cell_id").value
    assert np.allclose(by_npz.sort_index(), by_folder.sort_index(), rtol=1e-9, atol=0)
    assert table(folder, "fid", reference_kind="npz").n_reference.isna().all()


def test_group_by_pools_axes(env):
    folder = env["folder"]
    assert main([str(folder), "metrics=[clip_score,fid]", f"reference={env['ref']}", "group_by=[vae]",
                 f"inception.weights={env['weights']}"]) == 0
    rows = sdexp.load_rows(folder)
    clip = table(folder, "clip_score", statistic="mean", grouping="vae")
    fid = table(folder, "fid", grouping="vae")
    assert list(clip.vae) == ["tiny", "tiny_alt"] and list(fid.vae) == ["tiny", "tiny_alt"]
    assert clip.cfg.isna().all() and clip.cell_id.isna().all() and (clip.n == 4).all() and (clip.steps == 2).all()
    for _, r in clip.iterrows():
        assert r.value == pytest.approx(rows[rows.vae == r.vae].clip_score.mean())
    feats, ref = stored_features(folder), reference_features(folder)
    for _, r in fid.iterrows():
        f = np.stack([feats[i] for i in rows[rows.vae == r.vae].image_id])
        assert abs(r.value - scipy_fid(f, ref)) <= 1e-6 * r.value
    assert len(table(folder, "fid", reference_kind="folder")) == 4          # the per-cell result is kept


def snapshot(folder) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for sub in ("groups", "image_metrics", "features")
            for p in sorted((folder / sub).rglob("*")) if p.is_file()}


def test_rescoring_twice_gives_identical_tables(env):
    folder = env["folder"]
    args = [str(folder), "metrics=[clip_score,fid,kid]", f"reference={env['ref']}",
            f"inception.weights={env['weights']}"]
    before, groups = snapshot(folder), sdexp.load_groups(folder)
    assert main(args) == 0
    assert snapshot(folder) == before                                       # replaced with identical bytes
    pd.testing.assert_frame_equal(sdexp.load_groups(folder), groups)
    assert not groups.duplicated(["metric", "statistic", "grouping", "cell_id", "vae", "reference_hash",
                                  "feature_extractor"]).any()


@pytest.mark.slow
def test_force_recomputes_features_in_place(env, capsys):
    folder = env["folder"]
    base = sdexp.load_rows(folder).cell_id.min()
    args = [str(folder), "metrics=[fid]", f"reference=cell:{base}", f"inception.weights={env['weights']}"]
    assert main(args) == 0
    fid, feats = table(folder, "fid", reference_kind="group"), stored_features(folder)
    capsys.readouterr()
    assert main([*args, "force=true"]) == 0
    assert "Inception features for 8 images (0 already stored)" in capsys.readouterr().out
    assert len(list((folder / "features").rglob("part-*.parquet"))) == 1         # replaced, not duplicated
    again = stored_features(folder)
    assert again.keys() == feats.keys() and all(np.array_equal(again[k], feats[k]) for k in feats)
    pd.testing.assert_frame_equal(table(folder, "fid", reference_kind="group"), fid)
