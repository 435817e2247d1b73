"""FID and KID from features against independent implementations: a scipy sqrtm FID written here,
torch-fidelity's and torchmetrics' own formulas, and a KID written here; self-FID; KID subsets."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from sdexp.metrics.fid import fid_from_features, frechet_distance, load_npz, save_npz, statistics
from sdexp.metrics.kid import kid


def scipy_fid(f1: np.ndarray, f2: np.ndarray) -> float:
    """pytorch-fid's calculate_frechet_distance, written independently: scipy.linalg.sqrtm of S1 S2."""
    mu1, mu2 = f1.mean(axis=0), f2.mean(axis=0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        offset = np.eye(len(s1)) * 1e-6
        covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean.real))


def features(n: int, d: int, seed: int, shift: float = 0.0, scale: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mix = np.random.default_rng(99).normal(size=(d, d)) / np.sqrt(d)      # shared correlation structure
    return (rng.normal(size=(n, d)) @ mix) * scale + shift


# (n1, n2, d): more images than dimensions (full-rank covariances), fewer (rank-deficient, the usual
# case for small sweeps with 2048-d features), and mixed
SHAPES = [(300, 200, 64), (20, 30, 64), (40, 300, 64), (60, 50, 160)]


@pytest.mark.parametrize("n1,n2,d", SHAPES, ids=[f"n{a}-n{b}-d{c}" for a, b, c in SHAPES])
def test_fid_matches_scipy_sqrtm(n1, n2, d):
    f1, f2 = features(n1, d, 1), features(n2, d, 2, shift=0.05, scale=1.2)
    ours, ref = fid_from_features(f1, f2), scipy_fid(f1, f2)
    assert ref > 1
    assert abs(ours - ref) <= 1e-6 * ref, (ours, ref)


@pytest.mark.parametrize("n1,n2,d", SHAPES[:2], ids=["full-rank", "rank-deficient"])
def test_fid_matches_torch_fidelity_and_torchmetrics(n1, n2, d):
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric
    from torchmetrics.image.fid import _compute_fid

    f1, f2 = features(n1, d, 3), features(n2, d, 4, shift=-0.1, scale=0.8)
    (mu1, s1), (mu2, s2) = statistics(f1), statistics(f2)
    ours = fid_from_features(f1, f2)
    tf = fid_statistics_to_metric({"mu": mu1, "sigma": s1}, {"mu": mu2, "sigma": s2}, verbose=False)[KEY_METRIC_FID]
    tm = float(_compute_fid(*(torch.from_numpy(a) for a in (mu1, s1, mu2, s2))))
    assert abs(ours - tf) <= 1e-6 * tf and abs(ours - tm) <= 1e-6 * tm, (ours, tf, tm)


def test_fid_from_statistics_alone_equals_fid_from_features(tmp_path):
    """An .npz reference (mu, sigma only) gives the FID that its features give."""
    f1, f2 = features(25, 64, 5), features(30, 64, 6, shift=0.2)
    path = save_npz(tmp_path / "ref.npz", f2)
    mu, sigma = load_npz(path)
    with np.load(path) as data:
        assert sorted(data.files) == ["mu", "sigma"]               # pytorch-fid / clean-fid layout
    mu1, s1 = statistics(f1)
    assert frechet_distance(mu1, s1, mu, sigma, x1=f1) == pytest.approx(fid_from_features(f1, f2), rel=1e-9)
    assert frechet_distance(mu1, s1, mu, sigma) == pytest.approx(scipy_fid(f1, f2), rel=1e-6)


@pytest.mark.parametrize("n,d", [(300, 64), (12, 64), (5, 2048)])
def test_self_fid_is_zero(n, d):
    f = features(n, d, 7) + 3.0
    scale = np.trace(np.cov(f, rowvar=False))
    assert abs(fid_from_features(f, f)) <= 1e-11 * scale


def test_fid_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="at least 2"):
        statistics(np.zeros((1, 8)))
    np.savez(tmp_path / "bad.npz", mean=np.zeros(3))
    with pytest.raises(ValueError, match="lacks mu, sigma"):
        load_npz(tmp_path / "bad.npz")


def kid_reference(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3, written from the KID paper's definition."""
    m, d = len(x), x.shape[1]
    k = lambda a, b: (a @ b.T / d + 1) ** 3  # noqa: E731
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    off = lambda km: (km.sum() - np.trace(km)) / (m * (m - 1))  # noqa: E731
    return float(off(kxx) + off(kyy) - 2 * kxy.mean())


def test_kid_full_subset_matches_formula_and_torchmetrics():
    """Subset size = N: every subset is the whole set, so the value is the plain unbiased MMD^2."""
    from torchmetrics.image.kid import poly_mmd

    x, y = features(40, 64, 8), features(40, 64, 9, shift=0.3)
    ours = kid(x, y, subset_size=40, subsets=5)
    assert ours["subset_size"] == 40 and ours["std"] <= 1e-12 * abs(ours["value"])
    ref = kid_reference(x, y)
    tm = float(poly_mmd(torch.from_numpy(x), torch.from_numpy(y)))
    assert ours["value"] == pytest.approx(ref, rel=1e-9) and ours["value"] == pytest.approx(tm, rel=1e-9)
    assert ref > 0


def test_kid_subsets_match_torch_fidelity():
    """Same seed, same subsets: torch-fidelity's kid_features_to_metric (float32 features)."""
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    x = features(50, 64, 10).astype(np.float32)
    y = features(70, 64, 11, shift=0.2).astype(np.float32)
    ours = kid(x, y, subset_size=20, subsets=30, seed=123)
    theirs = kid_features_to_metric(torch.from_numpy(x), torch.from_numpy(y), kid_subsets=30, kid_subset_size=20,
                                    rng_seed=123, verbose=False, kid_kernel="poly", kid_kernel_poly_degree=3,
                                    kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1)
    scale = abs(theirs[KEY_METRIC_KID_STD]) + abs(theirs[KEY_METRIC_KID_MEAN])
    assert abs(ours["value"] - theirs[KEY_METRIC_KID_MEAN]) <= 1e-5 * scale
    assert abs(ours["std"] - theirs[KEY_METRIC_KID_STD]) <= 1e-5 * scale
    assert kid(x, y, subset_size=20, subsets=30, seed=123) == ours                  # reproducible
    assert kid(x, y, subset_size=20, subsets=30, seed=124)["value"] != ours["value"]


def test_kid_adapts_subset_size_to_n():
    """torchmetrics and torch-fidelity refuse N < subset_size (1000 by default); sdexp uses min(1000, N)."""
    x, y = features(12, 64, 12), features(9, 64, 13, shift=0.5)
    out = kid(x, y)
    assert out["subset_size"] == 9 and np.isfinite(out["value"]) and out["value"] > 0
    assert np.isnan(kid(x[:1], y)["value"]) and kid(x[:1], y)["subset_size"] == 1
    same = kid(x, features(9, 64, 14))                            # two samples of one distribution: about 0
    assert abs(same["value"]) < 0.1 * out["value"]
