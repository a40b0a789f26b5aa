"""Paired run comparison: McNemar on known tables, Wilcoxon signed-rank, bootstrap mean difference."""
from __future__ import annotations

import math

import numpy as np
import pytest

from retcore.stats.paired import mcnemar, mcnemar_table, paired_difference, wilcoxon_signed_rank


def _pairs(both, a_only, b_only, neither):
    a = [True] * both + [True] * a_only + [False] * b_only + [False] * neither
    b = [True] * both + [False] * a_only + [True] * b_only + [False] * neither
    return np.array(a), np.array(b)


def test_mcnemar_table_layout():
    np.testing.assert_array_equal(mcnemar_table(*_pairs(5, 3, 2, 1)), [[5, 3], [2, 1]])


def test_mcnemar_exact_small_discordant():
    res = mcnemar(*_pairs(50, 10, 2, 8))
    # b + c = 12 < 25: p = 2 P(X <= 2), X ~ Bin(12, 1/2) = 2 (1 + 12 + 66) / 4096
    assert res.test == "mcnemar-exact" and res.statistic == 2
    assert res.p_value == pytest.approx(158 / 4096)
    assert res.effect == pytest.approx(8 / 70) and res.n == 70


def test_mcnemar_chi_square_with_continuity_correction():
    res = mcnemar(*_pairs(100, 30, 10, 20))
    # (|30 - 10| - 1)^2 / 40 = 9.025 on 1 df: p = erfc(sqrt(chi2 / 2))
    assert res.test == "mcnemar-chi2" and res.statistic == pytest.approx(9.025)
    assert res.p_value == pytest.approx(math.erfc(math.sqrt(9.025 / 2)))
    assert res.dof == 1


def test_mcnemar_edge_cases():
    assert mcnemar(*_pairs(5, 0, 0, 3)).p_value == 1.0
    assert math.isnan(mcnemar([], []).p_value)
    with pytest.raises(ValueError):
        mcnemar([True], [True, False])


def test_wilcoxon_hand_worked():
    res = wilcoxon_signed_rank([1, 2, 3, 4, 5], [0, 0, 0, 0, 0])
    # all differences positive: T+ = 15, T- = 0; exact two-sided p = 2 / 2^5
    assert (res.statistic, res.effect, res.n) == (0.0, 1.0, 5)
    assert res.p_value == pytest.approx(0.0625)
    mixed = wilcoxon_signed_rank([1, -2, 3, 4, 0], [0, 0, 0, 0, 0])  # zero dropped; ranks 1, 2-, 3, 4
    assert mixed.effect == pytest.approx((8 - 2) / 10) and mixed.statistic == 2.0 and mixed.n == 5
    assert wilcoxon_signed_rank([1.0, 2.0], [1.0, 2.0]).p_value == 1.0
    assert math.isnan(wilcoxon_signed_rank([], []).p_value)


def test_paired_difference():
    rng = np.random.default_rng(0)
    a = rng.normal(0.5, 1.0, 200)
    b = a - 0.3 + rng.normal(0, 0.2, 200)
    a[0] = np.nan
    res = paired_difference(a, b, n_boot=500, seed=2)
    d = (a - b)[1:]
    assert res.difference.value == pytest.approx(d.mean())
    assert res.difference.low < 0.3 < res.difference.high
    assert res.test.p_value < 1e-10 and res.test.effect > 0.8 and res.test.n == 199
    assert res == paired_difference(a, b, n_boot=500, seed=2)
