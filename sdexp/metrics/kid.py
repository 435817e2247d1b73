"""Kernel Inception Distance: the unbiased MMD^2 with the cubic polynomial kernel
k(x, y) = (x.y / d + 1)^3, averaged over random subsets, as torch-fidelity and torchmetrics compute it.

Subsets are drawn exactly as torch-fidelity draws them (numpy RandomState(seed), `choice` without
replacement, first set then second set per subset), so with the same seed the value is torch-fidelity's.
The subset size is min(subset_size, N1, N2): torch-fidelity and torchmetrics refuse N < subset_size
(default 1000); sdexp adapts and records the size used. With the subset size equal to both N, every
subset holds every image and the value no longer depends on the seed.
"""
from __future__ import annotations

import numpy as np


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float | None = None,
                      coef0: float = 1.0) -> np.ndarray:
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    return (x @ y.T * gamma + coef0) ** degree


def mmd2_unbiased(k_xx: np.ndarray, k_xy: np.ndarray, k_yy: np.ndarray) -> float:
    m = k_xx.shape[0]
    sum_xx = k_xx.sum() - np.trace(k_xx)
    sum_yy = k_yy.sum() - np.trace(k_yy)
    return float((sum_xx + sum_yy) / (m * (m - 1)) - 2 * k_xy.sum() / (m * m))


def kid(f1, f2, subset_size: int = 1000, subsets: int = 100, seed: int = 2020, degree: int = 3,
        gamma: float | None = None, coef0: float = 1.0) -> dict:
    """{'value': mean MMD^2 over subsets, 'std': its standard deviation over subsets, 'subset_size': used}."""
    f1 = np.asarray(f1, np.float64)
    f2 = np.asarray(f2, np.float64)
    n1, n2 = len(f1), len(f2)
    m = min(int(subset_size), n1, n2)
    if m < 2:
        return {"value": float("nan"), "std": float("nan"), "subset_size": m}
    rng = np.random.RandomState(seed)
    mmds = np.zeros(subsets)
    for i in range(subsets):
        a = f1[rng.choice(n1, m, replace=False)]
        b = f2[rng.choice(n2, m, replace=False)]
        k = lambda u, v: polynomial_kernel(u, v, degree, gamma, coef0)  # noqa: E731
        mmds[i] = mmd2_unbiased(k(a, a), k(a, b), k(b, b))
    return {"value": float(mmds.mean()), "std": float(mmds.std()), "subset_size": m}
