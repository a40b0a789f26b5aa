"""The RETFound training augmentation never crashes: timm's posterize bits are clamped to [1, 8].

timm 1.0's ``PosterizeIncreasing`` maps magnitude 10 to 0 bits, which the pinned Pillow 13
refuses; with ``rand-m9-mstd0.5-inc1`` the drawn magnitude is clipped to 10 in ~2%
of the posterize draws, so about one image in 650 raised ``ValueError`` before the
fix (31 of 20,000 draws at 64 px, seed 0).
"""
from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable

import duckdb
import numpy as np
import pytest
import torch
from PIL import Image
from timm.data.auto_augment import AugmentOp

from retcore.data import build_train_transform
from retcore.data.transforms import POSTERIZE_BITS, ClampedPosterizeLevel, _augment_ops, clamp_posterize_bits
from retcore.train.config import FinetuneConfig

RECIPE = FinetuneConfig().auto_augment  # 'rand-m9-mstd0.5-inc1'


def _posterize_ops(transform: Callable) -> list[AugmentOp]:
    return [op for step in transform.transforms for op in _augment_ops(step) if op.name.startswith("Posterize")]


def _gradient_image(size: int = 64) -> Image.Image:
    """(size, size) RGB image with 256 grey levels per channel along x / y: posterize visibly merges them."""
    ramp = np.linspace(0, 255, size).round().astype(np.uint8)
    rgb = np.stack([np.broadcast_to(ramp, (size, size)), np.broadcast_to(ramp[:, None], (size, size)),
                    np.full((size, size), 200, np.uint8)], axis=-1)
    return Image.fromarray(np.ascontiguousarray(rgb), "RGB")


class _LevelSpy:
    """Wraps a level function and records the magnitudes it was called with."""

    def __init__(self, level_fn: Callable) -> None:
        self.level_fn = level_fn
        self.magnitudes: list[float] = []

    def __call__(self, magnitude: float, hparams: dict) -> tuple[int]:
        self.magnitudes.append(magnitude)
        return self.level_fn(magnitude, hparams)


def test_default_train_transform_survives_thousands_of_draws(make_fundus) -> None:
    """3,000 seeded draws of the recipe's transform at 64 px (~5 s of CPU time, 1.8 ms a draw): no
    error, and the posterize op was drawn at magnitude 10, where timm's unclamped level gives 0 bits."""
    transform = build_train_transform(64)
    (op,) = _posterize_ops(transform)
    assert op.name == "PosterizeIncreasing" and op.magnitude_std == 0.5
    spy = _LevelSpy(op.level_fn)
    op.level_fn = spy
    img = make_fundus(size=(72, 64), center=(36, 32), radius=30, color=(190, 110, 60))
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    start = time.process_time()
    for _ in range(3000):
        out = transform(img)
        assert out.shape == (3, 64, 64) and out.dtype == torch.float32
    seconds = time.process_time() - start
    assert spy.magnitudes.count(10.0) >= 1, "the seed no longer reaches the magnitude that gave 0 bits"
    assert seconds < 30, f"3,000 draws took {seconds:.1f} s of CPU time"


@pytest.mark.parametrize("policy, name", [
    (RECIPE, "PosterizeIncreasing"),  # 4 bits at m=0 down to 0 bits at m=10 (unclamped)
    ("rand-m9-mstd0.5", "Posterize"),  # 0 bits below m=2.5 (unclamped)
    ("original", "PosterizeOriginal"),  # AutoAugment, 4..8 bits: already valid, left as it was
    ("augmix-m10", "PosterizeIncreasing"),
])
def test_posterize_bits_stay_in_range_at_every_magnitude(policy: str, name: str) -> None:
    transform = build_train_transform(64, auto_augment=policy)
    ops = _posterize_ops(transform)
    assert ops and {op.name for op in ops} == {name}
    low, high = POSTERIZE_BITS
    for op in ops:
        assert isinstance(op.level_fn, ClampedPosterizeLevel)
        bits = [op.level_fn(m, op.hparams)[0] for m in np.linspace(0, 30, 61)]  # past mmax=10 too
        assert all(low <= b <= high and isinstance(b, int) for b in bits), bits
        raw = [op.level_fn.level_fn(m, op.hparams)[0] for m in np.linspace(0, 30, 61)]
        assert [min(max(r, low), high) for r in raw] == bits  # only out-of-range bits change


def test_strongest_posterize_keeps_one_bit_and_really_posterizes() -> None:
    (op,) = _posterize_ops(build_train_transform(64))
    strongest = copy.deepcopy(op)
    strongest.prob, strongest.magnitude, strongest.magnitude_std = 1.0, 10, 0.0
    img = _gradient_image()
    assert strongest.level_fn(10, strongest.hparams) == (1,)
    out = np.asarray(strongest(img))
    for c in range(3):
        assert set(np.unique(out[..., c])) <= {0, 128}  # 1 bit: the top bit of each channel survives
    assert set(np.unique(out[..., 0])) == {0, 128}  # the ramp really splits at 128
    assert (np.asarray(img)[..., 0] >= 128).tolist() == (out[..., 0] == 128).tolist()
    weakest = copy.deepcopy(strongest)
    weakest.magnitude = 0
    out4 = np.asarray(weakest(img))
    assert len(np.unique(out4[..., 0])) == 16 and (out4 % 16 == 0).all()  # 4 bits at magnitude 0


def test_clamping_is_local_to_the_built_transform() -> None:
    """timm's own tables and freshly built timm transforms are untouched; clamping twice wraps once."""
    from timm.data.auto_augment import LEVEL_TO_ARG, rand_augment_transform

    transform = build_train_transform(64)
    assert not isinstance(LEVEL_TO_ARG["PosterizeIncreasing"], ClampedPosterizeLevel)
    fresh = rand_augment_transform(RECIPE, {})
    (timm_op,) = [op for op in fresh.ops if op.name.startswith("Posterize")]
    assert not isinstance(timm_op.level_fn, ClampedPosterizeLevel)
    assert timm_op.level_fn(10, timm_op.hparams) == (0,)  # the value Pillow refuses
    assert clamp_posterize_bits(list(transform.transforms)) == 1
    (op,) = _posterize_ops(transform)
    assert not isinstance(op.level_fn.level_fn, ClampedPosterizeLevel)


def test_train_transform_pickles_with_the_clamp() -> None:
    """DataLoader workers receive the transform by pickling."""
    import pickle

    transform = pickle.loads(pickle.dumps(build_train_transform(64)))
    (op,) = _posterize_ops(transform)
    assert op.level_fn(10, op.hparams) == (1,)


def test_one_epoch_with_the_recipes_own_augmentation(tmp_path, tiny_demo, tiny_config) -> None:
    """The demo model fine-tunes one epoch on the 48-image demo set with RandAugment
    ``rand-m9-mstd0.5-inc1``, RandomErasing 0.25 and crop scale (0.08, 1) — the recipe's defaults."""
    from jobs.finetune import run_finetune

    recipe = FinetuneConfig()
    cfg = tiny_config(epochs=1, warmup_epochs=0, auto_augment=recipe.auto_augment, re_prob=recipe.re_prob,
                      crop_scale=recipe.crop_scale)
    assert (cfg.auto_augment, cfg.re_prob, cfg.crop_scale) == ("rand-m9-mstd0.5-inc1", 0.25, (0.08, 1.0))
    db = tmp_path / "r.duckdb"
    run_id = run_finetune(cfg, tiny_demo, db=db, results=tmp_path)
    with duckdb.connect(str(db), read_only=True) as con:
        status, config = con.execute("SELECT status, config FROM runs WHERE run_id = ?", [run_id]).fetchone()
        epochs = con.execute("SELECT epoch, train_loss, val_loss FROM epochs WHERE run_id = ?", [run_id]).fetchall()
    assert status == "succeeded"
    assert '"auto_augment": "rand-m9-mstd0.5-inc1"' in config
    assert len(epochs) == 1 and all(np.isfinite(v) and v > 0 for v in epochs[0][1:])
