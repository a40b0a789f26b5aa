"""Classification statistics with intervals: confusion, per-class and macro metrics, ROC, calibration.

Labels are given as any hashable values (e.g. class names) together with ``labels``, the
class order; rows whose true or predicted label is not in ``labels`` (e.g. unlabelled
images) are dropped. From the (C, C) confusion matrix M (rows = true, columns =
predicted), N = sum M, per class c: TP = M[c, c], FN = row_c - TP, FP = col_c - TP,
TN = N - TP - FN - FP, and

- precision = TP / (TP + FP), recall (sensitivity) = TP / (TP + FN),
  specificity = TN / (TN + FP): proportions, with Wilson intervals;
- F1 = 2 TP / (2 TP + FP + FN): not a proportion of one count, so its interval is bootstrap;
- accuracy = trace M / N; balanced accuracy = mean recall over classes present in the
  true labels; macro precision / recall / F1 = their mean over present classes (precision
  of a never-predicted class counts as 0, as scikit-learn's ``zero_division=0`` and
  ``retcore.metrics`` do);
- Cohen's kappa = (p_o - p_e) / (1 - p_e), p_o = accuracy, p_e = sum_c row_c col_c / N^2.

Bootstrap of confusion-matrix metrics: resampling N rows with replacement is exactly
drawing the C^2 cell counts from Multinomial(N, M / N), so B resamples cost O(B C^2),
independent of N (after the O(N) count); percentile intervals.

ROC: one-vs-rest, class c positive, scored by its probability (``sklearn.metrics``); AUROC
is the Mann-Whitney probability P(score_pos > score_neg) + 0.5 P(tie); its optional
bootstrap recomputes within-resample mid-ranks (O(B N) per class):
AUROC = (sum of positive ranks - n1 (n1 + 1) / 2) / (n1 n0).

Calibration (top label): confidences in ``n_bins`` equal-width bins on [0, 1] (bin =
min(floor(conf * n_bins), n_bins - 1), as ``retcore.metrics``); per bin the mean
confidence, the accuracy (with Wilson interval) and the count;
ECE = sum_b (n_b / N) |acc_b - conf_b|.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from retcore.stats.intervals import (
    N_BOOT,
    Estimate,
    Seed,
    SortedRanks,
    bootstrap,
    percentile_interval,
    resample_counts,
    rng_from,
    weighted_midranks,
    wilson_bounds,
)

__all__ = [
    "OVERALL_METRICS",
    "auroc_table",
    "calibration_error",
    "cohen_kappa",
    "confusion_matrix",
    "confusion_metrics",
    "confusion_table",
    "encode_labels",
    "expected_calibration_error",
    "overall_metrics",
    "per_class_metrics",
    "reliability_curve",
    "roc_curves",
]

OVERALL_METRICS: tuple[str, ...] = (
    "accuracy", "balanced_accuracy", "macro_precision", "macro_recall", "macro_f1", "kappa",
)


def encode_labels(y: Sequence, labels: Sequence) -> np.ndarray:
    """Integer codes (N,) of ``y`` in the order of ``labels``; -1 for values not in ``labels``."""
    values = y.to_numpy(object) if isinstance(y, pd.Series) else np.asarray(y, dtype=object).ravel()
    index = pd.Index(list(labels))
    if not index.is_unique:
        raise ValueError(f"labels must be unique, got {list(labels)}")
    return index.get_indexer(values).astype(np.intp)


def _codes(y_true: Sequence, y_pred: Sequence, labels: Sequence) -> tuple[np.ndarray, np.ndarray]:
    t, p = encode_labels(y_true, labels), encode_labels(y_pred, labels)
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {t.shape} vs {p.shape}")
    keep = (t >= 0) & (p >= 0)
    return t[keep], p[keep]


def confusion_matrix(y_true: Sequence, y_pred: Sequence, labels: Sequence,
                     normalize: bool = False) -> np.ndarray:
    """(C, C) confusion matrix, rows = true class, columns = predicted, in ``labels`` order.

    Counts (int64), or with ``normalize=True`` row shares (each row sums to 1; NaN rows
    for classes with no true samples).
    """
    t, p = _codes(y_true, y_pred, labels)
    c = len(labels)
    counts = np.bincount(t * c + p, minlength=c * c).reshape(c, c)
    if not normalize:
        return counts
    rows = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(rows > 0, counts / rows, np.nan)


def confusion_table(y_true: Sequence, y_pred: Sequence, labels: Sequence) -> pd.DataFrame:
    """Tidy confusion matrix: columns true, pred, count, row_share (C^2 rows, labels order)."""
    counts = confusion_matrix(y_true, y_pred, labels)
    shares = confusion_matrix(y_true, y_pred, labels, normalize=True)
    c = len(labels)
    names = np.asarray(list(labels), dtype=object)
    return pd.DataFrame({
        "true": np.repeat(names, c), "pred": np.tile(names, c),
        "count": counts.ravel(), "row_share": shares.ravel(),
    })


def confusion_metrics(m: np.ndarray) -> dict[str, np.ndarray]:
    """Metrics of one (C, C) or a stack (B, C, C) of confusion matrices (formulas in module doc).

    Returns per-class arrays (..., C) 'tp', 'fp', 'fn', 'tn', 'support', 'precision',
    'recall', 'specificity', 'f1' (NaN where the denominator is 0) and overall arrays
    (...) named in ``OVERALL_METRICS``.
    """
    m = np.asarray(m, dtype=np.float64)
    tp = np.diagonal(m, axis1=-2, axis2=-1)
    support = m.sum(axis=-1)
    predicted = m.sum(axis=-2)
    n = support.sum(axis=-1)
    fn, fp = support - tp, predicted - tp
    tn = n[..., None] - tp - fn - fp
    present = support > 0
    n_present = present.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / predicted, np.nan)
        recall = np.where(present, tp / support, np.nan)
        specificity = np.where(tn + fp > 0, tn / (tn + fp), np.nan)
        f1 = np.where(support + predicted > 0, 2 * tp / (support + predicted), np.nan)

        def macro(values: np.ndarray) -> np.ndarray:
            filled = np.where(present, np.nan_to_num(values, nan=0.0), 0.0)
            return np.where(n_present > 0, filled.sum(axis=-1) / n_present, np.nan)

        accuracy = np.where(n > 0, tp.sum(axis=-1) / n, np.nan)
        expected = (support * predicted).sum(axis=-1) / n**2
        kappa = np.where((n > 0) & (expected < 1), (accuracy - expected) / (1 - expected), np.nan)
        return {
            "tp": tp, "fp": fp, "fn": fn, "tn": tn, "support": support,
            "precision": precision, "recall": recall, "specificity": specificity, "f1": f1,
            "accuracy": accuracy, "balanced_accuracy": macro(recall), "macro_precision": macro(precision),
            "macro_recall": macro(recall), "macro_f1": macro(f1), "kappa": kappa,
        }


def _boot_confusions(m: np.ndarray, n_boot: int, seed: Seed) -> np.ndarray:
    """(B, C, C) bootstrap confusion matrices: cell counts ~ Multinomial(N, M / N)."""
    n = int(m.sum())
    c = m.shape[0]
    if n == 0 or n_boot <= 0:
        return np.empty((0, c, c))
    return rng_from(seed).multinomial(n, m.ravel() / n, size=n_boot).reshape(n_boot, c, c)


def overall_metrics(y_true: Sequence, y_pred: Sequence, labels: Sequence, n_boot: int = N_BOOT,
                    seed: Seed = 0, level: float = 0.95) -> pd.DataFrame:
    """Accuracy, balanced accuracy, macro precision / recall / F1 and kappa with bootstrap intervals.

    Columns: metric, value, low, high, n (rows used). Cost O(N + B C^2).
    """
    m = confusion_matrix(y_true, y_pred, labels)
    point = confusion_metrics(m)
    boot = confusion_metrics(_boot_confusions(m, n_boot, seed))
    rows = []
    for name in OVERALL_METRICS:
        low, high = percentile_interval(boot[name], level)
        rows.append({"metric": name, "value": float(point[name]), "low": low, "high": high, "n": int(m.sum())})
    return pd.DataFrame(rows, columns=["metric", "value", "low", "high", "n"])


def cohen_kappa(y_true: Sequence, y_pred: Sequence, labels: Sequence, n_boot: int = N_BOOT,
                seed: Seed = 0, level: float = 0.95) -> Estimate:
    """Cohen's kappa of predictions against true labels, with a bootstrap interval."""
    m = confusion_matrix(y_true, y_pred, labels)
    low, high = percentile_interval(confusion_metrics(_boot_confusions(m, n_boot, seed))["kappa"], level)
    return Estimate(float(confusion_metrics(m)["kappa"]), low, high)


def per_class_metrics(y_true: Sequence, y_pred: Sequence, labels: Sequence, n_boot: int = N_BOOT,
                      seed: Seed = 0, level: float = 0.95) -> pd.DataFrame:
    """One row per class: counts and precision / recall / specificity / F1 with intervals.

    Columns: class, support, tp, fp, fn, tn, then for each of precision, recall,
    specificity (Wilson) and f1 (bootstrap) the value and ``<name>_low`` / ``<name>_high``.
    A class with no true samples has NaN recall; a never-predicted class NaN precision.
    """
    m = confusion_matrix(y_true, y_pred, labels)
    point = confusion_metrics(m)
    out = pd.DataFrame({"class": list(labels)})
    for name in ("support", "tp", "fp", "fn", "tn"):
        out[name] = point[name].astype(np.int64)
    for name, k, total in (("precision", point["tp"], point["tp"] + point["fp"]),
                           ("recall", point["tp"], point["support"]),
                           ("specificity", point["tn"], point["tn"] + point["fp"])):
        out[name], out[f"{name}_low"], out[f"{name}_high"] = wilson_bounds(k, total, level)
    low, high = percentile_interval(confusion_metrics(_boot_confusions(m, n_boot, seed))["f1"], level)
    out["f1"], out["f1_low"], out["f1_high"] = point["f1"], low, high
    return out


def _one_vs_rest(y_true: Sequence, scores: np.ndarray, labels: Sequence) -> tuple[np.ndarray, np.ndarray]:
    t = encode_labels(y_true, labels)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape != (len(t), len(labels)):
        raise ValueError(f"scores must be (N, C) = ({len(t)}, {len(labels)}), got {scores.shape}")
    keep = t >= 0
    return t[keep], scores[keep]


def roc_curves(y_true: Sequence, scores: np.ndarray, labels: Sequence) -> pd.DataFrame:
    """One-vs-rest ROC curves: columns class, fpr, tpr, threshold (sklearn ``roc_curve``).

    ``scores`` (N, C) are class probabilities in ``labels`` order. Classes without both
    positives and negatives are left out.
    """
    t, scores = _one_vs_rest(y_true, scores, labels)
    frames = []
    for c, name in enumerate(labels):
        positive = t == c
        if 0 < positive.sum() < len(t):
            fpr, tpr, thr = skm.roc_curve(positive, scores[:, c], drop_intermediate=True)
            frames.append(pd.DataFrame({"class": name, "fpr": fpr, "tpr": tpr, "threshold": thr}))
    if not frames:
        return pd.DataFrame(columns=["class", "fpr", "tpr", "threshold"])
    return pd.concat(frames, ignore_index=True)


def _auroc_w(w: np.ndarray, ranks: SortedRanks, positive: np.ndarray) -> np.ndarray:
    """AUROC inside each resample of counts ``w`` (b, N) from within-resample mid-ranks."""
    r = weighted_midranks(w, ranks)
    n1 = w[:, positive].sum(axis=1)
    n0 = w.sum(axis=1) - n1
    rank_sum = np.einsum("ij,ij->i", w[:, positive], r[:, positive])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n1 > 0) & (n0 > 0), (rank_sum - n1 * (n1 + 1) / 2) / (n1 * n0), np.nan)


def auroc_table(y_true: Sequence, scores: np.ndarray, labels: Sequence, n_boot: int = 0,
                seed: Seed = 0, level: float = 0.95) -> pd.DataFrame:
    """One-vs-rest AUROC per class and their macro mean (row class='macro').

    Columns: class, auroc, low, high, n_pos, n_neg (nullable ints, NA on the macro row).
    NaN for a class without positives or negatives; macro = mean over defined classes. Intervals only when ``n_boot > 0``
    (O(B N) per class; percentile bootstrap of rows, the macro mean per resample).
    """
    t, scores = _one_vs_rest(y_true, scores, labels)
    n, c_count = len(t), len(labels)
    auroc = np.full(c_count, np.nan)
    boots = np.full((max(n_boot, 0), c_count), np.nan)
    boot_seed = int(rng_from(seed).integers(2**63))  # the same resamples for every class
    for c in range(c_count):
        positive = t == c
        if not 0 < positive.sum() < n:
            continue
        auroc[c] = skm.roc_auc_score(positive, scores[:, c])
        if n_boot > 0:
            ranks = SortedRanks.of(scores[:, c])
            parts = [_auroc_w(w.astype(np.float64), ranks, positive)
                     for w in resample_counts(n, n_boot, np.random.default_rng(boot_seed))]
            boots[:, c] = np.concatenate(parts)
    defined = np.isfinite(auroc)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        macro = float(auroc[defined].mean()) if defined.any() else float("nan")
        macro_boot = np.nanmean(boots[:, defined], axis=1) if defined.any() else np.full(len(boots), np.nan)
    low, high = percentile_interval(boots, level) if n_boot > 0 else (np.full(c_count, np.nan),) * 2
    mlow, mhigh = percentile_interval(macro_boot, level) if n_boot > 0 else (float("nan"),) * 2
    n_pos = np.bincount(t, minlength=c_count)
    out = pd.DataFrame({"class": pd.Series(list(labels), dtype=object), "auroc": auroc, "low": low,
                        "high": high, "n_pos": pd.array(n_pos, dtype="Int64"),
                        "n_neg": pd.array(n - n_pos, dtype="Int64")})
    out.loc[len(out)] = {"class": "macro", "auroc": macro, "low": mlow, "high": mhigh, "n_pos": pd.NA,
                         "n_neg": pd.NA}
    return out


def _calibration_inputs(confidence: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    conf = np.asarray(confidence, dtype=np.float64).ravel()
    hit = np.asarray(correct, dtype=np.float64).ravel()
    if conf.shape != hit.shape:
        raise ValueError(f"confidence and correct differ in length: {conf.shape} vs {hit.shape}")
    keep = np.isfinite(conf) & np.isfinite(hit)
    return conf[keep], hit[keep]


def reliability_curve(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15,
                      level: float = 0.95) -> pd.DataFrame:
    """Reliability diagram data: one row per equal-width confidence bin (all bins, empty ones NaN).

    Columns: bin, bin_low, bin_high, mean_confidence, accuracy, accuracy_low,
    accuracy_high (Wilson), count. ``confidence`` (N,) top-label probability, ``correct``
    (N,) bool.
    """
    conf, hit = _calibration_inputs(confidence, correct)
    bins = np.minimum((conf * n_bins).astype(np.intp), n_bins - 1).clip(0)
    count = np.bincount(bins, minlength=n_bins)
    hits = np.bincount(bins, weights=hit, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.where(count > 0, np.bincount(bins, weights=conf, minlength=n_bins) / count, np.nan)
    acc, low, high = wilson_bounds(hits, count, level)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return pd.DataFrame({"bin": np.arange(n_bins), "bin_low": edges[:-1], "bin_high": edges[1:],
                         "mean_confidence": mean_conf, "accuracy": acc, "accuracy_low": low,
                         "accuracy_high": high, "count": count})


def _ece_gaps(confidence: np.ndarray, correct: np.ndarray, n_bins: int) -> np.ndarray:
    """(N, n_bins): each image's (correct - confidence) in its equal-width confidence bin, 0 elsewhere."""
    conf, hit = _calibration_inputs(confidence, correct)
    bins = np.minimum((conf * n_bins).astype(np.intp), n_bins - 1).clip(0)
    gap = np.zeros((len(conf), n_bins))
    gap[np.arange(len(conf)), bins] = hit - conf
    return gap


def _weighted_ece(w: np.ndarray, gap: np.ndarray) -> np.ndarray:
    """ECE of each row of image weights ``w`` (b, N): sum_b |sum_i w_i gap_ib| / sum_i w_i."""
    return np.abs(w @ gap).sum(axis=1) / w.sum(axis=1)


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> float:
    r"""Top-label ECE over equal-width confidence bins; NaN when empty.

    .. math:: \mathrm{ECE} = \sum_b \frac{n_b}{N}\,|\mathrm{acc}_b - \mathrm{conf}_b|
              = \frac{1}{N}\sum_b \Big|\sum_{i \in b} (\mathrm{correct}_i - \mathrm{conf}_i)\Big|

    ``confidence`` (N,) top-label probability, ``correct`` (N,) bool; non-finite rows are dropped.
    """
    gap = _ece_gaps(confidence, correct, n_bins)
    return float(_weighted_ece(np.ones((1, len(gap))), gap)[0]) if len(gap) else float("nan")


def calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15, n_boot: int = N_BOOT,
                      seed: Seed = 0, level: float = 0.95) -> Estimate:
    """:func:`expected_calibration_error` with a percentile-bootstrap interval over images.

    Each resample reweights the images (``bootstrap``) and recomputes the binned gaps, so
    the cost is O(n_boot x N x n_bins). Binned ECE is biased upwards, so for a well
    calibrated model the interval can lie above the point value.
    """
    return bootstrap(_weighted_ece, _ece_gaps(confidence, correct, n_bins), n_boot=n_boot, seed=seed, level=level)