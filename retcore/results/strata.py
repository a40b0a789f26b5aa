"""Strata of a run's images — eye, quality grade, quality-metric bins — and accuracy across them.

A quality metric is cut into equal-count bins of its rank (``quantile_bins``: ties are
split by order, so every bin has n/k images); ``quality_levels`` maps it to the good /
usable / poor levels of ``retcore.quality``. ``accuracy_strata`` is the table of
``retcore export`` (eye, quality grade and tertiles of every quality metric, a
chi-square test per stratifier); the dashboard's Image quality page uses
:func:`strata` with its own choice of metric and bins.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from retcore.results.executor import Source, frame, tables

__all__ = ["BETTER", "TERTILES", "StrataTable", "accuracy_strata", "quantile_bins", "reference_stratum",
           "split_quality", "strata"]

#: Names of the three bins ``accuracy_strata`` cuts each quality metric into.
TERTILES = ("low", "mid", "high")
#: Levels of the quality grade, best first.
LEVELS = ("good", "usable", "poor")
#: Which end of each quality metric is the better photo (the default reference stratum).
BETTER = {"blur": "high", "glare": "low", "illumination_mean": "middle", "illumination_contrast": "high",
          "off_centre": "low", "grade": "low"}


def quantile_bins(values: pd.Series, k: int, names: Sequence[str] | None = None) -> pd.Series:
    """Equal-count bins of ``values`` (no NaN) by rank: ``names[i]`` for bin i, else 'Q{i+1} [min, max]'."""
    codes = pd.qcut(values.rank(method="first"), q=k, labels=False, duplicates="drop")
    if names is not None:
        return codes.map(dict(enumerate(names)))
    edges = values.groupby(codes).agg(["min", "max"])
    return codes.map({i: f"Q{i + 1} [{row['min']:.3g}, {row['max']:.3g}]" for i, row in edges.iterrows()})


def reference_stratum(metric: str, order: list[str]) -> str | None:
    """The best-quality stratum of ``order`` (labels: 'good'; quantile bins: by ``BETTER``)."""
    if not order:
        return None
    if "good" in order:
        return "good"
    side = BETTER.get(metric, "low")
    return order[-1] if side == "high" else order[len(order) // 2] if side == "middle" else order[0]


def strata(data: pd.DataFrame, metric: str, mode: str, k: int = 4) -> tuple[pd.Series, list[str]]:
    """Stratum of each row of ``data``: quantile bins of column ``metric`` (``mode='quantile'``) or its
    quality level (``mode='label'``: good / usable / poor from ``retcore.quality`` thresholds;
    metric 'grade' = column ``quality_grade``). Returns (stratum per row, strata in display order)."""
    from retcore.quality import metric_levels

    if metric == "grade":
        s = data["quality_grade"].astype("string")
        return s, [g for g in LEVELS if g in set(s.dropna())]
    if mode == "quantile":
        s = quantile_bins(data[metric].astype(float), k)
        return s, sorted(s.dropna().unique(), key=lambda v: int(v.split()[0][1:]))
    levels = [metric_levels({metric: v}).get(metric) if pd.notna(v) else None for v in data[metric]]
    s = pd.Series(levels, index=data.index, dtype="string")
    return s, [g for g in LEVELS if g in set(s.dropna())]


def split_quality(q: Source, run: str, split: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Quality of ``run``'s ``split`` images: (long image_id, metric, value from ``image_quality``;
    image_id, quality_grade from ``landmarks``) — empty frames without those tables."""
    have = tables(q)
    metrics = frame(q, "SELECT q.image_id, q.metric, q.value FROM image_quality q JOIN predictions p "
                       "ON p.image_id = q.image_id AND p.run_id = ? AND p.split = ?",
                    (run, split)) if "image_quality" in have else pd.DataFrame()
    grades = frame(q, "SELECT l.image_id, l.quality_grade FROM landmarks l JOIN predictions p "
                      "ON p.image_id = l.image_id AND p.run_id = ? AND p.split = ?",
                   (run, split)) if "landmarks" in have else pd.DataFrame()
    return metrics, grades


@dataclass(frozen=True)
class StrataTable:
    """Accuracy per stratum: ``table`` (``retcore.stats.accuracy_by_stratum`` rows plus stratifier),
    ``tests`` (stratifier, strata, statistic (χ²), p_value, effect (Cramér's V)); empty when no
    stratifier has two strata. ``has_quality``: quality was measured for the split."""

    table: pd.DataFrame
    tests: pd.DataFrame
    has_quality: bool


def accuracy_strata(q: Source, run: str, split: str, predictions: pd.DataFrame, level: float = 0.95) -> StrataTable:
    """Accuracy across eye, quality grade and tertiles (``TERTILES``) of every quality metric with
    at least three distinct values; ``predictions``: the split's image_id, correct, eye
    (``retcore.results.predictions.split_predictions``)."""
    from retcore import stats

    metrics, grades = split_quality(q, run, split)
    data = predictions[["image_id", "correct", "eye"]].copy()
    if not grades.empty:
        data = data.merge(grades.rename(columns={"quality_grade": "quality grade"}), on="image_id", how="left")
    stratifiers = [c for c in ("eye", "quality grade") if c in data and data[c].notna().any()]
    if not metrics.empty:
        wide = metrics.pivot_table(index="image_id", columns="metric", values="value")
        for metric in sorted(wide.columns):
            values = wide[metric].dropna()
            if values.nunique() >= 3:
                bins = quantile_bins(values, len(TERTILES), TERTILES)
                data = data.merge(bins.rename(metric), left_on="image_id", right_index=True, how="left")
                stratifiers.append(metric)
    parts, tests = [], []
    for name in stratifiers:
        result = stats.accuracy_by_stratum(data, name, level=level)
        if len(result.table) < 2:
            continue
        parts.append(result.table.assign(stratifier=name))
        tests.append({"stratifier": name, "strata": len(result.table), "statistic": result.test.statistic,
                      "p_value": result.test.p_value, "effect": result.test.effect})
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    return StrataTable(table, pd.DataFrame(tests, columns=["stratifier", "strata", "statistic", "p_value", "effect"]),
                       has_quality=not metrics.empty or "quality grade" in data)
