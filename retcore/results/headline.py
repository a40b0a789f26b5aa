"""The classification report of one run and split: headline metrics with intervals, per-class
metrics, AUROC, confusion, reliability, ROC — one computation for the dashboard and ``retcore export``.

Computed from the stored predictions (labelled images, image-id order):

- accuracy with a Wilson interval; balanced accuracy, macro F1 and Cohen's κ with a
  bootstrap of the confusion matrix (``n_boot`` resamples);
- one-vs-rest AUROC per class and macro, and the top-label ECE over ``ECE_BINS``
  equal-width bins (``retcore.stats.calibration_error``), with a bootstrap over images
  (``n_boot`` resamples, or fewer on large splits when ``boot_cells`` is given, see
  :func:`boot_size`);
- precision / recall / specificity (Wilson) and F1 (bootstrap) per class;
- reliability bins (``RELIABILITY_BINS``, Wilson per bin) and, on request, ROC curves.

``stale`` flags a stored accuracy (``metrics`` table) that differs from the recomputed one
by more than ``STORED_TOLERANCE`` (predictions rewritten after the metrics).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from retcore.results import summaries
from retcore.results.executor import Source
from retcore.results.predictions import confusion, split_predictions, stored_metrics

__all__ = ["BOOT_CELLS", "ECE_BINS", "HEADLINE", "RELIABILITY_BINS", "REPORT", "REPORT_PARTS", "STORED_SETTINGS",
           "STORED_TOLERANCE", "Classification", "boot_size", "classification", "compute", "report_params",
           "report_parts"]

#: Equal-width confidence bins of the ECE.
ECE_BINS = 15
#: Equal-width confidence bins of the reliability diagram.
RELIABILITY_BINS = 10
#: Largest |stored - recomputed| accuracy that is not reported as stale.
STORED_TOLERANCE = 1e-6
#: Budget of rows x resamples for one O(B N) bootstrap (keeps a dashboard page under ~2 s on 2 cores).
BOOT_CELLS = 5_000_000

#: Name of the classification report in ``split_reports``, and the tables stored.
REPORT = "classification"
REPORT_PARTS = ("headline", "per_class", "auroc", "reliability")
#: Settings of the report jobs store (the dashboard's: fewer image resamples on large splits).
STORED_SETTINGS = {"n_boot": 1000, "seed": 0, "level": 0.95, "boot_cells": BOOT_CELLS}

#: Headline metrics in display order: (key, name).
HEADLINE = (("accuracy", "Accuracy"), ("balanced_accuracy", "Balanced accuracy"), ("macro_f1", "Macro F1"),
            ("macro_auroc", "Macro AUROC (one-vs-rest)"), ("kappa", "Cohen's κ"), ("ece", f"ECE ({ECE_BINS} bins)"))


def boot_size(n: int, full: int = 1000, floor: int = 100, cells: int = BOOT_CELLS) -> int:
    """Bootstrap resamples for ``n`` rows: ``full`` while ``full`` x n fits in ``cells`` (up to 5,000
    rows by default), then fewer so that B x n stays within ``cells``, never below ``floor``."""
    if n <= 0:
        return 0
    return int(max(min(floor, full), min(full, cells // n)))


@dataclass(frozen=True)
class Classification:
    """The classification report of a run's split (see the module docstring).

    ``headline``: metric, value, low, high, interval ('Wilson' | 'bootstrap'), n — the rows
    of ``HEADLINE``; ``per_class``: ``retcore.stats.per_class_metrics``; ``auroc``:
    ``retcore.stats.auroc_table`` (empty when the probabilities do not match the classes);
    ``confusion``: true_label, pred_label, count; ``reliability``:
    ``retcore.stats.reliability_curve``; ``roc``: ``retcore.stats.roc_curves`` or None.
    ``n_boot`` resamples for the confusion-matrix intervals, ``n_boot_images`` for AUROC and ECE.
    """

    run: str
    split: str
    classes: list[str]
    n: int
    headline: pd.DataFrame
    per_class: pd.DataFrame
    auroc: pd.DataFrame
    confusion: pd.DataFrame
    reliability: pd.DataFrame
    roc: pd.DataFrame | None
    n_boot: int
    n_boot_images: int
    stored_accuracy: float | None

    @property
    def stale(self) -> bool:
        """True when the stored accuracy differs from the recomputed one (rerun ``retcore predict``)."""
        if self.stored_accuracy is None or not math.isfinite(self.stored_accuracy) or self.headline.empty:
            return False
        acc = float(self.headline.set_index("metric").loc["accuracy", "value"])
        return abs(self.stored_accuracy - acc) > STORED_TOLERANCE

    def interval_detail(self, metric: str) -> str:
        """How ``metric``'s interval was computed, in words (for a tooltip)."""
        if metric == "accuracy":
            return "Wilson 95%"
        if metric in ("macro_auroc", "ece"):
            bins = f", {ECE_BINS} equal-width bins" if metric == "ece" else ""
            return f"bootstrap 95% ({self.n_boot_images} resamples of images){bins}"
        return f"bootstrap 95% ({self.n_boot} resamples of the confusion matrix)"

    def per_class_with_auroc(self) -> pd.DataFrame:
        """``per_class`` plus auroc, auroc_low, auroc_high (NaN without AUROC)."""
        out = self.per_class.copy()
        per = self.auroc[self.auroc["class"] != "macro"].set_index("class") if not self.auroc.empty else None
        for col, src in (("auroc", "auroc"), ("auroc_low", "low"), ("auroc_high", "high")):
            out[col] = out["class"].map(per[src]) if per is not None else np.nan
        return out


def _empty(run: str, split: str, classes: list[str], stored: float | None) -> Classification:
    none = pd.DataFrame()
    return Classification(run, split, classes, 0, none, none, none, none, none, None, 0, 0, stored)


def classification(q: Source, run: str, split: str, classes: Sequence[str], *, n_boot: int = 1000, seed: int = 0,
                   level: float = 0.95, boot_cells: int | None = None, roc: bool = False) -> Classification:
    """The classification report of ``run`` on ``split`` (see the module docstring).

    ``classes``: the run's class order (``retcore.results.runs.run_classes``). ``boot_cells``:
    cap resamples x images of the AUROC and ECE bootstraps (the dashboard passes
    ``BOOT_CELLS``); None = ``n_boot`` always (``retcore export``). ``roc``: also compute ROC curves.

    A report stored by ``retcore predict`` / ``retcore summarize`` (``split_reports``) with the same
    settings (classes, resamples, seed, level) is read instead of computed: the same numbers, as
    the same function computed them. Otherwise (or with ``roc``) it is computed on read.
    """
    classes = list(classes)
    stored_rows = stored_metrics(q, run, split)
    overall_stored = stored_rows[(stored_rows["class_name"] == "") & (stored_rows["metric"] == "accuracy")]
    stored = float(overall_stored["value"].iloc[0]) if not overall_stored.empty and \
        pd.notna(overall_stored["value"].iloc[0]) else None
    if not roc:
        cells = summaries.class_counts(q, run, split)
        n = int(cells.loc[cells["label"].notna(), "n"].sum())
        if n == 0:
            return _empty(run, split, classes, stored)
        n_images = boot_size(n, n_boot, cells=boot_cells) if boot_cells else n_boot
        parts = summaries.stored_report(q, run, split, REPORT, report_params(classes, n_boot, n_images, seed, level))
        if parts is not None and set(parts) == set(REPORT_PARTS):
            return Classification(run, split, classes, n, parts["headline"], parts["per_class"], parts["auroc"],
                                  confusion(q, run, split, classes), parts["reliability"], None, n_boot, n_images,
                                  stored)
    return compute(q, run, split, classes, n_boot=n_boot, seed=seed, level=level, boot_cells=boot_cells, roc=roc,
                   stored=stored)


def report_params(classes: Sequence[str], n_boot: int, n_boot_images: int, seed: int, level: float) -> dict:
    """The settings a stored report was computed with (``split_reports.params``)."""
    return {"classes": list(classes), "n_boot": int(n_boot), "n_boot_images": int(n_boot_images), "seed": int(seed),
            "level": float(level)}


def report_parts(report: Classification) -> dict[str, pd.DataFrame]:
    """The tables of ``report`` that ``split_reports`` stores (``REPORT_PARTS``)."""
    return {part: getattr(report, part) for part in REPORT_PARTS}


def compute(q: Source, run: str, split: str, classes: Sequence[str], *, n_boot: int = 1000, seed: int = 0,
            level: float = 0.95, boot_cells: int | None = None, roc: bool = False,
            stored: float | None = None) -> Classification:
    """:func:`classification` computed from the predictions (never a stored report); ``stored``: the
    stored accuracy to compare with."""
    from retcore import stats

    classes = list(classes)
    meta, probs = split_predictions(q, run, split)
    keep = meta["label"].notna().to_numpy()
    labelled, probs = meta[keep].reset_index(drop=True), probs[keep]
    n = len(labelled)
    if n == 0:
        return _empty(run, split, classes, stored)
    y, yhat = labelled["label"], labelled["pred"]
    correct = labelled["correct"].astype(bool).to_numpy()
    n_images = boot_size(n, n_boot, cells=boot_cells) if boot_cells else n_boot

    per_class = stats.per_class_metrics(y, yhat, classes, n_boot=n_boot, seed=seed, level=level)
    bins = stats.reliability_curve(labelled["confidence"], correct, n_bins=RELIABILITY_BINS, level=level)
    fits = probs.ndim == 2 and probs.shape[1] == len(classes)
    auroc = stats.auroc_table(y, probs, classes, n_boot=n_images, seed=seed, level=level) if fits else pd.DataFrame()
    curves = stats.roc_curves(y, probs, classes) if roc and fits else None
    overall = stats.overall_metrics(y, yhat, classes, n_boot=n_boot, seed=seed, level=level).set_index("metric")
    acc = stats.wilson_interval(int(correct.sum()), len(correct), level)
    ece = stats.calibration_error(labelled["confidence"], correct, ECE_BINS, n_boot=n_images, seed=seed,
                                  level=level)
    macro = auroc[auroc["class"] == "macro"].iloc[0] if fits else pd.Series({"auroc": np.nan, "low": np.nan,
                                                                              "high": np.nan})
    values = {
        "accuracy": (acc.value, acc.low, acc.high, "Wilson"),
        "balanced_accuracy": (*overall.loc["balanced_accuracy", ["value", "low", "high"]], "bootstrap"),
        "macro_f1": (*overall.loc["macro_f1", ["value", "low", "high"]], "bootstrap"),
        "macro_auroc": (macro["auroc"], macro["low"], macro["high"], "bootstrap"),
        "kappa": (*overall.loc["kappa", ["value", "low", "high"]], "bootstrap"),
        "ece": (ece.value, ece.low, ece.high, "bootstrap"),
    }
    headline = pd.DataFrame([{"metric": key, "value": values[key][0], "low": values[key][1],
                              "high": values[key][2], "interval": values[key][3], "n": n} for key, _ in HEADLINE])
    return Classification(run, split, classes, n, headline, per_class, auroc, confusion(q, run, split, classes),
                          bins, curves, n_boot, n_images, stored)
