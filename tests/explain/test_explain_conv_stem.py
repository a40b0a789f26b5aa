"""LRP to pixels through the convolutional patch embedding (``conv_stem_rule``)."""
from __future__ import annotations

import torch
from torch import nn

from retcore.explain import relevance
from retcore.explain.rules import conv_stem_rule
from retcore.models import create_model
from retcore.models.stem import ConvStem


def _stem_without_biases(seed: int = 0) -> ConvStem:
    torch.manual_seed(seed)
    stem = ConvStem(3, 32, 4).eval()
    with torch.no_grad():
        for m in stem.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.zero_()
                m.running_var.fill_(1.0 - m.eps)
                m.weight.uniform_(0.5, 1.5)
                m.bias.zero_()
            elif isinstance(m, nn.Conv2d) and m.bias is not None:
                m.bias.zero_()
    return stem


def test_conv_stem_rule_conserves_relevance_without_biases() -> None:
    stem = _stem_without_biases()
    image = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    out = stem.double()(image)
    r_out = out.clamp(min=0)  # positive output relevance
    r_in = conv_stem_rule(stem, image, r_out)
    assert r_in.shape == image.shape
    # z+ and z^B layers with zero biases conserve relevance exactly (up to the epsilon)
    torch.testing.assert_close(r_in.sum((1, 2, 3)), r_out.sum((1, 2, 3)), rtol=1e-6, atol=1e-8)


def test_conv_stem_rule_is_local() -> None:
    """Relevance on one output cell only lands in that cell's receptive field."""
    stem = _stem_without_biases(1).double()
    image = torch.randn(1, 3, 16, 16, dtype=torch.float64)
    out = stem(image)
    r_out = torch.zeros_like(out)
    r_out[0, :, 0, 0] = 1.0
    r_in = conv_stem_rule(stem, image, r_out).abs().sum(1)[0]
    assert r_in[:8, :8].sum() > 0.99 * r_in.sum()


def test_every_method_explains_the_conv_stem_demo_model() -> None:
    torch.manual_seed(0)
    model = create_model("demo", 4, img_size=64).eval()
    images = torch.randn(2, 3, 64, 64)
    pixels = relevance(model, images, "lrp_pixels")
    assert pixels.shape == (2, 64, 64) and torch.isfinite(pixels).all() and pixels.abs().sum() > 0
    tokens = relevance(model, images, "lrp")
    assert tokens.shape == (2, 4, 4) and torch.isfinite(tokens).all()
