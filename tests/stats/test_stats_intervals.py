"""Wilson intervals, percentile intervals and the count-vector bootstrap: hand-worked values."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from retcore.stats.intervals import (
    Estimate,
    SortedRanks,
    bootstrap,
    bootstrap_mean,
    percentile_interval,
    resample_counts,
    weighted_midranks,
    wilson_bounds,
    wilson_interval,
)

Z = 1.959963984540054  # Phi^-1(0.975)


def test_wilson_8_of_10_by_formula():
    p, n = 0.8, 10
    centre = (p + Z**2 / (2 * n)) / (1 + Z**2 / n)
    half = Z / (1 + Z**2 / n) * math.sqrt(p * (1 - p) / n + Z**2 / (4 * n * n))
    est = wilson_interval(8, 10)
    assert est.value == pytest.approx(0.8)
    assert est.low == pytest.approx(centre - half) and est.high == pytest.approx(centre + half)
    assert (round(est.low, 4), round(est.high, 4)) == (0.4902, 0.9433)  # published table value


def test_wilson_extremes_and_empty():
    zero = wilson_interval(0, 20)
    assert zero.low == 0.0 and zero.high == pytest.approx(Z**2 / (20 + Z**2))
    full = wilson_interval(20, 20)
    assert full.high == 1.0 and full.low == pytest.approx(20 / (20 + Z**2))
    empty = wilson_interval(0, 0)
    assert all(math.isnan(v) for v in (empty.value, empty.low, empty.high))


def test_wilson_vectorised_matches_scalar_and_level():
    k, n = np.array([0, 3, 8, 5]), np.array([4, 10, 10, 0])
    p, low, high = wilson_bounds(k, n)
    for i in range(3):
        assert (p[i], low[i], high[i]) == pytest.approx(tuple(vars(wilson_interval(k[i], n[i])).values()))
    assert np.isnan([p[3], low[3], high[3]]).all()
    assert wilson_interval(8, 10, level=0.99).low < wilson_interval(8, 10).low
    with pytest.raises(ValueError):
        wilson_interval(8, 10, level=95)


def test_percentile_interval_ignores_nan():
    samples = np.append(np.linspace(0.0, 1.0, 1001), [np.nan, np.inf])
    assert percentile_interval(samples) == pytest.approx((0.025, 0.975))
    low, high = percentile_interval(np.column_stack([np.linspace(0, 1, 1001), np.full(1001, np.nan)]))
    assert low[0] == pytest.approx(0.025) and np.isnan(low[1]) and np.isnan(high[1])
    assert all(math.isnan(v) for v in percentile_interval(np.empty(0)))


def test_resample_counts_rows_are_resamples():
    rng = np.random.default_rng(0)
    chunks = list(resample_counts(7, 50, rng, chunk_cells=70))  # 10 rows per chunk
    assert [len(c) for c in chunks] == [10] * 5
    w = np.concatenate(chunks)
    assert (w.sum(axis=1) == 7).all() and w.min() >= 0
    assert list(resample_counts(0, 50, rng)) == []


def test_bootstrap_weighted_statistic_equals_statistic_of_resample():
    rng = np.random.default_rng(1)
    x = rng.normal(size=12)
    w = next(resample_counts(12, 3, rng))
    weighted_mean = (w @ x) / w.sum(axis=1)
    for i in range(3):
        assert weighted_mean[i] == pytest.approx(np.repeat(x, w[i]).mean())


def test_bootstrap_mean_seeded_and_near_normal_theory():
    x = np.random.default_rng(2).normal(10.0, 2.0, size=400)
    est = bootstrap_mean(x, n_boot=2000, seed=5)
    assert est == bootstrap_mean(x, n_boot=2000, seed=5)
    assert est != bootstrap_mean(x, n_boot=2000, seed=6)
    assert est.value == pytest.approx(x.mean())
    assert est.low < est.value < est.high
    normal_width = 2 * Z * x.std(ddof=1) / math.sqrt(len(x))
    assert est.high - est.low == pytest.approx(normal_width, rel=0.15)


def test_bootstrap_generic_and_empty():
    x = np.arange(10.0)
    est = bootstrap(lambda w, v: (w @ v) / w.sum(axis=1), x, n_boot=200, seed=0)
    assert isinstance(est, Estimate) and est.value == pytest.approx(4.5)
    nan = bootstrap_mean(np.array([np.nan]))
    assert math.isnan(nan.value) and math.isnan(nan.low)


@pytest.mark.parametrize("values", [
    [3.0, 1.0, 2.0, 5.0, 4.0],               # no ties, unsorted
    [1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 0.5],     # ties
    [0.0, 1.0, 2.0, 3.0],                    # presorted
])
def test_weighted_midranks_match_rankdata_of_resample(values):
    x = np.array(values)
    sr = SortedRanks.of(x)
    np.testing.assert_allclose(weighted_midranks(np.ones((1, len(x))), sr)[0], sps.rankdata(x))
    w = next(resample_counts(len(x), 20, np.random.default_rng(3)))
    ranks = weighted_midranks(w, sr)
    for i in range(len(w)):
        drawn = w[i] > 0
        expected = sps.rankdata(np.repeat(x[drawn], w[i][drawn]))  # ranks of the resample
        firsts = np.cumsum(w[i][drawn]) - w[i][drawn]
        np.testing.assert_allclose(ranks[i][drawn], expected[firsts])
