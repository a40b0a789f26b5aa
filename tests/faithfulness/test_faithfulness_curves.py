"""Per-image curves on a hand-made linear model whose true relevance is known, and the baselines."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from retcore.evaluate import perturbation_curve
from retcore.faithfulness import (
    CURVE_COLUMNS,
    FRACTIONS,
    baseline_images,
    curve_aucs,
    faithfulness_curves,
    gaussian_blur,
    random_maps,
)

WEIGHTS = torch.tensor([[3.0, 2.0], [1.0, 0.0]])  # 2 x 2 pixels; class-1 logit = sum(w * x)
FR = (0.0, 0.25, 0.5, 0.75, 1.0)  # one pixel per step


class Linear(torch.nn.Module):
    """Logits (0, sum_p w_p x_p) on channel 0: the true relevance of pixel p is w_p x_p (baseline 0)."""

    def __init__(self, weights: torch.Tensor):
        super().__init__()
        self.w = weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x[:, 0] * self.w).sum(dim=(1, 2))
        return torch.stack([torch.zeros_like(z), z], dim=1)


def _sig(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def _trapz(zs: list[float]) -> float:
    p = [_sig(z) for z in zs]
    return 0.25 * (p[0] / 2 + p[1] + p[2] + p[3] + p[4] / 2)


def test_true_relevance_gives_the_exact_curves_and_aucs():
    images = torch.ones((1, 1, 2, 2))
    zero = torch.zeros_like(images)
    kw = dict(fractions=FR, target=[1], fill=zero)
    morf = perturbation_curve(Linear(WEIGHTS), images, WEIGHTS[None], mode="positive", **kw)
    lerf = perturbation_curve(Linear(WEIGHTS), images, WEIGHTS[None], mode="negative", **kw)
    ins = perturbation_curve(Linear(WEIGHTS), images, WEIGHTS[None], mode="insertion", **kw)
    assert morf.target_logit[0].tolist() == [6, 3, 1, 0, 0]
    assert lerf.target_logit[0].tolist() == [6, 6, 5, 3, 0]
    assert ins.target_logit[0].tolist() == [0, 3, 5, 6, 6]
    assert morf.auc_prob == pytest.approx(_trapz([6, 3, 1, 0, 0]))
    assert lerf.auc_prob == pytest.approx(_trapz([6, 6, 5, 3, 0]))
    assert ins.auc_prob == pytest.approx(_trapz([0, 3, 5, 6, 6]))
    # any other order drops the probability more slowly when deleting the most relevant first
    for perm in ([0, 1, 2, 3], [2, 3, 1, 0], [1, 2, 3, 0]):
        wrong = torch.tensor(perm, dtype=torch.float32).reshape(1, 2, 2)
        other = perturbation_curve(Linear(WEIGHTS), images, wrong, mode="positive", **kw)
        assert other.auc_prob > morf.auc_prob


def test_token_steps_change_whole_patches():
    w = WEIGHTS.repeat_interleave(2, 0).repeat_interleave(2, 1)  # 4 x 4 pixels, 2 x 2 tokens
    images = torch.ones((1, 1, 4, 4))
    res = perturbation_curve(Linear(w), images, WEIGHTS[None], mode="positive", fractions=FR, target=[1],
                             fill=torch.zeros_like(images), grid=(2, 2))
    assert res.target_logit[0].tolist() == [24, 12, 4, 0, 0]  # one token (4 pixels) per step
    pixel_map = w[None] + 0.01 * torch.rand((1, 4, 4))  # pooled to tokens: the same order
    pooled = perturbation_curve(Linear(w), images, pixel_map, mode="positive", fractions=FR, target=[1],
                                fill=torch.zeros_like(images), grid=(2, 2))
    assert pooled.target_logit[0].tolist() == [24, 12, 4, 0, 0]
    with pytest.raises(ValueError, match="does not tile"):
        perturbation_curve(Linear(w), images, WEIGHTS[None], grid=(3, 3))


def test_faithfulness_curves_long_format_and_aucs():
    images = torch.ones((2, 1, 2, 2))
    curves = faithfulness_curves(Linear(WEIGHTS), images, WEIGHTS.expand(2, 2, 2), [1, 1], torch.zeros_like(images),
                                 units={"pixel": None, "token": (1, 1)}, fractions=FR)
    assert list(curves.columns) == CURVE_COLUMNS
    assert len(curves) == 2 * 2 * 3 * 5
    aucs = curve_aucs(curves)
    got = aucs.set_index(["index", "unit", "test"])["auc"]
    assert got[(0, "pixel", "deletion_morf")] == pytest.approx(_trapz([6, 3, 1, 0, 0]))
    assert got[(1, "pixel", "insertion")] == pytest.approx(_trapz([0, 3, 5, 6, 6]))
    # a single token changes at once, at the first step where round(f x 1) = 1 (f = 0.75)
    assert got[(0, "token", "deletion_morf")] == pytest.approx(_trapz([6, 6, 6, 0, 0]))


def test_truly_relevant_map_beats_a_random_map():
    gen = torch.Generator().manual_seed(0)
    w = torch.zeros((8, 8))
    w[2:4, 5:7] = torch.tensor([[4.0, 3.0], [2.0, 1.0]])
    images = 0.5 + torch.rand((16, 1, 8, 8), generator=gen)
    rel = (w * images[:, 0]).numpy()  # exact relevance of a linear model against a zero baseline
    rnd = random_maps([f"img{i}" for i in range(16)], (8, 8), seed=1)
    kw = dict(units={"pixel": None}, fractions=FRACTIONS)
    model, base, tgt = Linear(w), torch.zeros_like(images), [1] * 16
    true = curve_aucs(faithfulness_curves(model, images, rel, tgt, base, **kw)).set_index(["index", "test"])["auc"]
    rand = curve_aucs(faithfulness_curves(model, images, rnd, tgt, base, **kw)).set_index(["index", "test"])["auc"]
    assert (true.xs("deletion_morf", level="test") < rand.xs("deletion_morf", level="test")).all()
    assert (true.xs("insertion", level="test") > rand.xs("insertion", level="test")).all()
    assert (true.xs("deletion_lerf", level="test") >= rand.xs("deletion_lerf", level="test") - 1e-9).all()


def test_random_maps_are_seeded_per_image():
    a = random_maps(["x", "y"], (3, 4), seed=0)
    b = random_maps(["y"], (3, 4), seed=0)
    assert a.shape == (2, 3, 4) and a.dtype == np.float32
    assert np.array_equal(a[1], b[0])  # independent of the batch
    assert not np.array_equal(a[0], random_maps(["x"], (3, 4), seed=1)[0])


def test_blur_baseline_values():
    const = torch.full((1, 3, 9, 9), 0.7)
    assert torch.allclose(gaussian_blur(const, 2.0), const)
    delta = torch.zeros((1, 1, 21, 21))
    delta[0, 0, 10, 10] = 1.0
    out = gaussian_blur(delta, 1.5)
    assert out.sum().item() == pytest.approx(1.0, abs=1e-5)
    g = np.exp(-0.5 * (np.arange(-5, 6) / 1.5) ** 2)
    g /= g.sum()
    assert out[0, 0, 10, 10].item() == pytest.approx(g[5] ** 2, rel=1e-5)
    assert out[0, 0, 10, 12].item() == pytest.approx(g[5] * g[7], rel=1e-5)
    images = torch.rand((2, 3, 40, 40))
    assert torch.allclose(baseline_images(images, "blur"), gaussian_blur(images, 2.0))  # sigma = 40 / 20


def test_mean_baseline_values_and_errors():
    images = torch.rand((2, 3, 5, 5))
    base = baseline_images(images, "mean", mean=[0.1, -0.2, 0.3])
    assert base.shape == images.shape
    assert torch.allclose(base[:, 1], torch.full((2, 5, 5), -0.2))
    with pytest.raises(ValueError, match="dataset mean"):
        baseline_images(images, "mean")
    with pytest.raises(ValueError, match="choose one of blur, mean"):
        baseline_images(images, "black")
