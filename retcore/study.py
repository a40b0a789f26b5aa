"""The shortcut study's numbers: per-arm metrics, intervals across seeds, paired tests across images.

Inputs are tidy per-image frames, one row per (seed, arm, test image), with
columns ``label``, ``correct`` (bool), ``marker_mass`` / ``marker_area`` (share
of the FOV's positive relevance / of the FOV's area on the planted marker; NaN
when the image carries no marker), ``center_score`` (thirds ``center`` zone
score), ``disc_score`` (anatomy ``optic_disc`` zone score), ``lesion_mass``
(relevance share on the ground-truth lesion mask), ``pointing_game`` and
``mass_accuracy`` (localisation against the lesion mask).

Across seeds: mean and a two-sided 95% Student-t interval,
``mean +/- t_{0.975, k-1} s / sqrt(k)`` for ``k`` seeds (NaN bounds for k = 1).
Across images (guided vs baseline on the same image and seed): Wilcoxon
signed-rank on the per-image marker share and centre score, McNemar (exact
binomial on the discordant pairs) on correctness.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as sps

from retcore.stats import mcnemar

__all__ = ["PROPORTIONS", "STUDY_METRICS", "arm_metrics", "paired_tests", "seed_summary"]

STUDY_METRICS = (
    "accuracy", "shortcut_class_accuracy", "accuracy_with_marker", "accuracy_without_marker",
    "marker_relevance_share", "marker_area_share", "marker_ratio", "center_score", "disc_score_shortcut_class",
    "lesion_relevance_share", "pointing_game", "mass_accuracy",
)
"""Metric names of ``arm_metrics`` (the ``metric`` column of ``study_results``)."""

PROPORTIONS = frozenset({
    "accuracy", "shortcut_class_accuracy", "accuracy_with_marker", "accuracy_without_marker",
    "marker_relevance_share", "marker_area_share", "lesion_relevance_share", "pointing_game", "mass_accuracy",
})
"""Metrics that are shares of images or of relevance mass: their seed intervals are clipped to [0, 1]."""


def _mean(x: pd.Series) -> tuple[float, int]:
    x = pd.to_numeric(x, errors="coerce").dropna()
    return (float(x.mean()) if len(x) else float("nan")), int(len(x))


def arm_metrics(frame: pd.DataFrame, shortcut_class: str) -> dict[str, tuple[float, int]]:
    """Metrics of one (arm, seed): name -> (value, number of images it averages).

    ``marker_ratio`` = marker_relevance_share / marker_area_share (1 = the marker
    gets relevance in proportion to its area; the baseline leaning on the
    shortcut shows as a ratio well above 1).
    """
    correct = frame["correct"].astype(float)
    has_marker = frame["marker_area"].fillna(0) > 0
    out: dict[str, tuple[float, int]] = {
        "accuracy": _mean(correct),
        "shortcut_class_accuracy": _mean(correct[frame["label"] == shortcut_class]),
        "accuracy_with_marker": _mean(correct[has_marker]),
        "accuracy_without_marker": _mean(correct[~has_marker]),
        "marker_relevance_share": _mean(frame.loc[has_marker, "marker_mass"]),
        "marker_area_share": _mean(frame.loc[has_marker, "marker_area"]),
        "center_score": _mean(frame["center_score"]),
        "disc_score_shortcut_class": _mean(frame.loc[frame["label"] == shortcut_class, "disc_score"]),
        "lesion_relevance_share": _mean(frame["lesion_mass"]),
        "pointing_game": _mean(frame["pointing_game"]),
        "mass_accuracy": _mean(frame["mass_accuracy"]),
    }
    share, n = out["marker_relevance_share"]
    area, _ = out["marker_area_share"]
    out["marker_ratio"] = (share / area if area and area > 0 else float("nan"), n)
    return out


def seed_summary(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and 95% t-interval across seeds per (arm, metric).

    With 2-3 seeds the t-interval is wide and can leave a proportion's range (an accuracy interval
    of [-0.20, 1.49]); for :data:`PROPORTIONS` it is clipped to [0, 1], the values it can take.

    ``results``: columns ``arm, seed, metric, value``. Returns columns
    ``metric, arm, mean, low, high, seeds``.
    """
    rows = []
    for (metric, arm), g in results.dropna(subset=["value"]).groupby(["metric", "arm"], sort=False):
        v = g["value"].to_numpy(float)
        k = len(v)
        mean = float(v.mean())
        if k > 1:
            half = float(sps.t.ppf(0.975, k - 1) * v.std(ddof=1) / math.sqrt(k))
            low, high = mean - half, mean + half
            if metric in PROPORTIONS:
                low, high = max(low, 0.0), min(high, 1.0)
        else:
            low = high = float("nan")
        rows.append({"metric": metric, "arm": arm, "mean": mean, "low": low, "high": high, "seeds": k})
    return pd.DataFrame(rows, columns=["metric", "arm", "mean", "low", "high", "seeds"])


def _mcnemar_exact_p(correct_a: np.ndarray, correct_b: np.ndarray) -> float:
    """Exact McNemar p-value (``retcore.stats.mcnemar`` forced to the binomial branch); 1 when no pair differs."""
    if not (correct_a != correct_b).any():
        return 1.0
    return float(mcnemar(correct_a, correct_b, exact_below=len(correct_a) + 1).p_value)


def paired_tests(per_image: pd.DataFrame, arm_a: str = "baseline", arm_b: str = "guided") -> pd.DataFrame:
    """Guided vs baseline on the same (seed, image): paired tests pooled over seeds.

    Returns rows ``test, quantity, n, mean_a, mean_b, mean_diff, statistic, p_value``:
    Wilcoxon signed-rank on ``marker_mass`` (images with a marker) and
    ``center_score``; McNemar (exact) on ``correct``.
    """
    key = ["seed", "image_id"]
    a = per_image[per_image["arm"] == arm_a]
    b = per_image[per_image["arm"] == arm_b]
    both = a.merge(b, on=key, how="inner", suffixes=("_a", "_b"))
    rows = []
    for quantity in ("marker_mass", "center_score"):
        pair = both[[f"{quantity}_a", f"{quantity}_b"]].apply(pd.to_numeric, errors="coerce").dropna()
        x, y = pair[f"{quantity}_a"].to_numpy(float), pair[f"{quantity}_b"].to_numpy(float)
        if len(x) and np.any(x != y):
            res = sps.wilcoxon(y, x)
            stat, p = float(res.statistic), float(res.pvalue)
        else:
            stat, p = float("nan"), float("nan")
        rows.append({"test": "wilcoxon", "quantity": quantity, "n": len(x),
                     "mean_a": float(x.mean()) if len(x) else float("nan"),
                     "mean_b": float(y.mean()) if len(y) else float("nan"),
                     "mean_diff": float((y - x).mean()) if len(x) else float("nan"), "statistic": stat, "p_value": p})
    ca, cb = both["correct_a"].astype(bool).to_numpy(), both["correct_b"].astype(bool).to_numpy()
    only_a, only_b = int((ca & ~cb).sum()), int((~ca & cb).sum())
    rows.append({"test": "mcnemar", "quantity": "correct", "n": len(ca),
                 "mean_a": float(ca.mean()) if len(ca) else float("nan"),
                 "mean_b": float(cb.mean()) if len(cb) else float("nan"),
                 "mean_diff": float(cb.mean() - ca.mean()) if len(ca) else float("nan"),
                 "statistic": float(min(only_a, only_b)),
                 "p_value": _mcnemar_exact_p(ca, cb)})
    return pd.DataFrame(rows)
