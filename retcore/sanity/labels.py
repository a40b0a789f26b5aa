"""Shuffled labels for the data randomisation test (Adebayo et al., NeurIPS 2018, section 4).

A model fine-tuned on labels permuted at random can only memorise; maps that explain a model
should differ between it and the model trained on the true labels. The test compares, on the
same test images and for the same class, a method's maps on the two models (``mode = 'data'``
rows of ``sanity_checks``, step 0, layer :data:`DATA_LAYER`).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["DATA_LAYER", "DATA_MODE", "SHUFFLED_SPLITS", "shuffle_labels"]

DATA_MODE = "data"
"""``sanity_checks.mode`` of the data randomisation rows."""

DATA_LAYER = "labels"
"""``sanity_checks.layer`` of the data randomisation rows (what was randomised)."""

SHUFFLED_SPLITS = ("train", "val")
"""Splits whose labels are permuted; the test split keeps its true labels."""


def shuffle_labels(labels: Sequence[str], splits: Sequence[str | None], *, seed: int,
                   within: Sequence[str] = SHUFFLED_SPLITS) -> list[str]:
    """The labels permuted at random within each split of ``within`` (seeded).

    Args:
        labels: one label per image.
        splits: the image's split (``'train'``, ``'val'``, ``'test'`` or None).
        seed: seed of the permutations.
        within: splits whose labels are permuted; other images keep theirs.

    Returns:
        The new labels, in the input order. Each split keeps its class counts.
    """
    if len(labels) != len(splits):
        raise ValueError(f"{len(labels)} labels for {len(splits)} splits")
    out = list(labels)
    rng = np.random.default_rng(seed)
    for split in within:
        idx = [i for i, s in enumerate(splits) if s == split]
        for i, j in zip(idx, rng.permutation(idx)):
            out[i] = labels[int(j)]
    return out
