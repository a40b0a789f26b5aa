"""Penalty forms: zero inside, growing outside, gradients reach the weights."""
from __future__ import annotations

import pytest
import torch

from retcore.guide import explicit_attention, get_penalty, list_penalties
from retcore.models import create_model

FORMS = ["input_gradient", "relevance"]


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = create_model("demo", 4, img_size=64)
    with torch.no_grad():  # a head large enough that the explanations are not ~0
        model.head.weight.normal_(0, 0.5)
    images = torch.randn(3, 3, 64, 64)
    labels = torch.tensor([0, 1, 2])
    return model, images, labels


def _grad_norm(model) -> float:
    return sum(float(p.grad.abs().sum()) for p in model.parameters() if p.grad is not None)


def test_registry() -> None:
    assert list_penalties() == FORMS
    with pytest.raises(ValueError, match="unknown guide penalty"):
        get_penalty("saliency")


@pytest.mark.parametrize("form", FORMS)
def test_penalty_zero_inside_and_grows_outside(setup, form: str) -> None:
    model, images, labels = setup
    penalty = get_penalty(form)
    weight = torch.ones(3)
    ones = torch.ones(3, 1, 64, 64)
    shares = []
    for width in (64, 48, 32, 16):  # shrinking allowed region (columns [0, width))
        allowed = torch.zeros_like(ones)
        allowed[..., :width] = 1
        model.zero_grad()
        logits, p = penalty(model, images, labels, allowed, weight)
        assert logits.shape == (3, 4)
        shares.append(float(p.detach()))
        if width == 64:
            assert shares[-1] == 0.0
        else:
            p.backward()
            assert _grad_norm(model) > 0  # gradients flow into the weights
    assert shares == sorted(shares) and shares[-1] > shares[1] > 0
    _, p_out = penalty(model, images, labels, torch.zeros_like(ones), weight)
    assert float(p_out.detach()) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("form", FORMS)
def test_weight_switches_images_off(setup, form: str) -> None:
    model, images, labels = setup
    allowed = torch.zeros(3, 1, 64, 64)
    _, p = get_penalty(form)(model, images, labels, allowed, torch.zeros(3))
    assert float(p.detach()) == 0.0


def test_explicit_attention_restores_the_flags(setup) -> None:
    model, *_ = setup
    flags = [b.attn.fused_attn for b in model.blocks]
    with explicit_attention(model) as mods:
        assert not any(m.fused_attn for m in mods)
    assert [b.attn.fused_attn for b in model.blocks] == flags


@pytest.mark.parametrize("form", FORMS)
def test_penalty_under_bf16_with_a_fresh_retfound_head(form: str) -> None:
    """A RETFound head (std 2e-5) makes the explanations ~1e-9 of the read-out: the share must
    still be computed (no cancellation to 0), also under bf16 autocast."""
    torch.manual_seed(1)
    model = create_model("demo", 4, img_size=64)
    images = torch.randn(2, 3, 64, 64)
    allowed = torch.zeros(2, 1, 64, 64)
    allowed[..., :32] = 1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, p = get_penalty(form)(model, images, torch.tensor([0, 1]), allowed, torch.ones(2))
    assert 0.2 < float(p.detach()) < 0.8
    p.backward()
    assert _grad_norm(model) > 0
