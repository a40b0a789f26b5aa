"""Classification metrics of a run on one split, computed with scikit-learn.

All functions take integer labels ``y_true`` (N,) in ``[0, C)`` and class
probabilities ``probs`` (N, C) whose rows sum to 1.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn import metrics as skm
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.preprocessing import label_binarize

__all__ = [
    "ClassificationReport",
    "classification_report",
    "expected_calibration_error",
    "selection_score",
]


@dataclass
class ClassificationReport:
    """Headline metrics, per-class metrics and the confusion matrix of one split.

    ``overall`` maps metric name -> value (NaN where undefined, e.g. AUROC with
    a class absent); ``per_class`` maps metric name -> {class name: value};
    ``confusion`` is (C, C) counts, rows = true class, columns = predicted.
    """

    class_names: list[str]
    overall: dict[str, float]
    per_class: dict[str, dict[str, float]]
    confusion: np.ndarray = field(repr=False)

    def rows(self) -> list[tuple[str, str, float]]:
        """Long format ``(metric, class_name or '', value)`` for storage."""
        out = [(name, "", float(value)) for name, value in self.overall.items()]
        for name, by_class in self.per_class.items():
            out += [(name, cls, float(value)) for cls, value in by_class.items()]
        return out


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, n_bins: int = 15) -> float:
    """Top-label ECE of probabilities ``probs`` (N, C) against labels ``y_true`` (N,): the
    top-label confidence and correctness passed to :func:`retcore.stats.expected_calibration_error`."""
    from retcore.stats import expected_calibration_error as ece

    probs = np.asarray(probs, dtype=np.float64)
    if len(probs) == 0:
        return float("nan")
    return ece(probs.max(axis=1), probs.argmax(axis=1) == np.asarray(y_true), n_bins)


def _safe(fn, *args, **kwargs) -> float:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            return float(fn(*args, **kwargs))
    except ValueError:
        return float("nan")


def classification_report(
    y_true: np.ndarray, probs: np.ndarray, class_names: list[str]
) -> ClassificationReport:
    """Accuracy, balanced accuracy, macro precision/recall/F1, macro OvR AUROC and
    AUPR, Cohen's kappa, ECE, per-class precision/recall/F1/specificity/support
    and the confusion matrix."""
    y_true = np.asarray(y_true, dtype=int)
    probs = np.asarray(probs, dtype=np.float64)
    n_classes = len(class_names)
    labels = list(range(n_classes))
    y_pred = probs.argmax(axis=1)
    onehot = label_binarize(y_true, classes=labels) if n_classes > 2 else np.eye(2)[y_true]
    present = onehot.sum(axis=0) > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        precision, recall, f1, support = skm.precision_recall_fscore_support(
            y_true, y_pred, labels=labels, zero_division=0
        )
    confusion = skm.confusion_matrix(y_true, y_pred, labels=labels)
    total = confusion.sum()
    tn = total - confusion.sum(axis=0) - confusion.sum(axis=1) + np.diag(confusion)
    fp = confusion.sum(axis=0) - np.diag(confusion)
    with np.errstate(invalid="ignore", divide="ignore"):
        specificity = np.where(tn + fp > 0, tn / (tn + fp), np.nan)
    auroc = np.full(n_classes, np.nan)
    aupr = np.full(n_classes, np.nan)
    for c in labels:
        positives = onehot[:, c].sum()
        if 0 < positives < len(y_true):
            auroc[c] = _safe(skm.roc_auc_score, onehot[:, c], probs[:, c])
            aupr[c] = _safe(skm.average_precision_score, onehot[:, c], probs[:, c])
    overall = {
        "n": float(len(y_true)),
        "accuracy": _safe(skm.accuracy_score, y_true, y_pred),
        "balanced_accuracy": _safe(skm.balanced_accuracy_score, y_true, y_pred),
        "macro_precision": float(precision[present].mean()) if present.any() else float("nan"),
        "macro_recall": float(recall[present].mean()) if present.any() else float("nan"),
        "macro_f1": float(f1[present].mean()) if present.any() else float("nan"),
        "macro_auroc": float(np.nanmean(auroc)) if np.isfinite(auroc).any() else float("nan"),
        "macro_aupr": float(np.nanmean(aupr)) if np.isfinite(aupr).any() else float("nan"),
        "kappa": _safe(skm.cohen_kappa_score, y_true, y_pred, labels=labels),
        "ece": expected_calibration_error(y_true, probs),
    }
    per_class = {
        "precision": dict(zip(class_names, map(float, precision))),
        "recall": dict(zip(class_names, map(float, recall))),
        "f1": dict(zip(class_names, map(float, f1))),
        "specificity": dict(zip(class_names, map(float, specificity))),
        "auroc": dict(zip(class_names, map(float, auroc))),
        "support": dict(zip(class_names, map(float, support))),
    }
    return ClassificationReport(list(class_names), overall, per_class, confusion)


def selection_score(report: ClassificationReport) -> float:
    """RETFound's model-selection score: mean of macro F1, macro AUROC and kappa
    (NaN parts ignored)."""
    parts = [report.overall[k] for k in ("macro_f1", "macro_auroc", "kappa")]
    finite = [p for p in parts if np.isfinite(p)]
    return float(np.mean(finite)) if finite else float("nan")
