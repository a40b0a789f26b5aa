"""Perturbation curves on a tiny model whose evidence is a known image region."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from retcore.evaluate import DEFAULT_FRACTIONS, auc, perturbation_curve, perturbation_test

H = W = 16


class LeftHalfModel(torch.nn.Module):
    """Logits (bias, mean of channel 0 over the left half): class 1 while that mean > 0.05."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert not torch.is_grad_enabled(), "perturbation must run under no_grad"
        s = x[:, 0, :, : W // 2].mean(dim=(1, 2))
        return torch.stack([torch.full_like(s, 0.05), s], dim=1)


def _data(b: int = 6):
    gen = torch.Generator().manual_seed(0)
    images = torch.rand((b, 3, H, W), generator=gen) * 0.2
    images[:, 0, :, : W // 2] = 1.0  # the evidence
    relevance = torch.zeros((b, H, W))
    relevance[:, :, : W // 2] = 1.0 + torch.rand((b, H, W // 2), generator=gen)[..., : W // 2]
    return images, relevance


def test_positive_test_destroys_prediction_faster_than_negative():
    images, relevance = _data()
    res = perturbation_test(LeftHalfModel(), images, relevance)
    pos, neg = res["positive"], res["negative"]
    assert (pos.target == 1).all() and (neg.target == 1).all()
    # positive: the evidence (left half = 50% of the pixels) is gone from the 50% step on
    assert pos.accuracy.tolist() == [1.0] * 5 + [0.0] * 5
    assert pos.auc_accuracy == pytest.approx(0.45)  # 4 x 0.1 + 0.1 x (1 + 0) / 2
    # negative: right half first; at 90% 80% of the evidence is gone, mean 0.2 > 0.05
    assert neg.accuracy.tolist() == [1.0] * 10
    assert neg.auc_accuracy == pytest.approx(0.9)
    assert pos.auc_accuracy < neg.auc_accuracy
    assert pos.auc_logit < neg.auc_logit and pos.auc_prob < neg.auc_prob
    assert pos.target_logit.shape == (6, 10) and np.allclose(pos.target_logit[:, 0], 1.0)
    assert set(pos.summary()) == {"auc_accuracy", "auc_logit", "auc_prob"}


def test_token_grid_relevance_gives_the_same_ordering():
    images, _ = _data()
    tok = torch.tensor([[1.0, 0.0], [1.0, 0.0]]).expand(6, 2, 2)  # 2x2 tokens: left column relevant
    pos = perturbation_curve(LeftHalfModel(), images, tok, mode="positive")
    neg = perturbation_curve(LeftHalfModel(), images, tok.numpy(), mode="negative")
    assert pos.auc_accuracy < neg.auc_accuracy


def test_batching_and_tie_break_are_deterministic():
    images, relevance = _data()
    flat = torch.ones((6, H, W))  # every pixel tied: order decided by the seeded permutation
    a = perturbation_curve(LeftHalfModel(), images, flat, batch_size=1)
    b = perturbation_curve(LeftHalfModel(), images, flat, batch_size=4)
    assert np.array_equal(a.predicted, b.predicted) and np.allclose(a.target_logit, b.target_logit)
    c = perturbation_curve(LeftHalfModel(), images, relevance, batch_size=5)
    d = perturbation_curve(LeftHalfModel(), images, relevance, batch_size=64)
    assert np.allclose(c.target_prob, d.target_prob)
    # random ties delete evidence evenly: half the evidence at 50% -> mean 0.5 logit
    assert a.target_logit[:, 5] == pytest.approx(0.5, abs=0.1)


def test_fill_options_and_targets():
    images, relevance = _data(2)
    images = images - 0.5  # normalised space: zero is not black
    zero = perturbation_curve(LeftHalfModel(), images, relevance, fractions=(0.0, 0.5))
    mean = perturbation_curve(LeftHalfModel(), images, relevance, fractions=(0.0, 0.5), fill="mean")
    const = perturbation_curve(LeftHalfModel(), images, relevance, fractions=(0.0, 0.5), fill=(0.3, 0.0, 0.0))
    assert zero.target_logit[:, 1] == pytest.approx(0.0)
    assert const.target_logit[:, 1] == pytest.approx(0.3)
    per_image_mean = images[:, 0].mean(dim=(1, 2)).numpy()
    assert mean.target_logit[:, 1] == pytest.approx(per_image_mean, abs=1e-6)
    forced = perturbation_curve(LeftHalfModel(), images, relevance, target=[0, 0])
    assert (forced.target == 0).all() and forced.accuracy[0] == 0.0


def test_input_validation():
    images, relevance = _data(2)
    model = LeftHalfModel()
    with pytest.raises(ValueError, match="mode"):
        perturbation_curve(model, images, relevance, mode="both")
    with pytest.raises(ValueError, match="fractions"):
        perturbation_curve(model, images, relevance, fractions=(0.5, 0.1))
    with pytest.raises(ValueError, match="relevance must be"):
        perturbation_curve(model, images, relevance[:1])
    with pytest.raises(ValueError, match="target classes"):
        perturbation_curve(model, images, relevance, target=[0, 5])
    with pytest.raises(ValueError, match="fill"):
        perturbation_curve(model, images, relevance, fill="noise")


def test_auc_trapezoid():
    assert auc(np.array([1.0, 1.0, 0.0]), [0.0, 0.5, 1.0]) == pytest.approx(0.75)
    assert np.allclose(auc(np.ones((3, 10)), DEFAULT_FRACTIONS), 0.9)
