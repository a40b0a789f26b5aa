"""Fixtures of the sanity-check tests: tiny "trained" ViTs (every weight moved off its init)."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_thread(single_thread):
    """Every test here runs single-threaded (``single_thread`` in tests/conftest.py)."""


def _trained_like(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Move every parameter and BatchNorm statistic away from its initial value, as training would."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict(keep_vars=True).items():
            if not t.is_floating_point():
                continue
            noise = torch.randn(t.shape, generator=gen)
            if t.ndim <= 1 and not name.endswith("bias"):  # norm gains, running variances
                t.data.copy_(1 + 0.1 * noise.abs())
            elif t.ndim <= 1:
                t.data.copy_(0.1 * noise)
            else:
                t.data.copy_(noise / max(t[0].numel(), 1) ** 0.5)
    return model.eval()


@pytest.fixture
def make_model():
    """``make_model(depth=2, dim=64, heads=4, pool='avg', stem='patch', img=64, classes=4, seed=0)``: a timm ViT
    built by ``retcore.models.build_vit`` (patch 16) with every weight perturbed, in eval mode."""
    from retcore.models.vit import ViTSpec, build_vit

    def make(*, depth: int = 2, dim: int = 64, heads: int = 4, pool: str = "avg", stem: str = "patch",
             img: int = 64, classes: int = 4, seed: int = 0):
        torch.manual_seed(seed)
        spec = ViTSpec(patch_size=16, embed_dim=dim, depth=depth, num_heads=heads, drop_path=0.0, stem=stem)
        return _trained_like(build_vit(spec, classes, img_size=img, global_pool=pool), seed + 1)

    return make


@pytest.fixture
def images():
    """(4, 3, 64, 64) standard-normal images."""
    return torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(7))
