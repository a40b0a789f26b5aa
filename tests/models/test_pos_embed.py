"""resize_pos_embed: identity, prefix kept, bicubic on the grid, row-major order."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from retcore.models import resize_pos_embed
from retcore.models.pos_embed import grid_of


def _pos(grid: int, dim: int = 8, prefix: int = 1) -> torch.Tensor:
    return torch.randn(1, prefix + grid * grid, dim, generator=torch.Generator().manual_seed(grid))


def test_same_grid_is_identity() -> None:
    pos = _pos(14)
    out = resize_pos_embed(pos, (14, 14), 1)
    assert out is pos


@pytest.mark.parametrize("new", [16, 7])  # 224 -> 256 and 224 -> 112 at patch 16
def test_resize_keeps_prefix_and_matches_bicubic(new: int) -> None:
    pos = _pos(14)
    out = resize_pos_embed(pos, (new, new), 1)
    assert out.shape == (1, 1 + new * new, 8)
    assert torch.equal(out[:, :1], pos[:, :1])
    grid = pos[:, 1:].reshape(1, 14, 14, 8).permute(0, 3, 1, 2)
    ref = F.interpolate(grid, size=(new, new), mode="bicubic", align_corners=False)
    torch.testing.assert_close(out[:, 1:], ref.permute(0, 2, 3, 1).reshape(1, new * new, 8))


def test_constant_grid_stays_constant() -> None:
    pos = torch.ones(1, 1 + 4 * 4, 3) * 0.25
    out = resize_pos_embed(pos, (9, 9), 1)
    torch.testing.assert_close(out, torch.full((1, 82, 3), 0.25))


def test_row_major_order_with_non_square_target() -> None:
    side = 6
    rows = torch.arange(side).float().repeat_interleave(side)  # row index per token, row-major
    cols = torch.arange(side).float().repeat(side)
    pos = torch.cat([torch.zeros(1, 1, 2), torch.stack([rows, cols], dim=-1)[None]], dim=1)
    out = resize_pos_embed(pos, (8, 3), 1)[0, 1:].reshape(8, 3, 2)
    # channel 0 (row index) varies down the rows only, channel 1 across the columns only
    torch.testing.assert_close(out[..., 0], out[:, :1, 0].expand(8, 3))
    torch.testing.assert_close(out[..., 1], out[:1, :, 1].expand(8, 3))
    assert out[-1, 0, 0] > out[0, 0, 0] and out[0, -1, 1] > out[0, 0, 1]


def test_no_prefix_and_dtype_kept() -> None:
    pos = _pos(4, prefix=0).half()
    out = resize_pos_embed(pos, (2, 2), 0)
    assert out.shape == (1, 4, 8) and out.dtype == torch.float16


def test_rejects_non_square() -> None:
    with pytest.raises(ValueError, match="square"):
        resize_pos_embed(torch.zeros(1, 1 + 15, 4), (4, 4), 1)
    with pytest.raises(ValueError):
        resize_pos_embed(torch.zeros(17, 4), (4, 4), 1)
    assert grid_of(197, 1) == 14


@pytest.mark.parametrize("stem", ["patch", "conv"])
def test_at_input_size_gives_finer_token_maps_and_leaves_the_model(make_tiny, stem: str) -> None:
    import dataclasses

    from retcore.explain import relevance
    from retcore.models import at_input_size
    from retcore.models.vit import DEMO_SPEC

    spec = dataclasses.replace(DEMO_SPEC, embed_dim=64, depth=2, num_heads=2, stem=stem)
    model = make_tiny(spec=spec, img_size=64).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    big = at_input_size(model, 128)
    # the original is untouched; the copy has an 8 x 8 grid with the resized embedding
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert tuple(big.patch_embed.grid_size) == (8, 8) and big.pos_embed.shape[1] == 1 + 64
    torch.testing.assert_close(big.pos_embed.data, resize_pos_embed(model.pos_embed.data, (8, 8), 1))
    x = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert big(x).shape == (2, 3)
    assert relevance(big, x, "lrp", torch.tensor([0, 1])).shape == (2, 8, 8)
    # at its own size the copy computes exactly what the model does
    same = at_input_size(model, 64)
    small = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(same(small), model(small))
    with pytest.raises(ValueError, match="multiple of the patch size"):
        at_input_size(model, 100)
