"""Bootstrap intervals: they cover a known mean about as often as they claim, are reproducible, and
the paired difference of matched samples is narrower than the unpaired one when pairs correlate."""
from __future__ import annotations

import numpy as np
import pytest

from sdexp.stats import bootstrap_mean_ci, paired_difference_ci

REPS = 400


def coverage(draw, truth: float, interval) -> float:
    hits = 0
    for rep in range(REPS):
        low, high = interval(draw(np.random.default_rng(rep)))
        hits += low <= truth <= high
    return hits / REPS


@pytest.mark.parametrize("n,dist", [(30, "normal"), (60, "lognormal")])
def test_mean_interval_covers_known_mean(n, dist):
    """95% percentile-bootstrap intervals of a mean: coverage near 0.95 (a little under for skewed data)."""
    if dist == "normal":
        truth, draw = 30.0, lambda rng: rng.normal(30.0, 4.0, n)
    else:
        truth, draw = float(np.exp(0.5 * 0.5**2)), lambda rng: rng.lognormal(0.0, 0.5, n)
    cov = coverage(draw, truth, lambda x: bootstrap_mean_ci(x, n_boot=1000, seed=1)[1:])
    assert 0.90 <= cov <= 0.985, cov


def test_paired_difference_covers_known_difference():
    """Two cells scored on the same seeds and prompts: per-prompt effects cancel in the paired difference."""
    n, delta = 40, 1.5

    def draw(rng):
        prompt_effect = rng.normal(0, 5.0, n)                   # shared by both cells: large
        a = 30 + prompt_effect + rng.normal(0, 1.0, n)
        b = 30 - delta + prompt_effect + rng.normal(0, 1.0, n)
        return a, b

    cov = coverage(draw, delta, lambda ab: paired_difference_ci(*ab, n_boot=1000, seed=2)[1:3])
    assert 0.90 <= cov <= 0.985, cov
    a, b = draw(np.random.default_rng(0))
    mean, low, high, pairs = paired_difference_ci(a, b)
    _, ua_low, ua_high = bootstrap_mean_ci(a)
    assert pairs == n and low < mean < high
    assert (high - low) < 0.5 * (ua_high - ua_low)             # pairing removes the prompt variance
    assert low > 0                                              # the difference is detected


def test_intervals_are_reproducible_and_handle_small_samples():
    x = np.random.default_rng(3).normal(size=25)
    assert bootstrap_mean_ci(x) == bootstrap_mean_ci(x)
    assert bootstrap_mean_ci(x, seed=1) != bootstrap_mean_ci(x, seed=2)
    mean, low, high = bootstrap_mean_ci([2.0])
    assert mean == 2.0 and np.isnan(low) and np.isnan(high)
    d = paired_difference_ci([1.0, 2.0, np.nan, 4.0], [0.5, np.nan, 1.0, 3.0])
    assert d[3] == 2 and d[0] == pytest.approx(0.75)           # pairs with a gap on either side are dropped
    with pytest.raises(ValueError, match="differ in length"):
        paired_difference_ci([1, 2], [1])
