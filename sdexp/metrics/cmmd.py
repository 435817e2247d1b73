"""CMMD (Jayasumana et al. 2024, "Rethinking FID: Towards a Better Evaluation Metric for Image
Generation"): the squared maximum mean discrepancy between CLIP image embeddings of two image sets,
with a Gaussian RBF kernel k(x, y) = exp(-|x - y|^2 / (2 sigma^2)), sigma = 10, scaled by 1000.

As in the authors' reference code (google-research/cmmd, distance.py), the embeddings are unit-norm
and the three kernel means include the diagonal (the V-statistic): a set against itself gives 0
exactly, and the value needs no normality assumption, unlike the Frechet distance.
"""
from __future__ import annotations

import numpy as np

SIGMA = 10.0
SCALE = 1000.0


def _kernel_mean(a: np.ndarray, b: np.ndarray, gamma: float) -> float:
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return float(np.exp(-gamma * np.maximum(d2, 0.0)).mean())


def cmmd(x, y, sigma: float = SIGMA, scale: float = SCALE) -> float:
    """scale * (mean k(x, x') + mean k(y, y') - 2 mean k(x, y)) of two sets of embeddings (rows)."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or not len(x) or not len(y):
        raise ValueError(f"CMMD needs two non-empty (n, d) sets of equal d; got {x.shape} and {y.shape}")
    gamma = 1.0 / (2 * sigma ** 2)
    return scale * (_kernel_mean(x, x, gamma) + _kernel_mean(y, y, gamma) - 2 * _kernel_mean(x, y, gamma))
