"""Frechet Inception Distance from features or from stored statistics (mu, sigma).

FID = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr sqrt(S1 S2), with S the covariance (ddof=1) as
torch-fidelity, pytorch-fid and clean-fid compute it. The trace of the matrix square root is the sum of
the square roots of the eigenvalues of S1 S2 (torchmetrics and torch-fidelity take `eigvals` of the
2048x2048 product; pytorch-fid `scipy.linalg.sqrtm`). sdexp gets the same eigenvalues from a symmetric
positive semi-definite matrix, which is exact and much faster:

- a side with features X (n images, n - 1 < d): the nonzero eigenvalues of S1 S2 are those of the
  r x r matrix B^T S2 B / (n - 1), where Xc = U s V^T is the thin SVD of the centred features, B = V s
  and r <= n - 1 the numerical rank;
- otherwise: those of S1^(1/2) S2 S1^(1/2), with S1^(1/2) from a symmetric eigendecomposition.

Eigenvalues at round-off level (below n * eps * the largest) count as zero, so rank-deficient
covariances (fewer images than 2048) do not add sqrt(round-off) terms: a set against itself gives 0 to
about 1e-12 relative, where eigvals/sqrtm of the 2048 x 2048 product leave errors near 1e-6.
tests/test_metrics_fid_kid.py checks the value against scipy's sqrtm, torch-fidelity and torchmetrics.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) in float64, sigma with ddof=1 (np.cov), as the reference implementations store them."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"FID statistics need at least 2 feature vectors; got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def _clip_round_off(w: np.ndarray) -> np.ndarray:
    """Eigenvalues of a PSD matrix with the round-off ones (below n * eps * max) set to zero."""
    top = float(np.abs(w).max()) if len(w) else 0.0
    return np.where(w > len(w) * np.finfo(np.float64).eps * top, w, 0.0)


def _sum_sqrt_eigvalsh(m: np.ndarray) -> float:
    return float(np.sqrt(_clip_round_off(np.linalg.eigvalsh((m + m.T) / 2))).sum())


def _gram_trace(x: np.ndarray, sigma_other: np.ndarray) -> float:
    """tr sqrt(S S_other) with S = Xc^T Xc / (n - 1): from the thin SVD Xc = U s V^T, S = B B^T / (n - 1)
    with B = V s (d x r, r the numerical rank), and the eigenvalues sought are those of the r x r
    matrix B^T S_other B / (n - 1)."""
    xc = np.asarray(x, np.float64)
    xc = xc - xc.mean(axis=0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    if not len(s) or s.max() == 0:
        return 0.0
    keep = s > s.max() * max(xc.shape) * np.finfo(np.float64).eps
    b = vt[keep].T * s[keep]
    return _sum_sqrt_eigvalsh(b.T @ sigma_other @ b / (len(xc) - 1))


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray, x1=None, x2=None) -> float:
    """tr sqrt(sigma1 @ sigma2); x1/x2 (the features behind sigma1/sigma2, optional) allow the small form."""
    d = sigma1.shape[0]
    candidates = [(len(x), x, sigma2) for x in (x1,) if x is not None and len(x) - 1 < d]
    candidates += [(len(x), x, sigma1) for x in (x2,) if x is not None and len(x) - 1 < d]
    if candidates:
        _, x, other = min(candidates, key=lambda c: c[0])
        return _gram_trace(x, other)
    w, v = np.linalg.eigh((sigma1 + sigma1.T) / 2)
    root = (v * np.sqrt(_clip_round_off(w))) @ v.T
    return _sum_sqrt_eigvalsh(root @ sigma2 @ root)


def frechet_distance(mu1, sigma1, mu2, sigma2, x1=None, x2=None) -> float:
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"FID statistics differ in shape: mu {mu1.shape} vs {mu2.shape}, "
                         f"sigma {sigma1.shape} vs {sigma2.shape}")
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2)
                 - 2 * trace_sqrt_product(sigma1, sigma2, x1, x2))


def fid_from_features(f1, f2) -> float:
    """FID between two sets of features."""
    mu1, s1 = statistics(f1)
    mu2, s2 = statistics(f2)
    return frechet_distance(mu1, s1, mu2, s2, np.asarray(f1), np.asarray(f2))


def load_npz(path: Path | str) -> tuple[np.ndarray, np.ndarray]:
    """mu and sigma from an .npz as pytorch-fid, clean-fid and torch-fidelity write them."""
    with np.load(path, allow_pickle=False) as data:
        missing = [k for k in ("mu", "sigma") if k not in data.files]
        if missing:
            raise ValueError(f"reference={str(path)!r} lacks {', '.join(missing)}; an FID statistics file holds "
                             f"arrays 'mu' (d,) and 'sigma' (d, d); it has: {', '.join(data.files) or 'nothing'}")
        mu, sigma = np.asarray(data["mu"], np.float64), np.asarray(data["sigma"], np.float64)
    if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)):
        raise ValueError(f"reference={str(path)!r}: mu {mu.shape} and sigma {sigma.shape} do not fit; "
                         f"expected (d,) and (d, d)")
    return mu, sigma


def save_npz(path: Path | str, features) -> Path:
    """Write mu and sigma of features in the pytorch-fid / clean-fid layout."""
    mu, sigma = statistics(features)
    np.savez(path, mu=mu, sigma=sigma)
    return Path(path)
