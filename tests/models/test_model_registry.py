"""Registry names build the right timm ViTs; bad names and options fail clearly."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from timm.models.vision_transformer import VisionTransformer

from retcore.errors import RetcoreError
from retcore.models import (
    MODEL_REGISTRY,
    ModelConfigError,
    UnknownModelError,
    build_vit,
    create_model,
    list_models,
    register_model,
)
from retcore.models import vit as vit_module

EXPECTED = {
    # name: (patch, dim, depth, heads, default drop_path, layer scale)
    "retfound_mae": (16, 1024, 24, 16, 0.2, False),
    "retfound_dinov2": (14, 1024, 24, 16, 0.2, True),
    "vit_tiny": (16, 192, 12, 3, 0.1, False),
    "vit_small": (16, 384, 12, 6, 0.1, False),
    "vit_base": (16, 768, 12, 12, 0.1, False),
    "demo": (16, 192, 4, 3, 0.1, False),
}


def test_list_models_has_every_builtin() -> None:
    assert list_models()[:len(EXPECTED)] == list(EXPECTED)  # registration order (retcore.models.vit)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_registered_architecture(name: str) -> None:
    patch, dim, depth, heads, drop_path, layer_scale = EXPECTED[name]
    with torch.device("meta"):  # no memory for ViT-L; shapes and config only
        model = create_model(name, 5)
    assert isinstance(model, VisionTransformer)
    assert model.retcore_name == name
    assert model.patch_embed.patch_size == (patch, patch)
    assert model.embed_dim == dim and len(model.blocks) == depth
    block = model.blocks[0]
    assert block.attn.num_heads == heads
    assert block.mlp.fc1.out_features == 4 * dim
    assert block.attn.qkv.bias is not None
    assert block.norm1.eps == 1e-6 and model.fc_norm.eps == 1e-6
    assert model.num_prefix_tokens == 1 and model.reg_token is None
    grid = 224 // patch
    assert tuple(model.pos_embed.shape) == (1, 1 + grid * grid, dim)
    assert model.head.out_features == 5
    assert isinstance(model.norm, torch.nn.Identity)  # avg pool -> fc_norm head
    assert hasattr(block.ls1, "gamma") == layer_scale
    assert model.blocks[-1].drop_path1.drop_prob == pytest.approx(drop_path)


def test_dinov2_layer_scale_init() -> None:
    spec = replace(vit_module.RETFOUND_DINOV2_SPEC, depth=1, embed_dim=64, num_heads=4)
    model = build_vit(spec, 2, img_size=56)
    assert torch.allclose(model.blocks[0].ls1.gamma, torch.full((64,), 1e-5))


def test_small_model_forward_and_head_init() -> None:
    torch.manual_seed(0)
    model = create_model("vit_tiny", 4, img_size=64, drop_path=0.0)
    assert model.head.bias.abs().max() == 0
    assert 1e-5 < model.head.weight.std().item() < 4e-5
    out = model.eval()(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 4)


def test_drop_path_override_and_token_pool() -> None:
    model = create_model("demo", 3, img_size=32, drop_path=0.3, global_pool="token")
    assert model.blocks[-1].drop_path1.drop_prob == pytest.approx(0.3)
    assert model.global_pool == "token"
    assert isinstance(model.fc_norm, torch.nn.Identity) and isinstance(model.norm, torch.nn.LayerNorm)


def test_demo_spec_is_easy_to_change(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vit_module, "DEMO_SPEC", replace(vit_module.DEMO_SPEC, depth=2, embed_dim=96))
    model = create_model("demo", 2, img_size=32)
    assert len(model.blocks) == 2 and model.embed_dim == 96


def test_unknown_name_lists_the_choices() -> None:
    with pytest.raises(UnknownModelError) as info:
        create_model("retfound_large", 2)
    assert isinstance(info.value, RetcoreError) and isinstance(info.value, ValueError)
    message = str(info.value)
    assert "retfound_large" in message
    for name in EXPECTED:
        assert name in message


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"global_pool": "max"}, "global_pool"),
        ({"global_pool": "token", "double_fc_norm": True}, "double_fc_norm"),
        ({"img_size": 100}, "multiple of the patch size"),
        ({"drop_path": 1.5}, "drop_path"),
    ],
)
def test_bad_options(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ModelConfigError, match=fragment):
        create_model("demo", 2, **kwargs)  # type: ignore[arg-type]


def test_register_model_decorator() -> None:
    try:
        @register_model("unit_test_vit")
        def unit_test_vit(num_classes: int, **options: object) -> VisionTransformer:
            return build_vit(replace(vit_module.DEMO_SPEC, depth=1), num_classes, **options)  # type: ignore[arg-type]

        assert "unit_test_vit" in list_models()
        model = create_model("unit_test_vit", 2, img_size=32)
        assert len(model.blocks) == 1 and model.retcore_name == "unit_test_vit"
        with pytest.raises(ValueError, match="already registered"):
            register_model("unit_test_vit")(lambda num_classes, **o: None)  # type: ignore[arg-type,return-value]
    finally:
        if "unit_test_vit" in MODEL_REGISTRY:
            MODEL_REGISTRY.unregister("unit_test_vit")


def test_non_square_image_size() -> None:
    model = create_model("demo", 2, img_size=(32, 64))
    assert model.patch_embed.grid_size == (2, 4)
    assert model.eval()(torch.randn(1, 3, 32, 64)).shape == (1, 2)


@pytest.mark.parametrize(
    ("name", "timm_name"),
    [("retfound_dinov2", "vit_large_patch14_dinov2"), ("retfound_mae", "vit_large_patch16_224")],
)
def test_same_parameters_as_timm_reference(name: str, timm_name: str) -> None:
    import timm

    with torch.device("meta"):
        ours = create_model(name, 5, global_pool="token")
        ref = timm.create_model(timm_name, pretrained=False, img_size=224, num_classes=5)
    ours_shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    ref_shapes = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    assert ours_shapes == ref_shapes
    assert ours.blocks[0].norm1.eps == ref.blocks[0].norm1.eps == 1e-6
