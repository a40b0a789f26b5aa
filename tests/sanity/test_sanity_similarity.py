"""Similarity of maps: identical maps score 1, maps of a fully randomised model score lower."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from retcore.sanity import map_similarity, rank_correlation, reference_maps, sanity_check, ssim

METHODS = ["lrp", "gae", "rollout", "attention", "gradcam", "lrp_pixels"]


def test_identical_maps_score_one_and_sign_is_ignored():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(14, 14))
    assert rank_correlation(a, a) == pytest.approx(1.0)
    assert ssim(a, a) == pytest.approx(1.0)
    assert rank_correlation(a, -a) == pytest.approx(1.0)  # absolute maps
    assert ssim(a, -a) == pytest.approx(1.0)
    assert rank_correlation(a, 3 * a) == pytest.approx(1.0) and ssim(a, 3 * a) == pytest.approx(1.0)


def test_unrelated_maps_score_near_zero():
    rng = np.random.default_rng(1)
    a, b = rng.random((64, 14, 14)), rng.random((64, 14, 14))
    rho, sim = map_similarity(a, b)
    assert rho.shape == sim.shape == (64,)
    assert abs(rho.mean()) < 0.05 and abs(sim.mean()) < 0.1


def test_constant_maps_and_small_grids():
    flat, ramp = np.zeros((5, 5)), np.arange(25.0).reshape(5, 5)
    assert rank_correlation(flat, flat) == 1.0 and rank_correlation(flat, ramp) == 0.0
    assert ssim(flat, flat) == pytest.approx(1.0)
    assert ssim(ramp, ramp) == pytest.approx(1.0)  # window shrunk to 5 on a 5 x 5 grid
    assert np.isnan(ssim(np.ones((2, 2)), np.ones((2, 2))))
    with pytest.raises(ValueError, match="cannot be compared"):
        rank_correlation(np.zeros((3, 3)), np.zeros((4, 4)))
    with pytest.raises(ValueError, match="same shape"):
        map_similarity(np.zeros((2, 3, 3)), np.zeros((3, 3, 3)))


def test_trained_model_against_itself_is_one_and_fully_randomised_is_lower(make_model, images):
    model = make_model(depth=3, dim=96, heads=4, pool="avg")
    targets = torch.tensor([0, 1, 2, 3])
    ref = reference_maps(model, images, targets, METHODS)
    for method, maps in ref.items():
        rho, sim = map_similarity(maps, reference_maps(model, images, targets, [method])[method])
        assert np.allclose(rho, 1.0) and np.allclose(sim, 1.0), method
    last = None
    for result in sanity_check(model, images, targets, METHODS, "cascading", seed=0, reference=ref):
        last = result
    assert last.step.layer == "patch_embed"
    for r in last.methods:
        assert r.spearman.mean() < 0.9 and np.nanmean(r.ssim) < 0.9, r.method
    token = [r for r in last.methods if r.method != "lrp_pixels"]
    assert np.mean([r.spearman.mean() for r in token]) < 0.5


def test_sanity_check_asks_what_is_left_to_do(make_model, images):
    model = make_model(depth=2)
    targets = torch.tensor([0, 1, 2, 3])
    asked = []

    def todo(step, method):
        asked.append((step.index, method))
        return [1, 3] if step.index == 2 else []

    results = list(sanity_check(model, images, targets, ["rollout", "gae"], "independent", todo=todo))
    assert [r.step.index for r in results] == [2]
    assert [(m.method, m.images.tolist()) for m in results[0].methods] == [("rollout", [1, 3]), ("gae", [1, 3])]
    assert len(asked) == 2 * 4  # once per (step, method)
