"""Layer-wise lr decay groups (BEiT style, as in RETFound fine-tuning)."""
from __future__ import annotations

import pytest
import torch

from retcore.models import ViTSpec, build_vit
from retcore.train.lr_decay import layer_id_for, param_groups_lrd

DECAY = 0.65


@pytest.fixture
def model() -> torch.nn.Module:
    spec = ViTSpec(patch_size=16, embed_dim=64, depth=2, num_heads=4, drop_path=0.0)
    return build_vit(spec, 3, img_size=32)


def _group_of(groups: list[dict], name: str) -> dict:
    found = [g for g in groups if name in g["param_names"]]
    assert len(found) == 1, name
    return found[0]


def test_layer_scales_for_depth_two(model: torch.nn.Module) -> None:
    groups = param_groups_lrd(model, weight_decay=0.05, layer_decay=DECAY)
    expected = {
        "cls_token": DECAY**3, "pos_embed": DECAY**3, "patch_embed.proj.weight": DECAY**3,
        "patch_embed.proj.bias": DECAY**3,
        "blocks.0.attn.qkv.weight": DECAY**2, "blocks.0.norm1.weight": DECAY**2,
        "blocks.1.mlp.fc2.weight": DECAY**1, "blocks.1.norm2.bias": DECAY**1,
        "fc_norm.weight": 1.0, "fc_norm.bias": 1.0, "head.weight": 1.0, "head.bias": 1.0,
    }
    for name, scale in expected.items():
        assert _group_of(groups, name)["lr_scale"] == pytest.approx(scale), name
    assert [g["layer_id"] for g in groups] == sorted(g["layer_id"] for g in groups)
    assert {g["layer_id"] for g in groups} == {0, 1, 2, 3}


def test_weight_decay_only_on_matrices(model: torch.nn.Module) -> None:
    groups = param_groups_lrd(model, weight_decay=0.05, layer_decay=DECAY)
    for name in ("cls_token", "pos_embed", "patch_embed.proj.bias", "blocks.0.attn.qkv.bias",
                 "blocks.1.norm1.weight", "fc_norm.weight", "head.bias"):
        assert _group_of(groups, name)["weight_decay"] == 0.0, name
    for name in ("patch_embed.proj.weight", "blocks.0.attn.qkv.weight", "blocks.1.mlp.fc1.weight", "head.weight"):
        assert _group_of(groups, name)["weight_decay"] == 0.05, name


def test_every_trainable_param_in_exactly_one_group(model: torch.nn.Module) -> None:
    model.blocks[0].attn.qkv.weight.requires_grad_(False)
    groups = param_groups_lrd(model)
    names = [n for g in groups for n in g["param_names"]]
    assert len(names) == len(set(names))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert set(names) == trainable and "blocks.0.attn.qkv.weight" not in names
    for group in groups:
        assert len(group["params"]) == len(group["param_names"]) > 0
        params = dict(model.named_parameters())
        assert all(p is params[n] for p, n in zip(group["params"], group["param_names"], strict=True))
        assert set(group) >= {"params", "param_names", "weight_decay", "lr_scale", "layer_id"}


def test_explicit_no_weight_decay_and_alias(model: torch.nn.Module) -> None:
    groups = param_groups_lrd(model, no_weight_decay=("head.weight",))
    assert _group_of(groups, "head.weight")["weight_decay"] == 0.0
    assert _group_of(groups, "pos_embed")["weight_decay"] == 0.05  # explicit list replaces model.no_weight_decay()
    groups = param_groups_lrd(model, no_weight_decay_list=model.no_weight_decay())
    assert _group_of(groups, "pos_embed")["weight_decay"] == 0.0


def test_groups_drive_adamw(model: torch.nn.Module) -> None:
    optimizer = torch.optim.AdamW(param_groups_lrd(model), lr=1e-3)
    for group in optimizer.param_groups:
        group["lr"] = 1e-3 * group["lr_scale"]
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    optimizer.step()


def test_layer_id_for() -> None:
    assert layer_id_for("reg_token", 24) == 0
    assert layer_id_for("blocks.23.mlp.fc1.weight", 24) == 24
    assert layer_id_for("norm.weight", 24) == 25
    with pytest.raises(ValueError):
        param_groups_lrd(torch.nn.Linear(2, 2), layer_decay=0.0)
