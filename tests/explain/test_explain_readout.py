"""CLS read-out versus the mean-of-patch-rows read-out (the average-pool adaptation)."""
from __future__ import annotations

import pytest
import torch
from explain_factories import make_images, make_vit
from explain_reference import ref_explain

from retcore.explain import (
    ExplainError,
    inspect_vit,
    normalize_sum,
    readout,
    readout_weights,
    relevance,
    rollout_matrix,
    rollout_readout,
)

D64 = torch.float64


def _info(pool: str = "avg"):
    return inspect_vit(make_vit(depth=1, dim=32, heads=2, patch=16, img=(32, 32), pool=pool))


def test_readouts_on_a_matrix() -> None:
    info = _info()  # 1 CLS + 4 patch tokens
    joint = torch.rand(2, 5, 5, generator=torch.Generator().manual_seed(0), dtype=D64)
    w_cls = readout_weights(info, "cls", 2, 5, dtype=D64, device=torch.device("cpu"))
    w_mean = readout_weights(info, "mean", 2, 5, dtype=D64, device=torch.device("cpu"))
    torch.testing.assert_close(readout(joint, w_cls, 1), joint[:, 0, 1:])
    torch.testing.assert_close(readout(joint, w_mean, 1), joint[:, 1:, 1:].mean(1))
    # where every row of the rollout is the same, both read-outs agree
    same_rows = joint[:, :1].expand(2, 5, 5)
    torch.testing.assert_close(readout(same_rows, w_cls, 1), readout(same_rows, w_mean, 1))


def test_vector_chain_equals_matrix_product() -> None:
    mats = list(torch.rand(4, 3, 6, 6, generator=torch.Generator().manual_seed(1), dtype=D64))
    info = _info()
    w = readout_weights(info, "mean", 3, 6, dtype=D64, device=torch.device("cpu"))
    for normalize in (False, True):
        for start in (0, 2):
            joint = rollout_matrix(mats, start_layer=start, normalize=normalize)
            chain = rollout_readout(w, reversed(mats[start:]), normalize=normalize)
            torch.testing.assert_close(chain, torch.bmm(w.unsqueeze(1), joint)[:, 0])


def test_both_readouts_of_the_same_lrp_rollout() -> None:
    """An avg-pool model with a CLS token: both read-outs of one rollout, against the reference matrix."""
    model = make_vit(depth=3, dim=48, heads=3, patch=16, img=(48, 32), pool="avg", dtype=D64, seed=11)
    images = make_images(2, (48, 32), dtype=D64)
    by_cls = relevance(model, images, "lrp", target=2, readout="cls")
    by_mean = relevance(model, images, "lrp", target=2, readout="mean")
    torch.testing.assert_close(by_mean, relevance(model, images, "lrp", target=2))  # the avg default
    for i in range(2):
        _, ref = ref_explain(model, images[i:i + 1], 2)
        eye = torch.eye(7, dtype=D64)
        joint = eye
        for blk in ref.blocks:  # the reference's rollout of (I + cam) over all blocks
            cam = (blk.attn.attn_grad[0] * blk.attn.attn_cam[0]).clamp(min=0).mean(0)
            joint = (cam.detach() + eye) @ joint
        torch.testing.assert_close(by_cls[i].flatten(), joint[0, 1:], rtol=1e-7, atol=1e-12)
        torch.testing.assert_close(by_mean[i].flatten(), (joint - eye)[1:, 1:].mean(0), rtol=1e-7, atol=1e-12)
    assert not torch.allclose(by_cls, by_mean)


def test_readouts_agree_when_attention_is_uniform() -> None:
    """Zero query/key weights make every attention row uniform: the last-layer maps coincide and
    the rollouts of both read-outs are flat, so they agree after normalisation."""
    model = make_vit(depth=2, dim=32, heads=2, patch=16, img=(32, 64), pool="avg", dtype=D64, seed=12)
    with torch.no_grad():
        for blk in model.blocks:
            blk.attn.qkv.weight[:64].zero_()
            blk.attn.qkv.bias[:64].zero_()
    images = make_images(2, (32, 64), dtype=D64)
    n_patches = 8
    for method in ("attention", "rollout"):
        cls = relevance(model, images, method, readout="cls")
        mean = relevance(model, images, method, readout="mean")
        flat = torch.full((2, 2, 4), 1.0 / n_patches, dtype=D64)
        torch.testing.assert_close(normalize_sum(cls), flat)
        torch.testing.assert_close(normalize_sum(mean), flat)
        if method == "attention":
            torch.testing.assert_close(cls, mean)


def test_readout_errors() -> None:
    model = make_vit(depth=1, dim=32, heads=2, patch=16, img=(32, 32), pool="avg", class_token=False)
    images = make_images(1, (32, 32))
    assert relevance(model, images, "rollout").shape == (1, 2, 2)
    with pytest.raises(ExplainError, match="class token"):
        relevance(model, images, "rollout", readout="cls")
    with pytest.raises(ExplainError, match="unknown readout"):
        relevance(model, images, "rollout", readout="max")
