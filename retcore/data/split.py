"""Patient-grouped, label-stratified train/val/test assignment.

Both eyes (all images) of a patient must land in one split, otherwise the test
score measures memorised patients. Records whose `split` is already set keep
it; the others are distributed with scikit-learn's `StratifiedGroupKFold`:
the unassigned groups are cut into K folds of similar size and class mix, and
whole folds go to test, val and train so that the fractions match `test`/`val`.
"""
from __future__ import annotations

import dataclasses
import warnings
from collections import Counter
from collections.abc import Sequence
from fractions import Fraction

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from retcore.data.records import SPLITS, ImageRecord
from retcore.errors import DataError

__all__ = ["MAX_FOLDS", "assign_splits", "group_key"]

MAX_FOLDS = 20
"""Most folds used to approximate the split fractions (granularity 1/20 = 5%)."""


def group_key(record: ImageRecord) -> str:
    """Grouping key of a record: its patient id, else its path (image = own group)."""
    return f"patient:{record.patient_id}" if record.patient_id else f"path:{record.path}"


def _fold_plan(val: float, test: float, max_folds: int) -> tuple[int, int, int] | None:
    """(K, n_test_folds, n_val_folds) with K <= max_folds approximating the fractions best.

    Every split with a positive fraction gets at least one fold; None if that
    needs more than `max_folds` folds.
    """
    best: tuple[float, int, int, int] | None = None
    for k in range(2, min(MAX_FOLDS, max_folds) + 1):
        n_test = max(1, round(test * k)) if test > 0 else 0
        n_val = max(1, round(val * k)) if val > 0 else 0
        if k - n_test - n_val < 1:
            continue
        error = abs(Fraction(n_test, k) - Fraction(test)) + abs(Fraction(n_val, k) - Fraction(val))
        if best is None or error < best[0] - 1e-12:
            best = (float(error), k, n_test, n_val)
    return None if best is None else best[1:]


def _inherited_splits(records: Sequence[ImageRecord]) -> dict[str, str]:
    """Group key -> split for groups with a preassigned member (most common split wins, ties in SPLITS order)."""
    votes: dict[str, Counter[str]] = {}
    for r in records:
        if r.split is not None:
            votes.setdefault(group_key(r), Counter())[r.split] += 1
    return {g: min(c, key=lambda s: (-c[s], SPLITS.index(s))) for g, c in votes.items()}


def assign_splits(
    records: Sequence[ImageRecord], *, val: float = 0.15, test: float = 0.15, seed: int = 0
) -> list[ImageRecord]:
    """Give every record a split, stratified by label and grouped by patient.

    Records that already have a split keep it. An unassigned record of a
    patient who already has assigned images joins that patient's split. The
    remaining patient groups are split with `StratifiedGroupKFold(shuffle=True,
    random_state=seed)`, so fractions (of images) and per-split class
    proportions are close to the targets, up to the granularity of whole
    patients and of 1/`MAX_FOLDS`.

    Args:
        records: images; `patient_id` is the group (None = the image alone).
        val: target fraction of the unassigned images for 'val', in [0, 1).
        test: target fraction of the unassigned images for 'test', in [0, 1).
        seed: random seed; the same inputs and seed give the same result.

    Returns:
        New records (same order) with `split` set; the inputs are not modified.

    Raises:
        ValueError: fractions out of range.
        DataError: too few patient groups to fill every requested split.
    """
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise ValueError(f"need 0 <= val, test and val + test < 1, got val={val}, test={test}")
    inherited = _inherited_splits(records)
    result = [
        r if r.split is not None or group_key(r) not in inherited
        else dataclasses.replace(r, split=inherited[group_key(r)])
        for r in records
    ]
    todo = [i for i, r in enumerate(result) if r.split is None]
    if not todo:
        return result
    if val == 0 and test == 0:
        return [r if r.split is not None else dataclasses.replace(r, split="train") for r in result]

    groups = np.array([group_key(result[i]) for i in todo])
    labels = np.array([result[i].label for i in todo])
    n_groups = len(set(groups.tolist()))
    # StratifiedGroupKFold needs K <= number of groups and K <= size of the largest class. With
    # more folds than a class has patients, some folds get none of that class, and test or val
    # can end up without it: keep K <= the patients of the smallest class (at least 2 splits).
    class_groups = Counter(label for label, _ in set(zip(labels.tolist(), groups.tolist())))
    smallest = min(class_groups.values())
    max_folds = min(n_groups, max(Counter(labels.tolist()).values()))
    if smallest >= 3:
        max_folds = min(max_folds, smallest)
    plan = _fold_plan(val, test, max_folds)
    if plan is None:
        raise DataError(
            f"only {n_groups} patient group(s) ({len(todo)} images) without a split, too few for "
            f"val={val}, test={test}; add images, set the split column, or use val=0/test=0"
        )
    k, n_test, n_val = plan
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    fold_split = ["test"] * n_test + ["val"] * n_val + ["train"] * (k - n_test - n_val)
    with warnings.catch_warnings():
        # "The least populated class in y has only N members": expected for rare classes.
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        folds = list(splitter.split(np.zeros(len(todo)), labels, groups))
    for fold, (_, members) in enumerate(folds):
        for j in members:
            i = todo[j]
            result[i] = dataclasses.replace(result[i], split=fold_split[fold])
    return result
