"""Per-image faithfulness of relevance maps, each compared with a random map of the same resolution.

For every image, the softmax probability of the explained class (the target) is followed while
the image changes in steps of ``FRACTIONS`` (0, 0.1, ..., 1.0) of its pixels or tokens
(:func:`retcore.evaluate.perturbation_curve` does the stepping):

- ``deletion_morf``: the most relevant first are replaced by the baseline (Chefer et al.'s
  positive test, RISE's deletion). A faithful map destroys the prediction fast: LOWER AUC is better.
- ``deletion_lerf``: the least relevant first are replaced (the negative test). HIGHER is better.
- ``insertion``: start from the baseline and restore the most relevant first (RISE). HIGHER is better.

AUC = trapezoid rule over the fractions (range 1, so AUC is the mean probability along the curve).

**Units.** ``'pixel'``: the map is upsampled bilinearly to the input and pixels are ranked;
``'token'``: the map is average-pooled to the model's token grid and whole patches change together.

**Baselines** (what a removed pixel becomes, in the model's normalised input space; black is off
the training distribution of a fundus photo, so it is not offered):

- ``'blur'`` (default): the image blurred by a Gaussian of sigma = ``image size / 20`` pixels
  (11.2 px at 224 px; ``blur_sigma`` overrides), edges replicated. It keeps the colour, the
  field-of-view border and the illumination and removes the detail (lesions, vessels).
- ``'mean'``: a flat fill with the dataset's mean colour per channel (``mean``; the explain job
  uses the mean over the evaluated split's model inputs).

**Random reference.** Per image, a uniform random map of the same resolution as the method's
map (token grid or pixels), seeded by ``seed`` and the image id (so it does not depend on the
batching and a resumed run draws the same map), stepped exactly like the method's map.

**Comparison** (:func:`compare_with_random`): per image d = AUC(method) - AUC(random); the mean
of d with a percentile-bootstrap interval over images and the Wilcoxon signed-rank test
(``retcore.stats.paired_difference``). Verdict: *beats random* when the interval lies entirely on
the better side of 0, p < ``alpha`` and the mean difference is at least :data:`MIN_DIFFERENCE`
(0.001 of AUC, the precision the verdict prints: a model whose output does not move with the
input gives float-rounding differences of ~1e-7 that a signed-rank test can still call
significant); *worse than random* likewise on the other side; otherwise *does not beat random*.
"""
from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from retcore.evaluate import auc, perturbation_curve
from retcore.stats import N_BOOT, paired_difference

__all__ = [
    "BASELINES",
    "CURVE_COLUMNS",
    "FRACTIONS",
    "SUMMARY_COLUMNS",
    "TESTS",
    "baseline_images",
    "compare_with_random",
    "curve_aucs",
    "faithfulness_curves",
    "gaussian_blur",
    "random_maps",
    "verdict",
]

FRACTIONS: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(11))
"""Shares of the pixels (tokens) changed at each step, 0 to 1."""

TESTS: dict[str, tuple[str, str]] = {
    "deletion_morf": ("positive", "lower"),
    "deletion_lerf": ("negative", "higher"),
    "insertion": ("insertion", "higher"),
}
"""Test name -> (``perturbation_curve`` mode, which AUC is better)."""

BASELINES: tuple[str, ...] = ("blur", "mean")
"""Selectable baselines (see the module docstring)."""

CURVE_COLUMNS = ["index", "unit", "test", "fraction", "predicted", "probability", "logit"]
"""Columns of :func:`faithfulness_curves` (``index`` = row of the batch)."""

SUMMARY_COLUMNS = ["method", "baseline", "unit", "test", "better", "n_images", "auc", "random_auc",
                   "difference", "difference_low", "difference_high", "wilcoxon_p", "effect", "beats_random",
                   "verdict"]
"""Columns of :func:`compare_with_random`."""


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (B, C, H, W) images (kernel radius ceil(3 sigma), edges replicated).

    Args:
        images: (B, C, H, W) float tensor.
        sigma: standard deviation in pixels (> 0).

    Returns:
        (B, C, H, W) blurred images (the weights sum to 1, so a constant image is unchanged).
    """
    if sigma <= 0:
        raise ValueError(f"blur sigma must be positive, got {sigma}")
    radius = max(1, int(np.ceil(3.0 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    b, c, h, w = images.shape
    out = images.reshape(b * c, 1, h, w)
    out = F.pad(out, (radius, radius, 0, 0), mode="replicate")
    out = F.conv2d(out, k.reshape(1, 1, 1, -1))
    out = F.pad(out, (0, 0, radius, radius), mode="replicate")
    out = F.conv2d(out, k.reshape(1, 1, -1, 1))
    return out.reshape(b, c, h, w)


def baseline_images(images: torch.Tensor, kind: str = "blur", *, blur_sigma: float | None = None,
                    mean: Sequence[float] | np.ndarray | torch.Tensor | None = None) -> torch.Tensor:
    """The images that removed pixels are taken from.

    Args:
        images: (B, C, H, W) normalised model inputs.
        kind: 'blur' (Gaussian, sigma ``blur_sigma`` or H / 20 pixels) or 'mean' (flat ``mean``).
        blur_sigma: blur standard deviation in pixels for 'blur'.
        mean: (C,) dataset mean colour in normalised space, required for 'mean'.

    Returns:
        (B, C, H, W) baseline images, same dtype and device.
    """
    if kind == "blur":
        return gaussian_blur(images, float(blur_sigma) if blur_sigma is not None else images.shape[-2] / 20.0)
    if kind == "mean":
        if mean is None:
            raise ValueError("baseline 'mean' needs the dataset mean colour (one value per channel)")
        m = torch.as_tensor(np.asarray(mean, np.float32), dtype=images.dtype, device=images.device).reshape(-1)
        if m.numel() != images.shape[1]:
            raise ValueError(f"mean has {m.numel()} values for {images.shape[1]} channels")
        return m.reshape(1, -1, 1, 1).expand_as(images).clone()
    raise ValueError(f"baseline {kind!r}: choose one of {', '.join(BASELINES)}")


def random_maps(image_ids: Sequence[str], shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """(B, h, w) float32 uniform random maps, one per image, seeded by ``seed`` and the image id."""
    return np.stack([np.random.default_rng([int(seed), zlib.crc32(str(i).encode())]).random(shape, np.float32)
                     for i in image_ids]) if len(image_ids) else np.zeros((0, *shape), np.float32)


def faithfulness_curves(model: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
                        maps: np.ndarray | torch.Tensor, targets: np.ndarray | torch.Tensor | Sequence[int],
                        baseline: torch.Tensor, *, units: Mapping[str, tuple[int, int] | None],
                        tests: Sequence[str] = tuple(TESTS), fractions: Sequence[float] = FRACTIONS,
                        batch_size: int = 32, seed: int = 0) -> pd.DataFrame:
    """Per-image curves of the target's probability and logit for every unit and test.

    Args:
        model: (b, C, H, W) -> (b, K) logits, in eval mode.
        images: (B, C, H, W) normalised inputs.
        maps: (B, h, w) relevance (token grid or pixels).
        targets: (B,) explained classes.
        baseline: (B, C, H, W) images removed pixels are taken from (:func:`baseline_images`).
        units: unit name -> token grid (gh, gw) or None for pixels, e.g. ``{'token': (14, 14), 'pixel': None}``.
        tests: names from :data:`TESTS`.
        fractions: increasing shares changed at each step.
        batch_size: images per forward pass.
        seed: tie-break seed of the ranking.

    Returns:
        Long DataFrame with :data:`CURVE_COLUMNS` (one row per image, unit, test and fraction).
    """
    frames = []
    for unit, grid in units.items():
        for test in tests:
            mode = TESTS[test][0]
            res = perturbation_curve(model, images, maps, mode=mode, fractions=fractions, target=targets,
                                     fill=baseline, batch_size=batch_size, seed=seed, grid=grid)
            b, s = res.target_prob.shape
            frames.append(pd.DataFrame({
                "index": np.repeat(np.arange(b), s), "unit": unit, "test": test,
                "fraction": np.tile(res.fractions, b), "predicted": res.predicted.ravel().astype(np.int64),
                "probability": res.target_prob.ravel(),
                "logit": res.target_logit.ravel()}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=CURVE_COLUMNS)


def curve_aucs(curves: pd.DataFrame, keys: Sequence[str] = ("index", "unit", "test")) -> pd.DataFrame:
    """AUC of the probability curve per group of ``keys`` (trapezoid over ``fraction``): columns keys + ``auc``."""
    keys = list(keys)
    if curves.empty:
        return pd.DataFrame(columns=[*keys, "auc"])
    ordered = curves.sort_values([*keys, "fraction"])
    out = ordered.groupby(keys, sort=False).apply(
        lambda g: float(auc(g["probability"].to_numpy(), g["fraction"].to_numpy())), include_groups=False)
    return out.rename("auc").reset_index()


MIN_DIFFERENCE = 1e-3
"""Smallest mean AUC difference to random that a verdict counts as an effect (AUC is in [0, 1])."""


def verdict(test: str, difference: float, low: float, high: float, p: float, n: int, alpha: float = 0.05) -> str:
    """One plain line: whether the method beats random on ``test``, with the difference and its interval."""
    better = TESTS[test][1]
    if n == 0 or not np.isfinite(difference):
        return f"{test}: not measured"
    good = (high < 0) if better == "lower" else (low > 0)
    bad = (low > 0) if better == "lower" else (high < 0)
    p_text = "<0.001" if p < 0.001 else f"{p:.3f}"
    tiny = abs(difference) < MIN_DIFFERENCE
    what = ("beats random" if good and p < alpha and not tiny else "worse than random" if bad and p < alpha
            and not tiny else "does not beat random")
    note = f", below the {MIN_DIFFERENCE:g} counted as an effect" if tiny and (good or bad) and p < alpha else ""
    return (f"{what} on {test} ({better} AUC is better): difference to random {difference:+.3f} "
            f"[{low:+.3f}, {high:+.3f}]{note}, Wilcoxon p {p_text}, n={n}")


def compare_with_random(aucs: pd.DataFrame, *, n_boot: int = N_BOOT, seed: int = 0, level: float = 0.95,
                        alpha: float = 0.05) -> pd.DataFrame:
    """Every method against its random map, per (method, baseline, unit, test).

    Args:
        aucs: one row per image with columns method, baseline, unit, test, image_id, ``auc`` (the
            method's map) and ``random_auc`` (the random map of the same resolution).
        n_boot, seed, level: bootstrap of the mean paired difference.
        alpha: significance level of the verdict.

    Returns:
        DataFrame with :data:`SUMMARY_COLUMNS`; ``difference`` = mean(auc - random_auc);
        ``beats_random`` True / False; ``verdict`` a plain line (see :func:`verdict`).
    """
    rows = []
    for (method, baseline, unit, test), g in aucs.groupby(["method", "baseline", "unit", "test"], sort=True):
        a, r = g["auc"].to_numpy(np.float64), g["random_auc"].to_numpy(np.float64)
        cmp = paired_difference(a, r, n_boot=n_boot, seed=seed, level=level)
        d, t = cmp.difference, cmp.test
        line = verdict(test, d.value, d.low, d.high, t.p_value, t.n, alpha)
        rows.append({"method": method, "baseline": baseline, "unit": unit, "test": test, "better": TESTS[test][1],
                     "n_images": int(t.n), "auc": float(np.nanmean(a)), "random_auc": float(np.nanmean(r)),
                     "difference": d.value, "difference_low": d.low, "difference_high": d.high,
                     "wilcoxon_p": t.p_value, "effect": t.effect, "beats_random": line.startswith("beats"),
                     "verdict": line})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
