"""The convolutional patch embedding of the demo ViT."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from retcore.models import create_model
from retcore.models.registry import ModelConfigError
from retcore.models.stem import ConvStem, ConvStemPatchEmbed
from retcore.models.vit import DEMO_SPEC, build_vit


def test_conv_stem_keeps_the_token_grid() -> None:
    stem = ConvStem(3, 64, 16)
    convs = [m for m in stem if isinstance(m, nn.Conv2d)]
    assert [c.stride for c in convs] == [(2, 2)] * 4 + [(1, 1)]
    assert [c.out_channels for c in convs] == [8, 16, 32, 64, 64]
    assert stem(torch.randn(2, 3, 64, 48)).shape == (2, 64, 4, 3)


def test_demo_model_uses_the_conv_stem_and_runs() -> None:
    model = create_model("demo", 4, img_size=64)
    assert DEMO_SPEC.stem == "conv"
    assert isinstance(model.patch_embed, ConvStemPatchEmbed) and isinstance(model.patch_embed.proj, ConvStem)
    assert model.patch_embed.grid_size == (4, 4)
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 4)
    names = set(model.state_dict())
    assert "patch_embed.proj.0.weight" in names and "patch_embed.proj.1.running_mean" in names


def test_patch_stem_and_bad_stem() -> None:
    plain = build_vit(dataclasses.replace(DEMO_SPEC, stem="patch"), 4, img_size=64)
    assert isinstance(plain.patch_embed.proj, nn.Conv2d)
    with pytest.raises(ModelConfigError, match="unknown stem"):
        build_vit(dataclasses.replace(DEMO_SPEC, stem="resnet"), 4, img_size=64)
    with pytest.raises(ValueError, match="power-of-two"):
        ConvStem(3, 64, 14)
