"""Sanity checks for saliency maps (Adebayo et al., NeurIPS 2018, "Sanity Checks for Saliency Maps").

A map that explains a model must depend on the model's weights. The model-parameter
randomisation test re-initialises the weights and compares each method's maps on the
randomised model with its maps on the trained one; a method whose maps stay alike has
shown the input, not the model.

Modules (one job each):

- ``randomize``: the layer groups of a ViT (head, blocks top down, patch embedding / stem),
  the ``cascading`` and ``independent`` schedules, seeded re-initialisation with each
  layer's own init scheme, in a ``with`` that restores the model or on a copy;
- ``similarity``: Spearman rank correlation of absolute maps and SSIM, per image;
- ``check``: one batch through a schedule: maps per step, compared with the trained maps;
- ``summary``: means over images with bootstrap intervals per step, and the verdict per
  method (flagged when its maps survive full randomisation, :data:`SURVIVAL_THRESHOLD`);
- ``labels``: shuffled training labels for the data randomisation test.

``retcore sanity`` (``jobs/sanity.py``) runs it on a fine-tuned run and stores the rows in
``sanity_checks``; ``retcore.results.sanity`` reads them back.
"""
from __future__ import annotations

import importlib
from typing import Any

from retcore.sanity.labels import DATA_LAYER, DATA_MODE, SHUFFLED_SPLITS, shuffle_labels
from retcore.sanity.similarity import SSIM_WINDOW, map_similarity, rank_correlation, ssim
from retcore.sanity.summary import FULLY_RANDOMIZED, MEASURES, SURVIVAL_THRESHOLD, TESTS, summarize, verdicts

# The modules that need torch load on first use, so readers of the table (retcore.results.sanity,
# the dashboard) do not import torch.
_LAZY = {
    **dict.fromkeys(["MethodSimilarity", "StepResult", "reference_maps", "sanity_check"], "check"),
    **dict.fromkeys(["MODES", "LayerGroup", "SanityError", "Step", "group_seed", "layer_groups", "randomization",
                     "randomized", "randomized_copy", "reinitialise", "schedule"], "randomize"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"retcore.sanity.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'retcore.sanity' has no attribute {name!r}")


__all__ = [
    "DATA_LAYER",
    "DATA_MODE",
    "FULLY_RANDOMIZED",
    "MEASURES",
    "MODES",
    "SHUFFLED_SPLITS",
    "SSIM_WINDOW",
    "SURVIVAL_THRESHOLD",
    "TESTS",
    "LayerGroup",
    "MethodSimilarity",
    "SanityError",
    "Step",
    "StepResult",
    "group_seed",
    "layer_groups",
    "map_similarity",
    "randomization",
    "randomized",
    "randomized_copy",
    "rank_correlation",
    "reference_maps",
    "reinitialise",
    "sanity_check",
    "schedule",
    "shuffle_labels",
    "ssim",
    "summarize",
    "verdicts",
]
