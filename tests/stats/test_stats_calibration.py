"""ECE with a seeded percentile-bootstrap interval over images (the one used by the Overview and export)."""
from __future__ import annotations

import numpy as np
import pytest

from retcore.stats import calibration_error, expected_calibration_error, percentile_interval
from retcore.stats.intervals import resample_counts, rng_from


def _overconfident(n, seed=0):
    rng = np.random.default_rng(seed)
    confidence = rng.uniform(0.4, 1.0, n)
    correct = rng.uniform(size=n) < confidence - 0.15  # accuracy 15 points below confidence
    return confidence, correct


def test_value_is_retcore_stats_ece_and_interval_brackets_it():
    confidence, correct = _overconfident(400)
    est = calibration_error(confidence, correct, n_boot=500, seed=0)
    assert est.value == pytest.approx(expected_calibration_error(confidence, correct, 15), abs=1e-12)
    assert est.low < est.value < est.high
    assert 0.05 < est.low and est.high < 0.3  # a ~0.15 gap, bracketed with room to spare
    assert calibration_error(confidence, correct, n_boot=500, seed=0) == est  # seeded
    assert calibration_error(confidence, correct, n_boot=500, seed=1) != est


def test_interval_is_the_percentile_bootstrap_of_retcore_stats_ece():
    """Same resamples (retcore.stats' count vectors for the seed), ECE of each by retcore.stats."""
    confidence, correct = _overconfident(60, seed=3)
    n_boot = 200
    boots = []
    for counts in resample_counts(len(confidence), n_boot, rng_from(7)):
        for row in counts:
            boots.append(expected_calibration_error(np.repeat(confidence, row), np.repeat(correct, row), 15))
    low, high = percentile_interval(np.array(boots))
    est = calibration_error(confidence, correct, n_boot=n_boot, seed=7)
    assert (est.low, est.high) == pytest.approx((low, high), abs=1e-12)


def test_perfectly_calibrated_bins_and_empty_input():
    confidence = np.array([0.95] * 20 + [0.55] * 20)
    correct = np.array([True] * 19 + [False] + [True] * 11 + [False] * 9)
    est = calibration_error(confidence, correct, n_boot=200)
    assert est.value == pytest.approx(0.0, abs=1e-12)
    # binned ECE is biased upwards: resamples of a calibrated set are rarely calibrated bin by bin,
    # so the percentile interval lies above a zero estimate
    assert 0.0 < est.low < est.high < 0.2
    empty = calibration_error(np.array([]), np.array([], dtype=bool))
    assert np.isnan(empty.value) and np.isnan(empty.low)


def test_metrics_ece_of_probabilities_is_the_stats_ece():
    from retcore.metrics import expected_calibration_error as ece_of_probs

    rng = np.random.default_rng(4)
    probs = rng.dirichlet(np.ones(4), size=200)
    y = rng.integers(0, 4, size=200)
    assert ece_of_probs(y, probs) == pytest.approx(
        expected_calibration_error(probs.max(1), probs.argmax(1) == y, 15), abs=1e-15)
