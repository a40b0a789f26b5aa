"""Every registered method on tiny ViTs of several shapes: shapes, batching, determinism, registry."""
from __future__ import annotations

import pytest
import torch
from explain_factories import make_images, make_vit

from retcore.errors import RetcoreError
from retcore.explain import (
    METHOD_REGISTRY,
    Method,
    Trace,
    UnknownMethodError,
    get_method,
    list_methods,
    register_method,
    relevance,
)
from retcore.models import create_model

BUILTIN = ["rollout", "attention", "gradcam", "gae", "lrp", "lrp_pixels"]  # registration order

MODELS = [
    pytest.param(dict(depth=2, dim=64, heads=4, patch=16, img=(64, 96)), id="d2-w64-p16-64x96"),
    pytest.param(dict(depth=3, dim=96, heads=2, patch=8, img=(40, 32)), id="d3-w96-p8-40x32"),
    pytest.param(dict(depth=4, dim=192, heads=3, patch=16, img=(48, 48)), id="d4-w192-p16-48x48"),
]


def test_registry_lists_the_methods() -> None:
    assert list_methods() == BUILTIN
    assert list(METHOD_REGISTRY) == BUILTIN
    with pytest.raises(UnknownMethodError, match="choose one of"):
        get_method("lime")
    assert issubclass(UnknownMethodError, RetcoreError)


@pytest.mark.parametrize("pool", ["token", "avg"])
@pytest.mark.parametrize("shape", MODELS)
def test_every_method_runs_and_batches(shape: dict, pool: str) -> None:
    """float64, so that "batch == one by one" checks the batching logic, not float32 rounding
    (which LRP amplifies where sums nearly cancel)."""
    model = make_vit(pool=pool, seed=1, dtype=torch.float64, **shape)
    images = make_images(3, shape["img"], dtype=torch.float64)
    grid = (shape["img"][0] // shape["patch"], shape["img"][1] // shape["patch"])
    for name in list_methods():
        maps = relevance(model, images, name)
        expected = (3, *shape["img"]) if name == "lrp_pixels" else (3, *grid)
        assert maps.shape == expected, name
        assert maps.dtype == torch.float64 and not maps.requires_grad
        assert torch.isfinite(maps).all(), name
        assert maps.abs().sum() > 0, name
        # a batch gives the same maps as one image at a time (a batching bug is off by O(max); the
        # float64 summation order of BLAS kernels, which varies with thread count and load, moves
        # lrp_pixels' nearly cancelling sums by up to ~1e-10 of the max)
        single = torch.cat([relevance(model, images[i:i + 1], name) for i in range(3)])
        torch.testing.assert_close(maps, single, rtol=1e-9, atol=1e-9 * float(maps.abs().max()), msg=name)


def test_float32_model_gives_float32_maps() -> None:
    model = make_vit(depth=2, dim=64, heads=4, patch=16, img=(32, 48), pool="avg", seed=5)
    images = make_images(2, (32, 48))
    for name in list_methods():
        maps = relevance(model, images, name)
        assert maps.dtype == torch.float32 and torch.isfinite(maps).all(), name
        single = torch.cat([relevance(model, images[i:i + 1], name) for i in range(2)])
        torch.testing.assert_close(maps, single, rtol=1e-3, atol=1e-3 * float(maps.abs().max()), msg=name)


def test_methods_are_deterministic() -> None:
    model = make_vit(depth=3, dim=64, heads=4, patch=16, img=(48, 64), pool="avg", seed=2)
    images = make_images(2, (48, 64))
    for name in list_methods():
        assert torch.equal(relevance(model, images, name), relevance(model, images, name)), name


def test_start_layer() -> None:
    model = make_vit(depth=3, dim=64, heads=4, patch=16, img=(32, 32), pool="token", seed=3)
    images = make_images(2, (32, 32))
    for name in ("lrp", "gae", "rollout"):
        assert not torch.allclose(relevance(model, images, name, start_layer=0),
                                  relevance(model, images, name, start_layer=2)), name
    for bad in (-1, 3):
        with pytest.raises(RetcoreError, match="start_layer"):
            relevance(model, images, "lrp", start_layer=bad)


def test_retcore_models_with_prefix_and_register_tokens() -> None:
    """The registry's RETFound-style ``demo`` model, a double-fc_norm head, register tokens without
    position embedding on the prefix, no class token."""
    torch.manual_seed(0)
    models = [
        create_model("demo", 3, img_size=64, global_pool="avg").eval(),
        create_model("demo", 3, img_size=64, global_pool="avg", double_fc_norm=True).eval(),
        create_model("demo", 3, img_size=(32, 64), global_pool="token").eval(),
        make_vit(depth=2, dim=32, heads=2, patch=16, img=(32, 48), pool="avg", reg_tokens=2, no_embed_class=True),
        make_vit(depth=2, dim=32, heads=2, patch=16, img=(32, 48), pool="avg", class_token=False),
    ]
    with torch.no_grad():  # the RETFound head init (std 2e-5) leaves gradient maps of a fresh model ~0
        for model in models[:3]:
            model.head.weight.normal_(0, 0.5)
    for model in models:
        size = tuple(model.patch_embed.img_size)
        images = make_images(2, size)
        for name in list_methods():
            maps = relevance(model, images, name)
            grid = tuple(model.patch_embed.grid_size)
            assert maps.shape == ((2, *size) if name == "lrp_pixels" else (2, *grid)), name
            assert torch.isfinite(maps).all() and maps.abs().sum() > 0, name


def test_bf16_autocast() -> None:
    """Attention-based methods follow the autocast; the LRP ones run in float32 regardless."""
    model = make_vit(depth=2, dim=64, heads=4, patch=16, img=(32, 32), pool="avg", seed=4)
    images = make_images(2, (32, 32))
    for name in list_methods():
        ref = relevance(model, images, name, target=1)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = relevance(model, images, name, target=1)
        assert low.dtype == torch.float32 and torch.isfinite(low).all()
        if name.startswith("lrp"):
            torch.testing.assert_close(low, ref)
        else:
            corr = torch.corrcoef(torch.stack([ref.flatten(), low.flatten()]))[0, 1]
            assert corr > 0.9, (name, float(corr))


def test_register_a_custom_method() -> None:
    @register_method("test_cls_attention_sum")
    class Custom(Method):
        attention = "all"

        def compute(self, trace: Trace) -> torch.Tensor:
            return sum(trace.attention(i).mean(1)[:, 0, 1:] for i in range(trace.info.depth))

    try:
        model = make_vit(depth=2, dim=32, heads=2, patch=16, img=(32, 32))
        maps = relevance(model, make_images(2, (32, 32)), "test_cls_attention_sum")
        assert maps.shape == (2, 2, 2)
        torch.testing.assert_close(maps.sum((1, 2)), torch.full((2,), 2.0) - maps.new_tensor(0) - _cls_self(model))
        with pytest.raises(ValueError, match="already registered"):
            register_method("lrp")(Custom)
    finally:
        METHOD_REGISTRY.unregister("test_cls_attention_sum")


def _cls_self(model: torch.nn.Module) -> torch.Tensor:
    """Attention of CLS on itself, summed over blocks (the complement of the CLS row's patch mass)."""
    from retcore.explain import capture

    with capture(model, attention_layers=range(2)) as rec, torch.no_grad():
        model(make_images(2, (32, 32)))
    return sum(rec.attention(i).mean(1)[:, 0, 0] for i in range(2))
