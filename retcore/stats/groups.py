"""Group comparisons of a per-image value (zone score, confidence) and of accuracy.

Two groups (e.g. correct vs incorrect): Mann-Whitney U (``scipy.stats.mannwhitneyu``,
two-sided; exact for small samples without ties, normal approximation with tie
correction otherwise). U_a counts pairs (a_i, b_j) with a_i > b_j plus half the ties;
effect = rank-biserial correlation r = 2 U_a / (n_a n_b) - 1 in [-1, 1]
(= P(a > b) - P(a < b); positive when group a tends to be larger).

Several groups (classes, quality strata): Kruskal-Wallis H (``scipy.stats.kruskal``,
tie-corrected, chi-square with k - 1 df); effect = epsilon-squared
e^2 = H / (n - 1) (= H (n + 1) / (n^2 - 1)), 0 = no separation, 1 = complete.
Follow-ups: Mann-Whitney for every pair of groups, p-values Holm-adjusted.

Holm step-down adjustment of m p-values sorted p_(1) <= ... <= p_(m):
p_adj_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)); it controls the family-wise error
rate and is uniformly more powerful than Bonferroni. NaN p-values are left out of m.

Accuracy across strata: chi-square test of independence (Pearson, no continuity
correction) on the k x 2 table of correct / incorrect counts per stratum
(``scipy.stats.chi2_contingency``), df = k - 1; effect = Cramer's V =
sqrt(chi2 / (n (min(k, 2) - 1))); per-stratum accuracy with Wilson intervals.

All tests are O(n log n). Results are ``TestResult`` (NaN fields when undefined: a group
empty, fewer than two groups, all values identical for Kruskal-Wallis).
"""
from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
from scipy import stats as sps

from retcore.stats.intervals import wilson_bounds

__all__ = [
    "GroupComparison",
    "StratumAccuracy",
    "TestResult",
    "accuracy_by_stratum",
    "compare_groups",
    "compare_outcomes",
    "group_summary",
    "holm",
    "kruskal_wallis",
    "mann_whitney",
    "pairwise_mann_whitney",
]

NAN = float("nan")


@dataclass(frozen=True)
class TestResult:
    """Outcome of a hypothesis test.

    test: name ('mann-whitney', 'kruskal-wallis', 'chi-square', 'wilcoxon',
    'mcnemar-exact', 'mcnemar-chi2'); statistic: the test statistic (U, H, chi2, ...);
    p_value: two-sided; effect: rank-biserial r (Mann-Whitney, Wilcoxon), epsilon^2
    (Kruskal-Wallis), Cramer's V (chi-square) or accuracy difference (McNemar); n:
    observations (pairs for paired tests) used; dof: degrees of freedom (NaN if none).
    """

    __test__: ClassVar[bool] = False  # not a pytest test class

    test: str
    statistic: float
    p_value: float
    effect: float
    n: int
    dof: float = NAN


def _clean(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64).ravel()
    return v[np.isfinite(v)]


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values, same shape and order as the input (NaN stays NaN)."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    flat = p.ravel()
    finite = np.flatnonzero(np.isfinite(flat))
    m = len(finite)
    if m == 0:
        return out
    order = finite[np.argsort(flat[finite], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * flat[order])
    adjusted = out.ravel()
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted.reshape(p.shape)


def mann_whitney(a: np.ndarray, b: np.ndarray) -> TestResult:
    """Two-sided Mann-Whitney U of ``a`` vs ``b`` (NaN dropped); effect = rank-biserial r."""
    a, b = _clean(a), _clean(b)
    n = len(a) + len(b)
    if len(a) == 0 or len(b) == 0:
        return TestResult("mann-whitney", NAN, NAN, NAN, n)
    result = sps.mannwhitneyu(a, b, alternative="two-sided")
    u = float(result.statistic)
    return TestResult("mann-whitney", u, float(result.pvalue), 2.0 * u / (len(a) * len(b)) - 1.0, n)


def kruskal_wallis(groups: Mapping[str, np.ndarray] | Sequence[np.ndarray]) -> TestResult:
    """Kruskal-Wallis H across groups (NaN dropped, empty groups ignored); effect = epsilon^2."""
    values = groups.values() if isinstance(groups, Mapping) else groups
    samples = [s for s in map(_clean, values) if len(s)]
    n = sum(len(s) for s in samples)
    if len(samples) < 2:
        return TestResult("kruskal-wallis", NAN, NAN, NAN, n)
    if np.ptp(np.concatenate(samples)) == 0:  # all values identical: H undefined
        return TestResult("kruskal-wallis", NAN, NAN, NAN, n, len(samples) - 1)
    result = sps.kruskal(*samples)
    h = float(result.statistic)
    effect = h / (n - 1) if n > 1 and math.isfinite(h) else NAN
    return TestResult("kruskal-wallis", h, float(result.pvalue), effect, n, len(samples) - 1)


def pairwise_mann_whitney(groups: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Mann-Whitney for every pair of groups, in the mapping's order.

    Columns: group_a, group_b, n_a, n_b, u, p_value, p_holm (Holm over all pairs),
    effect (rank-biserial, positive when group_a tends to be larger).
    """
    rows = []
    for (name_a, a), (name_b, b) in itertools.combinations(groups.items(), 2):
        a, b = _clean(a), _clean(b)
        res = mann_whitney(a, b)
        rows.append({"group_a": name_a, "group_b": name_b, "n_a": len(a), "n_b": len(b), "u": res.statistic,
                     "p_value": res.p_value, "effect": res.effect})
    out = pd.DataFrame(rows, columns=["group_a", "group_b", "n_a", "n_b", "u", "p_value", "effect"])
    out.insert(6, "p_holm", holm(out["p_value"].to_numpy(np.float64)))
    return out


def _split(df: pd.DataFrame, value: str, by: str) -> dict[str, np.ndarray]:
    return {str(key): part[value].to_numpy(np.float64)
            for key, part in df.groupby(by, sort=True, dropna=True)}


def group_summary(df: pd.DataFrame, value: str, by: str) -> pd.DataFrame:
    """Per group of ``by``: n, mean, sd, median, q1, q3 of ``value`` (NaN dropped)."""
    rows = []
    for name, v in _split(df, value, by).items():
        v = _clean(v)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            q1, med, q3 = np.quantile(v, [0.25, 0.5, 0.75]) if len(v) else (NAN, NAN, NAN)
            rows.append({"group": name, "n": len(v), "mean": float(np.mean(v)) if len(v) else NAN,
                         "sd": float(np.std(v, ddof=1)) if len(v) > 1 else NAN,
                         "median": float(med), "q1": float(q1), "q3": float(q3)})
    return pd.DataFrame(rows, columns=["group", "n", "mean", "sd", "median", "q1", "q3"])


@dataclass(frozen=True)
class GroupComparison:
    """Omnibus Kruskal-Wallis, pairwise Mann-Whitney (Holm) and per-group summary tables."""

    omnibus: TestResult
    pairwise: pd.DataFrame
    summary: pd.DataFrame


def compare_groups(df: pd.DataFrame, value: str, by: str) -> GroupComparison:
    """Compare ``value`` across the groups of column ``by`` (classes, quality strata, ...)."""
    groups = _split(df, value, by)
    return GroupComparison(kruskal_wallis(groups), pairwise_mann_whitney(groups), group_summary(df, value, by))


def compare_outcomes(df: pd.DataFrame, value: str, correct: str = "correct") -> TestResult:
    """Mann-Whitney of ``value`` for correct vs incorrect predictions (effect > 0: higher when correct)."""
    known = df[df[correct].notna()]
    hit = known[correct].astype(bool).to_numpy()
    v = known[value].to_numpy(np.float64)
    return mann_whitney(v[hit], v[~hit])


@dataclass(frozen=True)
class StratumAccuracy:
    """Per-stratum accuracy table (stratum, n, n_correct, accuracy, low, high) and the chi-square test."""

    table: pd.DataFrame
    test: TestResult


def accuracy_by_stratum(df: pd.DataFrame, stratum: str, correct: str = "correct",
                        level: float = 0.95) -> StratumAccuracy:
    """Accuracy per value of ``stratum`` with Wilson intervals, and whether it depends on the stratum."""
    known = df[df[correct].notna() & df[stratum].notna()]
    counts = (known.assign(_hit=known[correct].astype(bool))
              .groupby(stratum, sort=True)["_hit"].agg(["size", "sum"]))
    n = counts["size"].to_numpy(np.int64)
    k = counts["sum"].to_numpy(np.int64)
    acc, low, high = wilson_bounds(k, n, level)
    table = pd.DataFrame({"stratum": counts.index.astype(str), "n": n, "n_correct": k,
                          "accuracy": acc, "low": low, "high": high})
    contingency = np.column_stack([k, n - k])
    contingency = contingency[:, contingency.sum(axis=0) > 0]
    total = int(n.sum())
    if contingency.shape[0] < 2 or contingency.shape[1] < 2:
        return StratumAccuracy(table, TestResult("chi-square", NAN, NAN, NAN, total, NAN))
    chi2, p, dof, _ = sps.chi2_contingency(contingency, correction=False)
    effect = math.sqrt(chi2 / (total * (min(contingency.shape) - 1)))
    return StratumAccuracy(table, TestResult("chi-square", float(chi2), float(p), effect, total, float(dof)))
