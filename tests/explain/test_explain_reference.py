"""``retcore.explain`` against a literal re-implementation of the authors' algorithm.

``explain_reference`` rebuilds each timm model as the authors' per-layer
relprop objects (autograd ``gradprop``, one image at a time, full rollout
matrices). Agreement in float64 is the evidence that the fast, batched,
closed-form ``lrp`` reproduces Chefer et al.'s transformer attribution on
CLS-token models; the same machinery checks the average-pool adaptation, the
full LRP to pixels and the attention baselines.
"""
from __future__ import annotations

import pytest
import torch
from explain_factories import make_images, make_vit
from explain_reference import ref_baselines, ref_explain

from retcore.explain import relevance

SHAPES = [
    pytest.param(dict(depth=2, dim=64, heads=4, patch=16, img=(64, 64)), id="d2-w64-h4-p16-64x64"),
    pytest.param(dict(depth=3, dim=96, heads=3, patch=8, img=(32, 48)), id="d3-w96-h3-p8-32x48"),
    pytest.param(dict(depth=4, dim=128, heads=2, patch=16, img=(64, 96)), id="d4-w128-h2-p16-64x96"),
    pytest.param(dict(depth=2, dim=192, heads=3, patch=16, img=(48, 48)), id="d2-w192-h3-p16-48x48"),
]

F64 = dict(rtol=0, atol=1e-8)


def _close(fast: torch.Tensor, ref: torch.Tensor, rel: float) -> None:
    fast, ref = fast.detach().double().flatten(), ref.detach().double().flatten()
    scale = ref.abs().max()
    assert scale > 0
    err = float((fast - ref).abs().max() / scale)
    assert err < rel, f"max relative deviation {err:.2e}"


@pytest.mark.parametrize("shape", SHAPES)
def test_lrp_reproduces_authors_on_cls_models(shape: dict) -> None:
    model = make_vit(pool="token", dtype=torch.float64, seed=3, **shape)
    images = make_images(2, shape["img"], dtype=torch.float64)
    for start_layer in (0, shape["depth"] - 1):
        fast = relevance(model, images, "lrp", target=[1, 3], start_layer=start_layer)
        assert fast.shape == (2, shape["img"][0] // shape["patch"], shape["img"][1] // shape["patch"])
        for i, target in enumerate((1, 3)):
            ref, _ = ref_explain(model, images[i:i + 1], target, start_layer=start_layer)
            _close(fast[i], ref[0], 1e-7)


@pytest.mark.parametrize("shape", SHAPES[:2])
def test_lrp_pixels_reproduces_authors_full_lrp(shape: dict) -> None:
    model = make_vit(pool="token", dtype=torch.float64, seed=4, **shape)
    images = make_images(2, shape["img"], dtype=torch.float64)
    fast = relevance(model, images, "lrp_pixels", target=2)
    assert fast.shape == (2, *shape["img"])
    for i in range(2):
        ref, _ = ref_explain(model, images[i:i + 1], 2, method="full")
        _close(fast[i], ref[0], 1e-7)


@pytest.mark.parametrize("double_fc_norm", [False, True], ids=["fc_norm", "double_fc_norm"])
def test_avg_pool_adaptation_matches_reference(double_fc_norm: bool) -> None:
    """RETFound heads: mean-pool relprop by gradient x input, mean of patch rows read-out."""
    shape = dict(depth=3, dim=96, heads=3, patch=16, img=(48, 64))
    model = make_vit(pool="avg", dtype=torch.float64, seed=5, double_fc_norm=double_fc_norm, **shape)
    images = make_images(2, shape["img"], dtype=torch.float64)
    fast = relevance(model, images, "lrp", target=0)
    pixels = relevance(model, images, "lrp_pixels", target=0)
    for i in range(2):
        ref, _ = ref_explain(model, images[i:i + 1], 0, double_fc_norm=double_fc_norm)
        _close(fast[i], ref[0], 1e-7)
        ref_px, _ = ref_explain(model, images[i:i + 1], 0, method="full", double_fc_norm=double_fc_norm)
        _close(pixels[i], ref_px[0], 1e-7)


def test_lrp_float32_close_to_reference() -> None:
    """float32 agrees to ~1e-4: the Add rescaling and the matmul rules divide by sums that can nearly
    cancel, so rounding of the forward activations is amplified (the authors' code behaves alike)."""
    shape = dict(depth=2, dim=64, heads=4, patch=16, img=(64, 64))
    model32 = make_vit(pool="token", seed=6, **shape)
    model64 = make_vit(pool="token", dtype=torch.float64, seed=6, **shape)
    images = make_images(1, shape["img"], dtype=torch.float64)
    ref, _ = ref_explain(model64, images, 1)
    _close(relevance(model32, images.float(), "lrp", target=1)[0], ref[0], 1e-3)


@pytest.mark.parametrize("pool", ["token", "avg"])
@pytest.mark.parametrize("shape", [SHAPES[1], SHAPES[2]])
def test_baselines_match_reference_formulas(pool: str, shape: dict) -> None:
    """rollout (row-normalised), raw attention, Grad-CAM (over heads for CLS heads, on the pooled tokens
    for average-pool heads), GAE — from the authors' / pytorch-grad-cam's definitions."""
    model = make_vit(pool=pool, dtype=torch.float64, seed=7, **shape)
    images = make_images(2, shape["img"], dtype=torch.float64)
    for start_layer in (0, 1):
        fast = {m: relevance(model, images, m, target=4, start_layer=start_layer)
                for m in ("rollout", "attention", "gradcam", "gae")}
        for i in range(2):
            ref = ref_baselines(model, images[i:i + 1], 4, start_layer=start_layer)
            for name, value in ref.items():
                torch.testing.assert_close(fast[name][i].flatten(), value[0], **F64, msg=name)
