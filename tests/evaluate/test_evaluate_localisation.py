"""Pointing game, relevance mass accuracy and relevance rank accuracy on hand-worked arrays."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from retcore.evaluate import (
    localisation_scores,
    pointing_game,
    relevance_mass_accuracy,
    relevance_rank_accuracy,
    resize_relevance,
)

MASK = np.array([[0, 0, 0, 0],
                 [0, 1, 1, 0],
                 [0, 1, 1, 0],
                 [0, 0, 0, 0]], bool)


def test_perfect_map_scores_one():
    assert localisation_scores(MASK.astype(float), MASK) == {"pointing_game": 1.0, "mass_accuracy": 1.0,
                                                             "rank_accuracy": 1.0}


def test_map_outside_scores_zero():
    outside = (~MASK).astype(float)
    assert localisation_scores(outside, MASK) == {"pointing_game": 0.0, "mass_accuracy": 0.0, "rank_accuracy": 0.0}


def test_hand_worked_values():
    r = np.array([[0.0, 0.0, 0.0, 0.0],
                  [0.0, 5.0, 1.0, 2.0],
                  [0.0, -3.0, 0.5, 0.0],
                  [4.0, 0.0, 0.0, 0.0]])
    assert pointing_game(r, MASK) == 1.0  # max 5 at (1, 1), inside
    # positive mass inside: 5 + 1 + 0.5 = 6.5 of 5 + 1 + 2 + 0.5 + 4 = 12.5 (the -3 is ignored)
    assert relevance_mass_accuracy(r, MASK) == pytest.approx(6.5 / 12.5)
    # K = 4: the top four are 5, 4, 2, 1 -> two inside (5 and 1)
    assert relevance_rank_accuracy(r, MASK) == pytest.approx(2 / 4)
    r2 = r.copy()
    r2[3, 0] = 6.0  # the maximum moves outside
    assert pointing_game(r2, MASK) == 0.0


def test_ties():
    # a tied maximum inside and outside counts as a hit (Quantus: any maximum)
    r = np.zeros((4, 4))
    r[1, 1] = r[0, 0] = 1.0
    assert pointing_game(r, MASK) == 1.0
    # a constant map: every pixel ties, the expected rank accuracy is the mask's area share
    assert relevance_rank_accuracy(np.ones((4, 4)), MASK) == pytest.approx(4 / 16)
    # top-3 strictly above, then 2 tied places inside / outside for one slot
    r = np.array([[9.0, 0.0, 0.0, 0.0],
                  [0.0, 8.0, 7.0, 1.0],
                  [0.0, 1.0, 0.0, 0.0],
                  [0.0, 0.0, 0.0, 0.0]])
    assert relevance_rank_accuracy(r, MASK) == pytest.approx((2 + 0.5) / 4)


def test_empty_mask_and_empty_map():
    empty = np.zeros((4, 4), bool)
    assert all(np.isnan(v) for v in localisation_scores(np.ones((4, 4)), empty).values())
    assert np.isnan(relevance_mass_accuracy(-np.ones((4, 4)), MASK))


def test_token_grid_is_resized_bilinearly():
    tok = np.array([[0.0, 0.0], [0.0, 1.0]])  # relevance in the lower-right token
    mask = np.zeros((8, 8), bool)
    mask[4:, 4:] = True
    s = localisation_scores(tok, mask)
    assert s["pointing_game"] == 1.0 and s["rank_accuracy"] == 1.0
    # bilinear 2 -> 8 weights of the lower token per axis: 0, 0, .125, .375, .625, .875, 1, 1;
    # inside the mask 3.5 of 4 per axis -> (3.5 / 4)^2 of the mass
    assert s["mass_accuracy"] == pytest.approx((3.5 / 4) ** 2)
    ref = F.interpolate(torch.tensor(tok)[None, None], size=(8, 8), mode="bilinear", align_corners=False)[0, 0]
    assert np.allclose(resize_relevance(tok, (8, 8)), ref.numpy())
    rng = np.random.default_rng(0)
    x = rng.random((5, 7))
    down = F.interpolate(torch.tensor(x)[None, None], size=(3, 4), mode="bilinear", align_corners=False)[0, 0]
    assert np.allclose(resize_relevance(x, (3, 4)), down.numpy())
