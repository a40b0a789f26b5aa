"""Predictions of a run's split: per-image rows, class probabilities, confusion counts, stored metrics."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from retcore.errors import RetcoreError
from retcore.results import summaries
from retcore.results.executor import Source, frame, grids

__all__ = ["checked_classes", "class_counts", "confusion", "split_predictions", "stored_metrics"]


def split_predictions(q: Source, run: str, split: str) -> tuple[pd.DataFrame, np.ndarray]:
    """Every prediction of ``run`` on ``split``, in image-id order.

    Returns (frame with image_id, label (None when unlabelled), pred, confidence (top-label
    probability), correct (None when unlabelled), eye (from ``images``); class
    probabilities (n, C) float64 in the run's class order).
    """
    meta, probs = grids(q, "SELECT p.image_id, p.label, p.pred, p.confidence, p.correct, i.eye, p.probs AS grid "
                           "FROM predictions p LEFT JOIN images i USING (image_id) "
                           "WHERE p.run_id = ? AND p.split = ? ORDER BY p.image_id", (run, split))
    return meta, probs.astype(np.float64, copy=False)


def checked_classes(classes: Sequence[str], meta: pd.DataFrame, width: int, run: str) -> list[str]:
    """The class order of probabilities ``width`` wide: ``classes`` (the run's recorded list) when
    it fits, else the sorted classes seen in ``meta``'s label and pred; ``RetcoreError`` otherwise."""
    if len(classes) == width:
        return list(classes)
    seen = sorted(set(meta["label"].dropna()) | set(meta["pred"]))
    if len(seen) != width:
        raise RetcoreError(f"run {run}: cannot tell the order of its {width} classes "
                           "(dataset record missing); re-register the dataset with `retcore finetune`")
    return seen


def confusion(q: Source, run: str, split: str, classes: Sequence[str]) -> pd.DataFrame:
    """Confusion counts from the predictions (the ``class_counts`` summary): columns true_label,
    pred_label, count, every (true, predicted) pair of ``classes`` in their order (zeros included),
    labelled images only."""
    cells = summaries.class_counts(q, run, split)
    counts = cells[cells["label"].notna()].rename(columns={"label": "true_label", "pred": "pred_label", "n": "count"})
    grid = pd.MultiIndex.from_product([list(classes), list(classes)], names=["true_label", "pred_label"])
    out = counts.set_index(["true_label", "pred_label"])["count"].reindex(grid, fill_value=0)
    return out.astype(np.int64).reset_index()


def stored_metrics(q: Source, run: str, split: str) -> pd.DataFrame:
    """Metrics stored by ``retcore predict`` (long: metric, class_name ('' = overall), value)."""
    return frame(q, "SELECT metric, class_name, value FROM metrics WHERE run_id = ? AND split = ?", (run, split))


def class_counts(q: Source, run: str, split: str, by: str = "label") -> pd.Series:
    """Images per class (true ``label`` or ``pred``) of a run's split, indexed by class."""
    group = "pred" if by == "pred" else "label"
    cells = summaries.class_counts(q, run, split)
    out = cells[cells[group].notna()].groupby(group, sort=True)["n"].sum()
    if out.empty:
        return pd.Series(dtype="int64")
    return out.astype(np.int64).rename_axis("class")
