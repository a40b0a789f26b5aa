"""Hooks only inside ``capture``: logits unchanged, the model restored exactly, clear errors."""
from __future__ import annotations

import pytest
import torch
from explain_factories import make_images, make_vit
from torch import nn

from retcore.errors import RetcoreError
from retcore.explain import UnsupportedModelError, capture, inspect_vit, list_methods, relevance


def _hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


def _state(model: nn.Module) -> tuple:
    return (
        [m.training for m in model.modules()],
        [p.requires_grad for p in model.parameters()],
        [blk.attn.fused_attn for blk in model.blocks],
        _hook_count(model),
        [p.grad for p in model.parameters()],
    )


def test_logits_unchanged_with_hooks_attached() -> None:
    model = make_vit(depth=3, dim=64, heads=4, patch=16, img=(32, 48), pool="avg", seed=1)
    images = make_images(2, (32, 48))
    with torch.no_grad():
        fused = model(images)
        for blk in model.blocks:
            blk.attn.fused_attn = False
        explicit = model(images)
        for blk in model.blocks:
            blk.attn.fused_attn = True
    layers = range(3)
    with capture(model, attention_layers=layers, grad_layers=layers, activation_layers=layers, head=True,
                 embedding=True) as rec:
        assert all(not blk.attn.fused_attn for blk in model.blocks)
        with torch.enable_grad():
            hooked = model(images)
    assert torch.equal(hooked.detach(), explicit)  # hooks only read
    torch.testing.assert_close(hooked.detach(), fused, rtol=1e-5, atol=1e-5)  # fused vs explicit attention
    assert rec.attention(0).shape == (2, 4, 7, 7) and rec.attention(0).requires_grad
    assert torch.equal(rec.head.logits, explicit)
    a = rec.attention(2).detach()
    torch.testing.assert_close(a.sum(-1), torch.ones(2, 4, 7))


def test_model_state_restored_exactly() -> None:
    model = make_vit(depth=3, dim=64, heads=4, patch=16, img=(32, 32), pool="token", seed=2)
    model.train()
    model.blocks[1].eval()  # a mixed train/eval state must come back as it was
    model.blocks[0].attn.fused_attn = False
    model.pos_embed.requires_grad_(False)
    model.register_forward_hook(lambda *args: None)  # a user's hook stays
    before = _state(model)
    images = make_images(2, (32, 32))
    for name in list_methods():
        relevance(model, images, name)
        assert _state(model) == before, name
    assert all(p.grad is None for p in model.parameters())  # no parameter gradients were taken


def test_state_restored_after_an_error() -> None:
    model = make_vit(depth=2, dim=32, heads=2, patch=16, img=(32, 32))
    before = _state(model)
    with pytest.raises(RuntimeError, match="boom"), capture(model, attention_layers=[0, 1], activation_layers=[1]):
        assert _hook_count(model) > 0
        raise RuntimeError("boom")
    assert _state(model) == before


def test_train_mode_model_is_explained_in_eval_mode() -> None:
    model = make_vit(depth=2, dim=32, heads=2, patch=16, img=(32, 32), drop_rate=0.5, attn_drop_rate=0.5,
                     drop_path_rate=0.5)
    images = make_images(2, (32, 32))
    reference = relevance(model.eval(), images, "lrp")
    model.train()
    torch.testing.assert_close(relevance(model, images, "lrp"), reference)
    assert model.training


def test_non_vit_and_unsupported_heads_are_refused() -> None:
    images = make_images(1, (32, 32))
    cnn = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(UnsupportedModelError, match="not a timm VisionTransformer"):
        relevance(cnn, images)
    assert issubclass(UnsupportedModelError, RetcoreError)
    for kwargs, match in (
        (dict(pool="max"), "global_pool='max'"),
        (dict(pool="map"), "global_pool='map'"),
        (dict(classes=0), "no linear classification head"),
    ):
        model = make_vit(depth=1, dim=32, heads=2, patch=16, img=(32, 32), **kwargs)
        with pytest.raises(UnsupportedModelError, match=match):
            relevance(model, images)
    with pytest.raises(UnsupportedModelError, match="Block"):
        inspect_vit(make_vit(depth=1, dim=32, heads=2, patch=16, img=(32, 32), block_fn=_res_post_block()))


def _res_post_block():
    from timm.models.vision_transformer import ResPostBlock

    return ResPostBlock


def test_bad_images_are_refused() -> None:
    model = make_vit(depth=1, dim=32, heads=2, patch=16, img=(32, 32))
    with pytest.raises(RetcoreError, match="batch dimension"):
        relevance(model, make_images(1, (32, 32))[0])
    with pytest.raises(RetcoreError, match="multiple of 16"):
        relevance(model, make_images(1, (30, 32)))


def test_inplace_activations_are_refused_for_lrp() -> None:
    model = make_vit(depth=1, dim=32, heads=2, patch=16, img=(32, 32), init_values=0.1)
    model.blocks[0].ls2.inplace = True
    images = make_images(1, (32, 32))
    assert relevance(model, images, "rollout").shape == (1, 2, 2)  # attention-only methods are unaffected
    with pytest.raises(UnsupportedModelError, match="in-place"):
        relevance(model, images, "lrp")


def test_trainable_capture_keeps_the_training_state() -> None:
    """``trainable=True`` (training losses built from explanations): mode and ``requires_grad``
    untouched, the recorded attention carries its graph to the parameters, hooks and fused flags
    restored on exit."""
    model = make_vit(depth=2, dim=32, heads=2, patch=16, img=(32, 32))
    model.train()
    model.pos_embed.requires_grad_(False)
    before = _state(model)
    with capture(model, attention_layers=[0, 1], grad_layers=[1], trainable=True) as rec:
        assert model.training and not any(blk.attn.fused_attn for blk in model.blocks)
        assert [p.requires_grad for p in model.parameters()] == before[1]
        model(make_images(2, (32, 32)))
    attn = rec.attention(1)
    assert attn.grad_fn is not None  # not a leaf copy: the graph runs back to the weights
    attn.sum().backward()
    assert model.blocks[1].attn.qkv.weight.grad is not None and model.pos_embed.grad is None
    model.zero_grad(set_to_none=True)
    assert _state(model) == before
