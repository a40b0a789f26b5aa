"""Spearman / Pearson with bootstrap intervals: exactness of the resampled statistics, edge cases."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from retcore.stats.correlation import (
    _moments,
    _pearson_w,
    _spearman_w,
    confidence_correlations,
    correlate,
    correlation_table,
    pearson,
    spearman,
)
from retcore.stats.intervals import SortedRanks, resample_counts


def test_monotone_nonlinear_relation():
    x = np.linspace(0.0, 3.0, 40)
    y = np.exp(2 * x)
    rho, r = spearman(x, y, n_boot=200), pearson(x, y, n_boot=200)
    assert rho.value == pytest.approx(1.0) and rho.low == pytest.approx(1.0)
    assert r.value < 0.9
    assert r.value == pytest.approx(sps.pearsonr(x, y).statistic)
    assert r.p_value == pytest.approx(sps.pearsonr(x, y).pvalue)
    assert (rho.n, r.n) == (40, 40)


def test_values_and_p_values_match_scipy_and_intervals_bracket():
    rng = np.random.default_rng(0)
    x = rng.normal(size=300)
    y = 0.5 * x + rng.normal(size=300)
    both = correlate(x, y, n_boot=500, seed=1)
    assert list(both) == ["spearman", "pearson"]
    ref = sps.spearmanr(x, y)
    assert both["spearman"].value == pytest.approx(ref.statistic)
    assert both["spearman"].p_value == pytest.approx(ref.pvalue)
    for c in both.values():
        assert c.low < c.value < c.high
    # the bootstrap width is close to the Fisher-z normal theory width for Pearson
    r = both["pearson"].value
    fisher = np.tanh(np.arctanh(r) + np.array([-1.96, 1.96]) / math.sqrt(300 - 3))
    assert both["pearson"].high - both["pearson"].low == pytest.approx(fisher[1] - fisher[0], rel=0.25)
    assert correlate(x, y, n_boot=500, seed=1) == both


def test_resampled_statistics_are_exact():
    rng = np.random.default_rng(2)
    x = np.sort(rng.integers(0, 6, 25).astype(float))  # ties, presorted as in correlate()
    y = x + rng.integers(0, 4, 25)
    w = next(resample_counts(25, 6, rng))
    rho = _spearman_w(w, SortedRanks.of(x), SortedRanks.of(y))
    r = _pearson_w(w.astype(float), _moments(x, y))
    for i in range(6):
        xx, yy = np.repeat(x, w[i]), np.repeat(y, w[i])
        assert rho[i] == pytest.approx(sps.spearmanr(xx, yy).statistic)
        assert r[i] == pytest.approx(sps.pearsonr(xx, yy).statistic)


def test_constant_short_and_nan_inputs_give_nan_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cases = [(np.ones(10), np.arange(10.0)), (np.arange(2.0), np.arange(2.0)), (np.empty(0), np.empty(0))]
        for x, y in cases:
            for c in correlate(x, y, n_boot=50).values():
                assert math.isnan(c.value) and math.isnan(c.low) and math.isnan(c.p_value)
        x = np.array([1.0, 2.0, np.nan, 4.0, 5.0])
        y = np.array([2.0, 1.0, 3.0, np.nan, 5.0])
        assert spearman(x, y, n_boot=50).n == 3
    with pytest.raises(ValueError):
        correlate(np.arange(3.0), np.arange(3.0), methods=("kendall",))
    with pytest.raises(ValueError):
        correlate(np.arange(3.0), np.arange(4.0))


def _frame():
    rng = np.random.default_rng(5)
    n = 240
    label = rng.choice(["normal", "glaucoma", "cataract"], n)
    conf = rng.uniform(0.3, 1.0, n)
    score = 2 * conf + rng.normal(0, 0.3, n)
    correct = rng.random(n) < conf
    return pd.DataFrame({"label": label, "confidence": conf, "score": score, "correct": correct})


def test_correlation_table_groups():
    df = _frame()
    table = correlation_table(df, by="label", n_boot=100)
    assert list(table.columns) == ["group", "method", "value", "low", "high", "p_value", "n"]
    assert table["group"].tolist() == ["cataract"] * 2 + ["glaucoma"] * 2 + ["normal"] * 2
    sizes = df["label"].value_counts()
    assert table.groupby("group")["n"].first().to_dict() == sizes.to_dict()
    sub = df[df["label"] == "glaucoma"]
    row = table[(table["group"] == "glaucoma") & (table["method"] == "pearson")].iloc[0]
    assert row["value"] == pytest.approx(sps.pearsonr(sub["confidence"], sub["score"]).statistic)


def test_confidence_correlations_scopes():
    df = _frame()
    df["correct"] = df["correct"].astype(object)
    df.loc[0, "correct"] = None  # unknown outcome: kept overall, left out of the outcome scope
    table = confidence_correlations(df, methods=("spearman",), n_boot=100)
    assert table.columns[0] == "scope"
    assert table["scope"].tolist() == ["overall"] + ["class"] * 3 + ["outcome"] * 2
    outcome = table[table["scope"] == "outcome"].set_index("group")
    assert outcome.loc["correct", "n"] + outcome.loc["incorrect", "n"] == len(df) - 1
    assert table.iloc[0]["group"] == "all" and table.iloc[0]["n"] == len(df)
    only = confidence_correlations(df, label=None, correct=None, n_boot=10)
    assert only["scope"].unique().tolist() == ["overall"]
