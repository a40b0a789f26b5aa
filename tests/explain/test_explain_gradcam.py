"""Grad-CAM per head type, and saying plainly when a method cannot explain a model.

Average-pool heads (RETFound): Grad-CAM on the tokens the pool reads (pytorch-grad-cam's
recipe for ViTs). Before, ``gradcam`` used Chefer's head-wise baseline with the mean read-out
there, and most maps of a trained average-pool model had no positive mass at all (on the toy
problem below: 32 of 64; on the demo model: 76 of 96 empty).
"""
from __future__ import annotations

import pytest
import torch
from explain_factories import make_images, make_vit
from torch import nn
from torch.nn import functional as F

from retcore.errors import RetcoreError
from retcore.explain import (
    GradCAMMethod,
    Needs,
    UnknownMethodError,
    UnsupportedMethodError,
    UnsupportedModelError,
    capture,
    explain_support,
    inspect_vit,
    list_methods,
    relevance,
)
from retcore.explain.methods import gradcam_tokens


def _toy_batch(n: int, seed: int, size: int = 32, patch: int = 8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Noise images with one decisive patch: bright (+2) for class 1, dark (-2) for class 0.

    Returns images (n, 3, size, size), labels (n,) and the decisive token's index (n,) on the grid.
    """
    gen = torch.Generator().manual_seed(seed)
    images = 0.3 * torch.randn(n, 3, size, size, generator=gen)
    labels = torch.randint(0, 2, (n,), generator=gen)
    grid = size // patch
    where = torch.randint(0, grid * grid, (n,), generator=gen)
    for i in range(n):
        r, c = divmod(int(where[i]), grid)
        images[i, :, r * patch:(r + 1) * patch, c * patch:(c + 1) * patch] += 2.0 if labels[i] else -2.0
    return images, labels, where


@pytest.fixture(scope="module")
def toy_model() -> nn.Module:
    """A depth-2, dim-64 average-pool ViT (fc_norm) trained 60 AdamW steps (~2 s) on the toy problem."""
    model = make_vit(depth=2, dim=64, heads=4, patch=8, img=(32, 32), pool="avg", classes=2, seed=0).train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(60):
        images, labels, _ = _toy_batch(32, 100 + step)
        loss = F.cross_entropy(model(images), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def test_gradcam_on_a_trained_avg_pool_vit_finds_the_decisive_token(toy_model: nn.Module) -> None:
    images, labels, where = _toy_batch(64, 9)
    with torch.no_grad():
        assert (toy_model(images).argmax(-1) == labels).float().mean() > 0.95
    maps = relevance(toy_model, images, "gradcam", target=labels)
    assert maps.shape == (64, 4, 4) and maps.dtype == torch.float32 and (maps >= 0).all()
    flat = maps.flatten(1)
    positive = (flat.sum(1) > 0).float().mean()
    assert positive >= 0.95, f"only {positive:.0%} of the maps have positive mass"
    rank = (flat > flat.gather(1, where[:, None])).sum(1)  # 0 = the decisive token has the most relevance
    assert (rank == 0).float().mean() >= 0.9 and (rank <= 2).all(), rank.tolist()


def test_avg_pool_gradcam_is_cam_of_the_pooled_tokens() -> None:
    """Grad-CAM on the tokens the pool reads equals CAM: ReLU(A_t . g) / Np with g = d logit / d pooled
    vector; with fc_norm the unrectified map sums to ~zero, so every map of a random model has positive mass."""
    model = make_vit(depth=3, dim=96, heads=3, patch=16, img=(48, 64), pool="avg", seed=11, dtype=torch.float64)
    images = make_images(6, (48, 64), dtype=torch.float64)
    maps = relevance(model, images, "gradcam", target=2)
    with capture(model, features=True) as rec, torch.enable_grad():
        model(images)
        tokens = rec.features().detach()
    pooled = tokens[:, 1:].mean(1).requires_grad_(True)
    (g,) = torch.autograd.grad(model.head(model.fc_norm(pooled))[:, 2].sum(), pooled)
    cam = torch.einsum("bnd,bd->bn", tokens[:, 1:], g) / tokens[:, 1:].shape[1]
    # LayerNorm ignores a shift of its input and (up to its eps) a rescaling: g . pooled ~ 0
    assert (cam.sum(1).abs() < 1e-3 * cam.abs().sum(1)).all()
    torch.testing.assert_close(maps.flatten(1), cam.clamp(min=0), rtol=1e-10, atol=1e-14)
    assert (maps.flatten(1).sum(1) > 0).all()


def test_gradcam_tokens_averages_the_gradients_of_the_pooled_tokens_only() -> None:
    features = torch.tensor([[[5.0, 5.0], [1.0, 0.0], [0.0, 2.0]]])  # (1, N=3, D=2), token 0 = CLS
    grads = torch.tensor([[[9.0, 9.0], [1.0, -1.0], [3.0, -1.0]]])  # CLS gradient must not count
    out = gradcam_tokens(features, grads, slice(1, None), 1)  # w = (2, -1)
    torch.testing.assert_close(out, torch.tensor([[2.0, 0.0]]))  # (1*2 + 0*-1, ReLU(0*2 + 2*-1))
    with_prefix = gradcam_tokens(features, grads, slice(0, None), 1)  # pool_include_prefix: w = (13/3, 7/3)
    torch.testing.assert_close(with_prefix, torch.tensor([[13 / 3, 14 / 3]]))


def test_gradcam_chooses_its_definition_by_head_type() -> None:
    cls_info = inspect_vit(make_vit(depth=3, dim=64, heads=4, patch=16, img=(32, 32), pool="token"))
    avg_info = inspect_vit(make_vit(depth=3, dim=64, heads=4, patch=16, img=(32, 32), pool="avg"))
    method = GradCAMMethod()
    assert method.needs(avg_info, 0) == Needs(features=True)  # no attention map is made explicit
    assert method.needs(cls_info, 1) == Needs(attention=(2,), gradients=(2,))


def test_cls_gradcam_is_unchanged() -> None:
    """CLS heads keep Chefer's baseline: heads of the last attention map, weighted by the mean of the
    CLS row of dA (computed here from the captured maps, independently of retcore's method)."""
    model = make_vit(depth=2, dim=64, heads=4, patch=16, img=(48, 32), pool="token", seed=5, dtype=torch.float64)
    images = make_images(3, (48, 32), dtype=torch.float64)
    maps = relevance(model, images, "gradcam", target=[0, 1, 4])
    with capture(model, attention_layers=[1], grad_layers=[1]) as rec, torch.enable_grad():
        logits = model(images)
        (d_attn,) = torch.autograd.grad(logits[[0, 1, 2], [0, 1, 4]].sum(), [rec.attention(1)])
        rows = rec.attention(1).detach()[:, :, 0, 1:]  # (B, H, Np): CLS rows
    expected = (rows * d_attn[:, :, 0, 1:].mean(-1, keepdim=True)).mean(1).clamp(min=0)
    assert maps.shape == (3, 3, 2) and maps.dtype == torch.float64
    torch.testing.assert_close(maps.flatten(1), expected, rtol=1e-12, atol=1e-15)
    patch_grad = _last_block_patch_gradient(model, images)
    assert patch_grad == 0  # why CLS heads cannot use Grad-CAM on the last block's tokens


def _last_block_patch_gradient(model: nn.Module, images: torch.Tensor) -> float:
    with capture(model, features=True) as rec, torch.enable_grad():
        logits = model(images)
        (g,) = torch.autograd.grad(logits.sum(), [rec.features()])
    return float(g[:, 1:].abs().max())


@pytest.mark.parametrize("kwargs", [
    dict(pool="avg", img=(32, 48)),
    dict(pool="avg", img=(32, 48), reg_tokens=2, no_embed_class=True),
    dict(pool="avg", img=(32, 48), class_token=False),
    dict(pool="avg", img=(32, 48), pool_include_prefix=True),
    dict(pool="token", img=(48, 32)),
], ids=["avg", "avg-registers", "avg-no-cls", "avg-pool-prefix", "cls"])
def test_relevance_contract_is_kept(kwargs: dict) -> None:
    model = make_vit(depth=2, dim=64, heads=2, patch=16, seed=3, **kwargs)
    images = make_images(2, kwargs["img"])
    grid = (kwargs["img"][0] // 16, kwargs["img"][1] // 16)
    maps = relevance(model, images, "gradcam")
    assert maps.shape == (2, *grid) and maps.dtype == torch.float32 and not maps.requires_grad
    assert torch.isfinite(maps).all() and (maps >= 0).all() and (maps.flatten(1).sum(1) > 0).all()
    torch.testing.assert_close(maps, torch.cat([relevance(model, images[i:i + 1], "gradcam") for i in range(2)]))
    assert all(p.requires_grad for p in model.parameters())  # capture restored the model


def test_gradcam_on_the_trained_demo_model(tiny_pipeline) -> None:
    """The demo model fine-tuned by the tiny pipeline (RETFound's average-pool head): every test map
    has positive mass, so zone scores exist."""
    from jobs._runs import find_trained_run, load_trained_model, run_images
    from retcore.data import build_eval_transform, load_rgb

    trained = find_trained_run(tiny_pipeline["db"], tiny_pipeline["run_id"])
    model, meta = load_trained_model(trained.checkpoint)
    assert meta["global_pool"] == "avg"
    paths = run_images(tiny_pipeline["db"], trained.dataset_id, "test")["path"]
    transform = build_eval_transform(64)
    images = torch.stack([transform(load_rgb(p)) for p in paths])
    maps = relevance(model, images, "gradcam").flatten(1)
    assert len(maps) >= 5 and (maps.sum(1) > 0).all()


def test_explain_support_says_why() -> None:
    model = make_vit(depth=2, dim=32, heads=2, patch=16, img=(32, 32), init_values=0.1)
    for name in list_methods():
        assert explain_support(model, name) is None, name
    model.blocks[1].ls2.inplace = True
    images = make_images(1, (32, 32))
    for name in list_methods():
        reason = explain_support(model, name)
        if name in ("lrp", "lrp_pixels"):  # they record every block's activations
            assert reason is not None and "block 1" in reason and "in-place" in reason and "\n" not in reason
            with pytest.raises(UnsupportedMethodError) as raised:
                relevance(model, images, name)
            assert str(raised.value) == reason
        else:
            assert reason is None, name
            assert relevance(model, images, name).shape == (1, 2, 2)
    assert explain_support(model, "lrp", start_layer=1) is not None
    assert "start_layer 2" in explain_support(model, "gae", start_layer=2)
    cnn = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    assert "not a timm VisionTransformer" in explain_support(cnn, GradCAMMethod())
    with pytest.raises(UnknownMethodError):
        explain_support(model, "lime")
    assert issubclass(UnsupportedMethodError, UnsupportedModelError)
    assert issubclass(UnsupportedMethodError, RetcoreError)
