"""The avg head excludes CLS and applies fc_norm; the token head; double fc_norm."""
from __future__ import annotations

from collections.abc import Callable

import torch

from retcore.models import DoubleFcNormVisionTransformer, init_head, uses_double_fc_norm


def _randomise_fc_norm(model: torch.nn.Module) -> None:
    with torch.no_grad():
        model.fc_norm.weight.uniform_(0.5, 1.5)
        model.fc_norm.bias.uniform_(-0.5, 0.5)
        model.head.weight.normal_(0, 0.1)


def test_avg_pool_excludes_cls_and_applies_fc_norm(make_tiny: Callable[..., torch.nn.Module],
                                                   images: torch.Tensor) -> None:
    model = make_tiny()
    _randomise_fc_norm(model)
    assert isinstance(model.norm, torch.nn.Identity)
    with torch.no_grad():
        tokens = model.forward_features(images)  # (B, 1 + 16, D), no final norm
        assert tokens.shape == (2, 17, 64)
        expected = model.head(model.fc_norm(tokens[:, 1:].mean(dim=1)))
        with_cls = model.head(model.fc_norm(tokens.mean(dim=1)))
        logits = model(images)
    torch.testing.assert_close(logits, expected, rtol=0, atol=1e-6)
    assert not torch.allclose(logits, with_cls, atol=1e-4)


def test_token_pool_reads_cls_after_norm(make_tiny: Callable[..., torch.nn.Module], images: torch.Tensor) -> None:
    model = make_tiny(global_pool="token")
    assert isinstance(model.fc_norm, torch.nn.Identity)
    with torch.no_grad():
        tokens = model.forward_features(images)  # final norm applied
        blocks_out = model.blocks(model._pos_embed(model.patch_embed(images)))
        torch.testing.assert_close(tokens, model.norm(blocks_out))
        torch.testing.assert_close(model(images), model.head(tokens[:, 0]))


def test_double_fc_norm(make_tiny: Callable[..., torch.nn.Module], images: torch.Tensor) -> None:
    single = make_tiny()
    _randomise_fc_norm(single)
    double = make_tiny(double_fc_norm=True)
    assert isinstance(double, DoubleFcNormVisionTransformer) and uses_double_fc_norm(double)
    assert not uses_double_fc_norm(single)
    assert single.state_dict().keys() == double.state_dict().keys()
    double.load_state_dict(single.state_dict())
    with torch.no_grad():
        pooled = double.forward_features(images)[:, 1:].mean(dim=1)
        expected = double.head(double.fc_norm(double.fc_norm(pooled)))
        out = double(images)
        torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
        torch.testing.assert_close(double.forward_head(double.forward_features(images), pre_logits=True),
                                   double.fc_norm(double.fc_norm(pooled)))
        assert not torch.allclose(out, single(images), atol=1e-4)


def test_init_head(make_tiny: Callable[..., torch.nn.Module]) -> None:
    model = make_tiny(num_classes=10)
    with torch.no_grad():
        model.head.weight.fill_(1.0)
        model.head.bias.fill_(1.0)
    assert init_head(model)
    assert model.head.bias.abs().max() == 0
    assert model.head.weight.abs().max() < 1e-3
    assert not init_head(make_tiny(num_classes=0))
