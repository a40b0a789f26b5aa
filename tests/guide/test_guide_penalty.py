"""Penalty forms: zero inside, growing outside, gradients reach the weights; ``relevance`` is ``gae``."""
from __future__ import annotations

from functools import partial

import pytest
import torch
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from retcore.explain import gae_relevance, relevance
from retcore.guide import get_penalty, list_penalties
from retcore.models import create_model
from retcore.train.engine import train_one_epoch

FORMS = ["input_gradient", "grad_x_input", "relevance"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread(single_thread):
    """Every test here runs single-threaded (``single_thread`` in tests/conftest.py)."""


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


def test_penalties_leave_the_model_as_they_found_it(setup) -> None:
    model, images, labels = setup
    flags = [b.attn.fused_attn for b in model.blocks]
    model.train()
    for form in FORMS:
        get_penalty(form)(model, images, labels, torch.ones(3, 1, 64, 64), torch.ones(3))
        assert [b.attn.fused_attn for b in model.blocks] == flags and model.training
        assert all(p.requires_grad for p in model.parameters())
        assert all(not m._forward_hooks for m in model.modules())


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


def test_grad_x_input_penalty_is_its_definition(setup) -> None:
    """The pixel-level form: share of relu(sum_c dy_t/dx * x) outside the region, written out with
    plain autograd on the same (eval-mode) model."""
    model, images, labels = setup
    model.eval()
    try:
        allowed = torch.zeros(3, 1, 64, 64)
        allowed[..., 8:40, 4:30] = 1
        _, p = get_penalty("grad_x_input")(model, images, labels, allowed, torch.ones(3))
        x = images.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(model(x).gather(1, labels.view(-1, 1)).sum(), x)
        e = (g * x).sum(1, keepdim=True).clamp(min=0)
        share = (e * (1 - allowed)).flatten(1).sum(1) / e.flatten(1).sum(1)
        assert 0 < float(p.detach()) < 1
        assert float(p.detach()) == pytest.approx(float(share.mean()), rel=1e-4)
    finally:
        model.train()


# --- the `relevance` penalty is the `gae` explanation -------------------------------------------------

SHAPES = [
    pytest.param(dict(depth=2, dim=64, heads=4, img=64), id="d2-w64"),
    pytest.param(dict(depth=3, dim=96, heads=2, img=48), id="d3-w96"),
    pytest.param(dict(depth=4, dim=192, heads=3, img=64), id="d4-w192"),
]


def _vit(*, depth: int, dim: int, heads: int, img: int, pool: str, seed: int = 0) -> VisionTransformer:
    """A tiny timm ViT without dropout or BatchNorm (train mode computes what eval mode does), with a head
    large enough that the attention gradients are not ~0."""
    torch.manual_seed(seed)
    model = VisionTransformer(img_size=img, patch_size=16, embed_dim=dim, depth=depth, num_heads=heads,
                              num_classes=4, global_pool=pool, fc_norm=pool == "avg", qkv_bias=True,
                              norm_layer=partial(nn.LayerNorm, eps=1e-6))
    with torch.no_grad():
        model.head.weight.normal_(0, 0.5)
    return model.train()


def _share(r: torch.Tensor, allowed: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The penalty's definition (module docstring of retcore.guide.penalty), written out on a map."""
    a = F.avg_pool2d(allowed, 16).flatten(1)
    share = (r * (1 - a)).sum(1) / r.sum(1)
    return (share * weight).sum() / weight.sum().clamp(min=1)


@pytest.mark.parametrize("pool", ["token", "avg"])
@pytest.mark.parametrize("shape", SHAPES)
def test_relevance_penalty_is_gae(shape: dict, pool: str) -> None:
    """The map the penalty differentiates (model in train mode, graph to the weights) equals the ``gae``
    explanation of the same images and target classes, and the penalty is its share outside."""
    model = _vit(pool=pool, **shape)
    img = shape["img"]
    gen = torch.Generator().manual_seed(1)
    images = torch.randn(3, 3, img, img, generator=gen)
    labels = torch.tensor([0, 3, 1])
    allowed = (torch.rand(3, 1, img, img, generator=gen) > 0.4).float()
    weight = torch.tensor([1.0, 0.0, 1.0])

    logits, r = gae_relevance(model, images, labels)
    explained = relevance(model, images, "gae", target=labels).flatten(1)  # explain runs it in eval mode
    assert model.training and r.requires_grad and r.shape == explained.shape
    assert float(explained.abs().max()) > 0
    torch.testing.assert_close(r.detach(), explained, rtol=1e-5, atol=1e-6 * float(explained.abs().max()))
    with torch.no_grad():
        torch.testing.assert_close(logits.detach(), model.eval()(images))
    model.train()

    logits_p, penalty = get_penalty("relevance")(model, images, labels, allowed, weight)
    torch.testing.assert_close(logits_p.detach(), logits.detach())
    torch.testing.assert_close(penalty.detach(), _share(explained, allowed, weight), rtol=1e-5, atol=1e-7)


def test_relevance_penalty_is_gae_on_the_demo_model() -> None:
    """The registered demo ViT (conv stem with BatchNorm, average-pool head), in eval mode so that its
    BatchNorm uses the running statistics as ``relevance`` does."""
    torch.manual_seed(0)
    model = create_model("demo", 4, img_size=64).eval()
    with torch.no_grad():
        model.head.weight.normal_(0, 0.5)
    images = torch.randn(2, 3, 64, 64)
    labels = torch.tensor([2, 1])
    _, r = gae_relevance(model, images, labels)
    explained = relevance(model, images, "gae", target=labels).flatten(1)
    torch.testing.assert_close(r.detach(), explained, rtol=1e-5, atol=1e-6 * float(explained.abs().max()))


def test_relevance_penalty_gradients_reach_the_attention_weights() -> None:
    """Through the attention maps of every block, not through the (constant) attention gradients: the head,
    which only enters through those gradients, gets none. With ``create_graph=True`` the same map is
    differentiable through the gradients too, and then the head gets one."""
    model = _vit(depth=3, dim=64, heads=4, img=64, pool="avg")
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    labels = torch.tensor([1, 2])
    allowed = torch.zeros(2, 1, 64, 64)
    allowed[..., 16:48, 16:48] = 1
    _, penalty = get_penalty("relevance")(model, images, labels, allowed, torch.ones(2))
    penalty.backward()
    for i, blk in enumerate(model.blocks):
        g = blk.attn.qkv.weight.grad
        assert g is not None and torch.isfinite(g).all() and float(g.abs().sum()) > 0, i
    assert model.head.weight.grad is None

    model.zero_grad(set_to_none=True)
    _, r2 = gae_relevance(model, images, labels, create_graph=True)
    _, r1 = gae_relevance(model, images, labels)
    torch.testing.assert_close(r2.detach(), r1.detach())
    r2.sum().backward()
    assert model.head.weight.grad is not None and float(model.head.weight.grad.abs().sum()) > 0


def test_guided_training_steps_reduce_the_relevance_penalty() -> None:
    """A few guided steps of the real training loop (cross-entropy + weight x penalty) move the ``gae``
    relevance into the allowed region."""
    model = _vit(depth=2, dim=64, heads=4, img=64, pool="avg", seed=3)
    gen = torch.Generator().manual_seed(4)
    images = torch.randn(4, 3, 64, 64, generator=gen)
    labels = torch.tensor([0, 1, 2, 3])
    allowed = torch.zeros(4, 1, 64, 64)
    allowed[..., 16:48, 16:48] = 1  # the central 2x2 of the 4x4 patches
    weight = torch.ones(4)
    penalty = get_penalty("relevance")

    def measure() -> float:
        return float(penalty(model, images, labels, allowed, weight)[1].detach())

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    measured, logged = [measure()], []
    for epoch in range(8):  # one step per epoch, so the engine logs the penalty of every step
        train_one_epoch(model, [(images, labels, None, allowed, weight)], optimizer, nn.CrossEntropyLoss(),
                        lr_at=lambda e: 1e-3, epoch=epoch, steps_per_epoch=1, device=torch.device("cpu"),
                        amp=False, guide=penalty, guide_weight=100.0, guide_log=logged)
        measured.append(measure())
    torch.testing.assert_close(logged, measured[:-1], rtol=1e-5, atol=1e-7)  # the loop trained on this penalty
    assert all(b < a for a, b in zip(measured, measured[1:])), measured  # every step lowers it
    assert measured[-1] < 0.95 * measured[0], measured
