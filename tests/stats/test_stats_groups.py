"""Mann-Whitney, Kruskal-Wallis, Holm and chi-square across strata: hand-worked values."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from retcore.stats.groups import (
    accuracy_by_stratum,
    compare_groups,
    compare_outcomes,
    group_summary,
    holm,
    kruskal_wallis,
    mann_whitney,
    pairwise_mann_whitney,
)
from retcore.stats.intervals import wilson_interval


def test_holm_known_vector():
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> running max
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    adjusted = holm([0.5, np.nan, 0.4])
    np.testing.assert_allclose(adjusted[[0, 2]], [0.8, 0.8])  # m = 2: 0.4 x 2, max(0.8, 0.5)
    assert np.isnan(adjusted[1])
    assert holm([0.9, 0.8]).max() == 1.0
    assert holm([]).shape == (0,)


def test_mann_whitney_hand_worked():
    res = mann_whitney([3, 4, 5], [1, 2])
    # all 6 pairs favour a: U_a = 6, r = 1; exact two-sided p = 2 / C(5, 2)
    assert (res.statistic, res.effect, res.n) == (6.0, 1.0, 5)
    assert res.p_value == pytest.approx(0.2)
    ties = mann_whitney([1, 2], [2, 3])  # pairs: <, <, tie, < -> U_a = 0.5
    assert ties.statistic == 0.5 and ties.effect == pytest.approx(-0.75)
    assert math.isnan(mann_whitney([], [1, 2]).p_value)
    assert mann_whitney([1.0, np.nan, 2.0], [3.0]).n == 3


def test_kruskal_wallis_hand_worked():
    res = kruskal_wallis({"a": [1, 2, 3], "b": [4, 5, 6], "c": [7, 8, 9]})
    # rank sums 6, 15, 24: H = 12 / (9 * 10) * (36 + 225 + 576) / 3 - 3 * 10 = 7.2
    assert res.statistic == pytest.approx(7.2)
    assert res.p_value == pytest.approx(math.exp(-3.6))  # chi2(2) survival = exp(-H / 2)
    assert res.effect == pytest.approx(7.2 / 8) and res.dof == 2 and res.n == 9


def test_kruskal_wallis_degenerate():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(kruskal_wallis([[1.0, 1.0], [1.0]]).statistic)
        assert math.isnan(kruskal_wallis([[1.0, 2.0], []]).p_value)  # one non-empty group
        assert kruskal_wallis([]).n == 0


def _frame():
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "cls": np.repeat(["a", "b", "c"], 30),
        "score": np.concatenate([rng.normal(0, 1, 30), rng.normal(0, 1, 30), rng.normal(3, 1, 30)]),
        "correct": np.tile([True, False, True], 30),
    })


def test_pairwise_and_compare_groups():
    df = _frame()
    cmp = compare_groups(df, "score", "cls")
    assert cmp.omnibus.p_value < 1e-6 and cmp.omnibus.dof == 2
    pairs = cmp.pairwise
    assert list(pairs.columns) == ["group_a", "group_b", "n_a", "n_b", "u", "p_value", "p_holm", "effect"]
    assert list(zip(pairs["group_a"], pairs["group_b"])) == [("a", "b"), ("a", "c"), ("b", "c")]
    assert (pairs["p_holm"] >= pairs["p_value"]).all()
    np.testing.assert_allclose(pairs["p_holm"], holm(pairs["p_value"]))
    assert pairs.loc[1, "effect"] < -0.8  # c is much larger than a
    groups = {k: v["score"].to_numpy() for k, v in df.groupby("cls")}
    pd.testing.assert_frame_equal(pairwise_mann_whitney(groups), pairs)
    summary = cmp.summary.set_index("group")
    assert summary.loc["c", "median"] == pytest.approx(df[df["cls"] == "c"]["score"].median())
    assert summary["n"].tolist() == [30, 30, 30]


def test_compare_outcomes_and_summary_empty():
    df = pd.DataFrame({"score": [5.0, 6.0, 7.0, 1.0, 2.0, np.nan],
                       "correct": [True, True, True, False, False, None]})
    res = compare_outcomes(df, "score")
    assert res.effect == 1.0 and res.n == 5
    assert group_summary(df.iloc[:0], "score", "correct").empty


def test_accuracy_by_stratum_hand_worked():
    df = pd.DataFrame({"quality": ["good"] * 10 + ["poor"] * 10,
                       "correct": [True] * 8 + [False] * 2 + [True] * 2 + [False] * 8})
    out = accuracy_by_stratum(df, "quality")
    # table [[8, 2], [2, 8]], expected 5 everywhere: chi2 = 4 * 3^2 / 5 = 7.2, V = sqrt(7.2 / 20)
    assert out.test.statistic == pytest.approx(7.2) and out.test.dof == 1
    assert out.test.effect == pytest.approx(0.6)
    assert out.test.p_value == pytest.approx(math.erfc(math.sqrt(7.2 / 2)))
    row = out.table.set_index("stratum").loc["good"]
    w = wilson_interval(8, 10)
    assert (row["n"], row["n_correct"], row["accuracy"], row["low"], row["high"]) == pytest.approx(
        (10, 8, 0.8, w.low, w.high))


def test_accuracy_by_stratum_degenerate():
    df = pd.DataFrame({"quality": ["good", "poor", "poor"], "correct": [True, True, True]})
    out = accuracy_by_stratum(df, "quality")
    assert math.isnan(out.test.p_value) and out.table["accuracy"].tolist() == [1.0, 1.0]
    assert math.isnan(accuracy_by_stratum(df.iloc[:0], "quality").test.statistic)
