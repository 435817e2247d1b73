"""Means and percentile-bootstrap intervals of many groups at once, equal to
`sdexp.stats.bootstrap_mean_ci` group by group (same seed, same resampling indices): a group's
resampling indices depend only on its size, so groups of one size share one index matrix.

A group of more than LARGE_N values (a plot point pooling thousands of images) gets the normal
interval mean +/- z * sd / sqrt(n) instead, which the percentile bootstrap of a mean approaches
at that size (within about 1% of its width), at a cost that does not grow with n_boot * n."""
from __future__ import annotations

from statistics import NormalDist

import numpy as np

CHUNK_VALUES = 4_000_000     # resampled values held at once (groups x n_boot x size)
LARGE_N = 2000               # above this many values: the normal interval (see above)


def group_means_ci(values: np.ndarray, group: np.ndarray, n_groups: int, confidence: float = 0.95,
                   n_boot: int = 2000, seed: int = 0) -> np.ndarray:
    """(n_groups, 4) float array: mean, low, high and N of the non-NaN values of each group
    (group[i] is the group of values[i]); NaN where a group has no value, no interval below 2."""
    values = np.asarray(values, dtype=float)
    group = np.asarray(group, dtype=np.int64)
    out = np.full((n_groups, 4), np.nan)
    ok = ~np.isnan(values)
    values, group = values[ok], group[ok]
    order = np.argsort(group, kind="stable")
    values, group = values[order], group[order]
    starts = np.searchsorted(group, np.arange(n_groups))
    sizes = np.bincount(group, minlength=n_groups)
    out[:, 3] = sizes
    alpha = (1 - confidence) / 2
    for n in np.unique(sizes):
        if n == 0:
            continue
        ids = np.flatnonzero(sizes == n)
        block = values[starts[ids][:, None] + np.arange(n)]          # (groups, n)
        out[ids, 0] = block.mean(axis=1)
        if n < 2:
            continue
        if n > LARGE_N:
            half = NormalDist().inv_cdf(1 - alpha) * block.std(axis=1) / np.sqrt(n)
            out[ids, 1], out[ids, 2] = out[ids, 0] - half, out[ids, 0] + half
            continue
        index = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
        step = max(1, CHUNK_VALUES // (n_boot * n))
        for i in range(0, len(ids), step):
            means = block[i:i + step][:, index].mean(axis=2)          # (groups, n_boot)
            out[ids[i:i + step], 1:3] = np.quantile(means, [alpha, 1 - alpha], axis=1).T
    return out

