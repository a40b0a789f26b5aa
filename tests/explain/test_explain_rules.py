"""The relevance rules: conservation where they promise it, and the fast forms equal the textbook forms."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from explain_factories import make_images, make_vit
from torch import nn

from retcore.explain import get_method, inspect_vit
from retcore.explain.lrp import head_relevance, propagate_blocks
from retcore.explain.methods import trace
from retcore.explain.rules import (
    EPS,
    Workspace,
    abs_weight,
    add_rule,
    clone_rule,
    linear_ab,
    matmul_rule,
    patch_zbox_rule,
    pool_mean_rule,
    pool_token_rule,
    safe_divide,
)

D64 = torch.float64


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _linear(n_in: int, n_out: int, bias: bool = True, seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(n_in, n_out, bias=bias).double()


def test_linear_ab_equals_split_formula_and_conserves() -> None:
    layer = _linear(64, 7)
    x = torch.randn(3, 5, 64, generator=_gen(1), dtype=D64)
    y = layer(x).detach()
    r = torch.randn(3, 5, 7, generator=_gen(2), dtype=D64)
    got = linear_ab(layer, x, y, r)
    w = layer.weight.detach()
    wp, wn, xp, xn = w.clamp(min=0), w.clamp(max=0), x.clamp(min=0), x.clamp(max=0)
    z = F.linear(xp, wp) + F.linear(xn, wn)  # x+W+ + x-W-: bias ignored, beta = 0
    assert z.min() > 0  # (an exact 0 needs every product <= 0: see the rules module docstring)
    s = safe_divide(r, z)
    expected = xp * (s @ wp) + xn * (s @ wn)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    # alpha = 1, beta = 0 conserves for any sign of inputs and with a bias (Z holds only positive parts)
    torch.testing.assert_close(got.sum((1, 2)), r.sum((1, 2)), rtol=1e-7, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, D64])
def test_linear_ab_is_finite_for_an_output_without_positive_contribution(dtype) -> None:
    """The classifier head of a briefly trained demo model: class 0 had only negative products (Z = 0);
    float32 rounding of y - b + |x||W| left its denominator at 0 and 0 / 0 made every lrp map NaN."""
    torch.manual_seed(0)
    layer = nn.Linear(192, 4).to(dtype)
    with torch.no_grad():
        layer.weight[0] = -layer.weight[0].abs() * 50  # every x_i w_0i <= 0 below
        layer.bias.copy_(torch.tensor([0.0022, -0.0012, -0.0006, -0.0004], dtype=dtype))
    x = torch.rand(6, 192, generator=_gen(5), dtype=torch.float64).to(dtype) * 1.5
    y = layer(x).detach()
    r = F.one_hot(torch.tensor([1, 2, 3, 1, 2, 3]), 4).to(dtype)  # relevance 0 on the Z = 0 output
    got = linear_ab(layer, x, y, r)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got.sum(1), r.sum(1), rtol=1e-5, atol=0)


def test_linear_ab_with_workspace_and_scale() -> None:
    layer = _linear(8, 16)
    x = torch.randn(2, 3, 8, generator=_gen(3), dtype=D64)
    y = layer(x).detach()
    r = torch.randn(2, 3, 16, generator=_gen(4), dtype=D64)
    scale = torch.tensor([2.0, -0.5], dtype=D64)
    plain = linear_ab(layer, x, y, r * scale.view(2, 1, 1))
    ws = Workspace(D64, torch.device("cpu"))
    fast = linear_ab(layer, x, y, r.clone(), ws=ws, scale=scale)
    torch.testing.assert_close(fast, plain)


def test_abs_weight_cache_is_reused_and_invalidated() -> None:
    layer = _linear(4, 3)
    first = abs_weight(layer, D64)
    assert abs_weight(layer, D64)[1].data_ptr() == first[1].data_ptr()  # cached
    with torch.no_grad():
        layer.weight.mul_(-2.0)  # in-place update bumps the version counter
    second = abs_weight(layer, D64)
    assert second[1].data_ptr() != first[1].data_ptr()
    torch.testing.assert_close(second[1], layer.weight.detach().abs())
    layer.weight = nn.Parameter(torch.ones(3, 4, dtype=D64))  # new tensor
    torch.testing.assert_close(abs_weight(layer, D64)[1], torch.ones(3, 4, dtype=D64))
    with torch.no_grad():
        layer.bias.fill_(1.0)
    torch.testing.assert_close(abs_weight(layer, D64)[2], torch.full((3,), 2 * EPS - 1.0, dtype=D64))
    assert abs_weight(layer, torch.float32)[1].dtype == torch.float32


def test_add_rule_conserves_exactly_per_image() -> None:
    a = torch.randn(4, 6, 5, generator=_gen(5), dtype=D64)
    b = torch.randn(4, 6, 5, generator=_gen(6), dtype=D64)
    r = torch.randn(4, 6, 5, generator=_gen(7), dtype=D64)
    ra, rb = add_rule(a, b, r)
    torch.testing.assert_close(ra.sum((1, 2)) + rb.sum((1, 2)), r.sum((1, 2)), rtol=1e-8, atol=0)  # EPS
    # each part is gradient x input rescaled to |s_a| / (|s_a| + |s_b|) of the total
    s = r / (a + b + EPS)
    sa, sb = (a * s).sum((1, 2)), (b * s).sum((1, 2))
    share = sa.abs() / (sa.abs() + sb.abs())
    torch.testing.assert_close(ra.sum((1, 2)), share * r.sum((1, 2)))
    torch.testing.assert_close(ra, a * s * (share * r.sum((1, 2)) / sa).view(4, 1, 1))


def test_clone_rule_sums_branches() -> None:
    x = torch.randn(2, 3, 4, generator=_gen(8), dtype=D64)
    r1, r2 = torch.randn(2, 2, 3, 4, generator=_gen(9), dtype=D64)
    got = clone_rule(x, r1.clone(), r2)
    torch.testing.assert_close(got, x * (r1 + r2) / (x + EPS), rtol=1e-14, atol=0)  # the authors' form
    torch.testing.assert_close(got, r1 + r2, rtol=EPS / x.abs().min().item() * 2, atol=0)  # = sum up to EPS / |x|


@pytest.mark.parametrize("transposed", [False, True])
def test_matmul_rule_halves_conserve(transposed: bool) -> None:
    left = torch.randn(2, 3, 5, 4, generator=_gen(10), dtype=D64)
    right = torch.randn(2, 3, 6, 4, generator=_gen(11), dtype=D64)
    if not transposed:
        right = right.transpose(-1, -2).contiguous()
    product = left @ (right.transpose(-1, -2) if transposed else right)
    r = torch.randn(product.shape, generator=_gen(12), dtype=D64)
    r_left, r_right = matmul_rule(left, right, product, r, right_transposed=transposed)
    assert r_right is not None
    # each unhalved part alone carries the total; the halves add up to it
    torch.testing.assert_close(2 * r_left.sum(), r.sum(), rtol=1e-7, atol=0)
    torch.testing.assert_close(r_left.sum() + r_right.sum(), r.sum(), rtol=1e-7, atol=0)


def test_pool_rules_conserve() -> None:
    tokens = torch.randn(2, 5, 3, generator=_gen(13), dtype=D64)
    r = torch.randn(2, 3, generator=_gen(14), dtype=D64)
    cls = pool_token_rule(tokens, r)
    torch.testing.assert_close(cls[:, 0], r, rtol=1e-7, atol=0)
    assert cls[:, 1:].abs().sum() == 0
    mean = pool_mean_rule(tokens, slice(1, None), r)
    assert mean[:, 0].abs().sum() == 0  # the CLS token is not averaged
    torch.testing.assert_close(mean.sum(1), r, rtol=1e-7, atol=0)  # per feature
    torch.testing.assert_close(mean[:, 1:], tokens[:, 1:] / (4 * tokens[:, 1:].mean(1, keepdim=True)) * r[:, None])


def test_patch_zbox_rule_conserves() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 6, 4, stride=4).double()
    image = torch.randn(2, 3, 8, 12, generator=_gen(15), dtype=D64)
    out = conv(image).detach()
    r = torch.rand(out.shape, generator=_gen(16), dtype=D64)
    px = patch_zbox_rule(conv, image, out, r)
    assert px.shape == image.shape
    torch.testing.assert_close(px.sum((1, 2, 3)), r.sum((1, 2, 3)), rtol=1e-7, atol=0)


@pytest.mark.parametrize("pool", ["token", "avg"])
@pytest.mark.parametrize("extra", [{}, {"init_values": 0.1}, {"qk_norm": True}], ids=["plain", "layerscale", "qknorm"])
def test_total_relevance_is_one_at_every_block(pool: str, extra: dict) -> None:
    """From a one-hot at the logits, every block input carries total relevance 1 (up to EPS)."""
    model = make_vit(depth=3, dim=48, heads=3, patch=16, img=(32, 48), pool=pool, dtype=D64, seed=2, **extra)
    images = make_images(3, (32, 48), dtype=D64)
    method = get_method("lrp_pixels")
    totals: dict[int, torch.Tensor] = {}
    with trace(method, model, images, 1, 0, None, inspect_vit(model)) as tr:
        r = head_relevance(tr)
        torch.testing.assert_close(r.sum((1, 2)), torch.ones(3, dtype=D64), rtol=1e-7, atol=0)
        propagate_blocks(tr, r, stop_layer=0, to_input=True,
                         on_block_input=lambda i, rel: totals.__setitem__(i, rel.sum((1, 2)).clone()))
    assert sorted(totals) == [0, 1, 2]
    for total in totals.values():
        torch.testing.assert_close(total, torch.ones(3, dtype=D64), rtol=1e-6, atol=0)
