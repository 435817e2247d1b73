"""Statistics with honest uncertainty: bootstrap confidence intervals."""
from __future__ import annotations

import numpy as np


def bootstrap_mean_ci(values, confidence: float = 0.95, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): the sample mean and its percentile-bootstrap interval (seeded, reproducible).

    With fewer than two values the interval is (nan, nan)."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(x.mean())
    if len(x) < 2:
        return mean, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(n_boot, len(x)))].mean(axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return mean, float(low), float(high)


def paired_difference_ci(a, b, confidence: float = 0.95, n_boot: int = 2000,
                         seed: int = 0) -> tuple[float, float, float, int]:
    """(mean of a - b, low, high, n pairs): the paired difference of two matched samples (same seeds and
    prompts) with the percentile-bootstrap interval of its mean, resampling pairs. Pairs with a missing
    value on either side are dropped."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {len(a)} and {len(b)}")
    d = a - b
    d = d[~np.isnan(d)]
    mean, low, high = bootstrap_mean_ci(d, confidence=confidence, n_boot=n_boot, seed=seed)
    return mean, low, high, int(len(d))
