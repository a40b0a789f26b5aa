"""Comparison of two runs on the same images: paired values and paired correctness.

Paired values (e.g. a zone score of run A and run B per image), d_i = a_i - b_i over the
n pairs where both are finite:

- mean difference mean(d) with a percentile-bootstrap interval over pairs (O(B n));
- Wilcoxon signed-rank test (``scipy.stats.wilcoxon``, two-sided, zero differences
  dropped, exact for small n without ties, normal approximation otherwise); statistic
  = min(T+, T-), the smaller sum of ranks of |d| by sign; effect = matched-pairs
  rank-biserial r = (T+ - T-) / (T+ + T-) in [-1, 1] (positive when A tends to be larger).

Paired correctness, 2 x 2 table of (A correct, B correct) with discordant counts
b = A right & B wrong and c = A wrong & B right, McNemar's test of b = c:

- exact (b + c < ``exact_below``, default 25): p = min(1, 2 P(X <= min(b, c))),
  X ~ Binomial(b + c, 1/2); statistic = min(b, c);
- otherwise chi-square with continuity correction: (|b - c| - 1)^2 / (b + c), 1 df.

Effect = accuracy of A minus accuracy of B = (b - c) / n. No discordant pair: p = 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from retcore.stats.groups import TestResult
from retcore.stats.intervals import N_BOOT, Estimate, Seed, bootstrap_mean

__all__ = [
    "PairedComparison",
    "mcnemar",
    "mcnemar_table",
    "paired_difference",
    "wilcoxon_signed_rank",
]

NAN = float("nan")


@dataclass(frozen=True)
class PairedComparison:
    """Mean paired difference (A - B) with bootstrap interval, and the Wilcoxon signed-rank test."""

    difference: Estimate
    test: TestResult


def _differences(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired arrays differ in length: {a.shape} vs {b.shape}")
    d = a - b
    return d[np.isfinite(d)]


def wilcoxon_signed_rank(a: np.ndarray, b: np.ndarray) -> TestResult:
    """Wilcoxon signed-rank test of paired ``a`` (n,) vs ``b`` (n,); effect = rank-biserial r."""
    d = _differences(a, b)
    n = len(d)
    nonzero = d[d != 0]
    if n == 0:
        return TestResult("wilcoxon", NAN, NAN, NAN, 0)
    if len(nonzero) == 0:
        return TestResult("wilcoxon", 0.0, 1.0, 0.0, n)
    ranks = sps.rankdata(np.abs(nonzero))
    t_plus, t_minus = ranks[nonzero > 0].sum(), ranks[nonzero < 0].sum()
    result = sps.wilcoxon(nonzero, zero_method="wilcox", alternative="two-sided")
    effect = (t_plus - t_minus) / (t_plus + t_minus)
    return TestResult("wilcoxon", float(result.statistic), float(result.pvalue), float(effect), n)


def paired_difference(a: np.ndarray, b: np.ndarray, n_boot: int = N_BOOT, seed: Seed = 0,
                      level: float = 0.95) -> PairedComparison:
    """Mean of a - b over complete pairs with bootstrap interval, plus the Wilcoxon test."""
    return PairedComparison(bootstrap_mean(_differences(a, b), n_boot, seed, level), wilcoxon_signed_rank(a, b))


def mcnemar_table(correct_a: np.ndarray, correct_b: np.ndarray) -> np.ndarray:
    """2 x 2 counts [[both right, A right & B wrong], [A wrong & B right, both wrong]]."""
    a = np.asarray(correct_a, dtype=bool).ravel()
    b = np.asarray(correct_b, dtype=bool).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired arrays differ in length: {a.shape} vs {b.shape}")
    return np.array([[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]], dtype=np.int64)


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray, exact_below: int = 25) -> TestResult:
    """McNemar's test of paired correctness of runs A and B on the same images.

    Exact binomial when the discordant count b + c < ``exact_below``, else chi-square with
    continuity correction; effect = accuracy(A) - accuracy(B).
    """
    table = mcnemar_table(correct_a, correct_b)
    n = int(table.sum())
    b, c = int(table[0, 1]), int(table[1, 0])
    if n == 0:
        return TestResult("mcnemar-exact", NAN, NAN, NAN, 0)
    effect = (b - c) / n
    if b + c < exact_below:
        p = 1.0 if b + c == 0 else min(1.0, 2.0 * float(sps.binom.cdf(min(b, c), b + c, 0.5)))
        return TestResult("mcnemar-exact", float(min(b, c)), p, effect, n)
    chi2 = (abs(b - c) - 1) ** 2 / (b + c)
    return TestResult("mcnemar-chi2", float(chi2), float(sps.chi2.sf(chi2, 1)), effect, n, 1.0)
