"""Faithfulness (perturbation curves) and localisation (ground-truth masks) of relevance maps.

Perturbation (Chefer et al. CVPR 2021, after Samek et al.): pixels are deleted in order of
relevance, in steps (default 0, 10, ..., 90% of the pixels), and the model is re-run.

- ``mode='positive'``: most relevant pixels first. A faithful map destroys the prediction
  quickly: LOWER area under the curve is better.
- ``mode='negative'``: least relevant pixels first. A faithful map keeps the prediction:
  HIGHER AUC is better.

- ``mode='insertion'`` (RISE, Petsiuk et al. 2018): start from the baseline and restore the
  most relevant pixels first: HIGHER AUC is better. ``grid=(gh, gw)`` steps on whole tokens.
  Per-image curves against a random map: :mod:`retcore.faithfulness`.

Recorded per step: the class predicted, the target logit and the target probability
(softmax); the target is the original prediction unless given. Accuracy at a step = share
of images whose prediction still equals the target ("accuracy of the original
prediction"). AUC = trapezoid rule over the fractions (not divided by their range; with
the defaults the maximum is 0.9).

Deleting a pixel sets all its channels to ``fill`` in the *normalised* input space:
'zero' (default) = the dataset-mean colour of the normalisation (ImageNet mean for
RETFound), 'mean' = the image's own per-channel mean, or given values. (The authors'
script zeroed pixels before normalisation, i.e. black; pass ``fill=(-mean/std)`` per
channel to reproduce that.) Token-grid maps are first upsampled bilinearly
(``align_corners=False``) to the image size, as for display; ties in the pixel ranking
are broken by a seeded random permutation, so equal relevance never favours the top rows.

Localisation (definitions as in Quantus; Arras et al. 2022 for the last two), on a map
resampled the same way (bilinear) to the mask's resolution:

- pointing game: 1 if a maximum of the map lies in the mask, else 0 (ties: any);
- relevance mass accuracy: sum of positive relevance in the mask / sum of positive
  relevance in the image;
- relevance rank accuracy: with K = mask size, the share of the K most relevant pixels
  that lie in the mask (pixels tied at the K-th value are counted in expectation over a
  random tie order, so a constant map scores the mask's area share).

All three are NaN for an empty mask; mass accuracy also for a map with no positive value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "DEFAULT_FRACTIONS",
    "PerturbationResult",
    "auc",
    "localisation_scores",
    "merge_perturbation_results",
    "perturbation_curve",
    "perturbation_test",
    "pointing_game",
    "relevance_mass_accuracy",
    "relevance_rank_accuracy",
    "resize_relevance",
]

DEFAULT_FRACTIONS: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
"""Shares of the pixels deleted at each step (0 = the unperturbed image)."""


def auc(values: np.ndarray, fractions: Sequence[float]) -> np.ndarray:
    """Trapezoid area under curve(s) over ``fractions``.

    Args:
        values: (..., S) curve values at the S fractions.
        fractions: (S,) increasing x positions.

    Returns:
        (...) areas (float64).
    """
    return np.trapezoid(np.asarray(values, np.float64), np.asarray(fractions, np.float64), axis=-1)


@dataclass(frozen=True)
class PerturbationResult:
    """Outcome of one perturbation test on a batch.

    mode: 'positive' | 'negative'. fractions: (S,) shares of pixels deleted.
    target: (B,) class tracked (original prediction unless given).
    predicted: (B, S) class predicted at each step.
    target_logit, target_prob: (B, S) logit and softmax probability of the target.
    """

    mode: str
    fractions: np.ndarray
    target: np.ndarray
    predicted: np.ndarray
    target_logit: np.ndarray
    target_prob: np.ndarray

    @property
    def accuracy(self) -> np.ndarray:
        """(S,) share of images still predicting the target at each step."""
        return (self.predicted == self.target[:, None]).mean(axis=0)

    @property
    def auc_accuracy(self) -> float:
        """AUC of the accuracy curve."""
        return float(auc(self.accuracy, self.fractions))

    @property
    def auc_logit(self) -> float:
        """Mean over images of the AUC of the target-logit curve."""
        return float(auc(self.target_logit, self.fractions).mean())

    @property
    def auc_prob(self) -> float:
        """Mean over images of the AUC of the target-probability curve."""
        return float(auc(self.target_prob, self.fractions).mean())

    def summary(self) -> dict[str, float]:
        """``{'auc_accuracy', 'auc_logit', 'auc_prob'}`` for a results table."""
        return {"auc_accuracy": self.auc_accuracy, "auc_logit": self.auc_logit, "auc_prob": self.auc_prob}


def _as_tensor(x: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    return t.detach().to(device=device, dtype=torch.float32)


def _fill_values(images: torch.Tensor, fill: str | float | Sequence[float] | torch.Tensor) -> torch.Tensor:
    """(B, C, 1, 1) replacement values, or the (B, C, H, W) baseline images, in normalised space."""
    b, c = images.shape[:2]
    if isinstance(fill, torch.Tensor) and fill.ndim == 4:
        if fill.shape != images.shape:
            raise ValueError(f"baseline images {tuple(fill.shape)} differ from images {tuple(images.shape)}")
        return fill.to(device=images.device, dtype=images.dtype)
    if isinstance(fill, str):
        if fill == "zero":
            return images.new_zeros((b, c, 1, 1))
        if fill == "mean":
            return images.mean(dim=(2, 3), keepdim=True)
        raise ValueError(f"fill={fill!r}: use 'zero', 'mean', a number or one value per channel")
    vals = torch.as_tensor(fill, dtype=images.dtype, device=images.device).reshape(-1)
    if vals.numel() == 1:
        vals = vals.expand(c)
    if vals.numel() != c:
        raise ValueError(f"fill has {vals.numel()} values for {c} channels")
    return vals.reshape(1, c, 1, 1).expand(b, c, 1, 1)


def _pixel_ranks(rel: torch.Tensor, mode: str, seed: int) -> torch.Tensor:
    """(B, N) rank of every pixel (or token) in the order of change (0 = deleted / inserted first)."""
    b, n = rel.shape
    gen = torch.Generator().manual_seed(seed)
    ranks = torch.empty((b, n), dtype=torch.long, device=rel.device)
    for i in range(b):
        perm = torch.randperm(n, generator=gen).to(rel.device)
        key = rel[i, perm]
        order = perm[torch.sort(key, descending=(mode != "negative"), stable=True).indices]
        ranks[i, order] = torch.arange(n, device=rel.device)
    return ranks


def perturbation_curve(
    model: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    relevance: np.ndarray | torch.Tensor,
    *,
    mode: str = "positive",
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    target: np.ndarray | torch.Tensor | Sequence[int] | None = None,
    fill: str | float | Sequence[float] | torch.Tensor = "zero",
    batch_size: int = 32,
    seed: int = 0,
    grid: tuple[int, int] | None = None,
) -> PerturbationResult:
    """Delete the most (positive) or least (negative) relevant pixels step by step, or insert the
    most relevant ones into the baseline (insertion, as RISE).

    Args:
        model: callable mapping (b, C, H, W) normalised images to (b, K) logits; called
            under ``torch.no_grad()`` and never switched to eval mode here (pass a model
            in eval mode).
        images: (B, C, H, W) float tensor, normalised as the model expects.
        relevance: (B, h, w) raw relevance (token grid or pixels, numpy or torch); maps
            of another size are upsampled bilinearly to (H, W).
        mode: 'positive' (delete the most relevant first, MoRF), 'negative' (delete the least
            relevant first, LeRF) or 'insertion' (start from the baseline ``fill`` and restore
            the most relevant first; step 0 is the baseline itself).
        fractions: increasing shares in [0, 1] of the H x W pixels changed at each step;
            step f changes round(f x H x W) pixels (tokens with ``grid``).
        target: (B,) classes to track; None = the model's prediction on the originals.
        fill: replacement in normalised space: 'zero', 'mean' (per image and channel),
            a number, one number per channel, or (B, C, H, W) baseline images
            (``retcore.faithfulness.baseline_images``: blurred copy, dataset mean).
        batch_size: images per forward pass.
        seed: seed of the random tie-break between equally relevant pixels.
        grid: (gh, gw) to step on the token grid: the map is average-pooled to the grid (a
            grid-sized map is used as is) and whole tokens of (H/gh, W/gw) pixels change
            together; None = step on pixels (the map upsampled bilinearly).

    Returns:
        ``PerturbationResult`` (curves (B, S) and AUCs).
    """
    if mode not in ("positive", "negative", "insertion"):
        raise ValueError(f"mode={mode!r}: use 'positive', 'negative' or 'insertion'")
    if images.ndim != 4:
        raise ValueError(f"images must be (B, C, H, W), got shape {tuple(images.shape)}")
    fr = np.asarray(list(fractions), np.float64)
    if fr.ndim != 1 or fr.size == 0 or np.any(np.diff(fr) <= 0) or fr[0] < 0 or fr[-1] > 1:
        raise ValueError(f"fractions must be increasing values in [0, 1], got {list(fractions)}")
    device = images.device
    b, c, h, w = images.shape
    rel = _as_tensor(relevance, device)
    if rel.ndim == 2:
        rel = rel.unsqueeze(0)
    if rel.ndim != 3 or rel.shape[0] != b:
        raise ValueError(f"relevance must be (B, h, w) with B={b}, got shape {tuple(rel.shape)}")
    if not torch.isfinite(rel).all():
        raise ValueError("relevance contains NaN or infinite values")
    if grid is not None:
        gh, gw = int(grid[0]), int(grid[1])
        if h % gh or w % gw:
            raise ValueError(f"grid {gh}x{gw} does not tile the {h}x{w} image")
        if rel.shape[1:] != (gh, gw):
            if rel.shape[1] % gh or rel.shape[2] % gw:
                rel = F.interpolate(rel.unsqueeze(1), size=(h, w), mode="bilinear", align_corners=False)[:, 0]
            rel = F.adaptive_avg_pool2d(rel.unsqueeze(1), (gh, gw))[:, 0]
        cells = _pixel_ranks(rel.reshape(b, -1), mode, seed).reshape(b, 1, gh, gw)
        ranks = cells.repeat_interleave(h // gh, dim=2).repeat_interleave(w // gw, dim=3)
        n_units = gh * gw
    else:
        if rel.shape[1:] != (h, w):
            rel = F.interpolate(rel.unsqueeze(1), size=(h, w), mode="bilinear", align_corners=False)[:, 0]
        ranks = _pixel_ranks(rel.reshape(b, -1), mode, seed).reshape(b, 1, h, w)
        n_units = h * w
    fills = _fill_values(images, fill)

    def run(x: torch.Tensor) -> torch.Tensor:
        outs = [model(x[i:i + batch_size]).float() for i in range(0, x.shape[0], batch_size)]
        return torch.cat(outs, 0)

    with torch.no_grad():
        logits0 = run(images)
        if target is None:
            tgt = logits0.argmax(dim=1)
        else:
            tgt = torch.as_tensor(np.asarray(target) if not isinstance(target, torch.Tensor) else target,
                                  device=device).long().reshape(-1)
            if tgt.numel() != b:
                raise ValueError(f"target has {tgt.numel()} entries for {b} images")
            k = logits0.shape[1]
            if tgt.min() < 0 or tgt.max() >= k:
                raise ValueError(f"target classes must lie in [0, {k - 1}]")
        preds, tlog, tprob = [], [], []
        for f in fr:
            n_del = int(round(f * n_units))
            if mode == "insertion":
                logits = logits0 if n_del == n_units else run(torch.where(ranks < n_del, images, fills))
            elif n_del == 0:
                logits = logits0
            else:
                x = torch.where(ranks < n_del, fills, images)
                logits = run(x)
            preds.append(logits.argmax(dim=1))
            tlog.append(logits.gather(1, tgt[:, None])[:, 0])
            tprob.append(torch.softmax(logits, dim=1).gather(1, tgt[:, None])[:, 0])
    stack = lambda xs: torch.stack(xs, 1).cpu().numpy()  # noqa: E731
    return PerturbationResult(mode=mode, fractions=fr, target=tgt.cpu().numpy(), predicted=stack(preds),
                              target_logit=stack(tlog).astype(np.float64), target_prob=stack(tprob).astype(np.float64))


def merge_perturbation_results(parts: Sequence[PerturbationResult]) -> PerturbationResult:
    """One result from the results of consecutive batches (same mode and fractions), images concatenated."""
    if not parts:
        raise ValueError("no perturbation results to merge")
    first = parts[0]
    for part in parts[1:]:
        if part.mode != first.mode or not np.array_equal(part.fractions, first.fractions):
            raise ValueError("perturbation results to merge must share the mode and the fractions")
    cat = lambda name: np.concatenate([getattr(p, name) for p in parts], axis=0)  # noqa: E731
    return PerturbationResult(mode=first.mode, fractions=first.fractions, target=cat("target"),
                              predicted=cat("predicted"), target_logit=cat("target_logit"),
                              target_prob=cat("target_prob"))


def perturbation_test(model: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
                      relevance: np.ndarray | torch.Tensor, **kwargs: object) -> dict[str, PerturbationResult]:
    """Both tests: ``{'positive': ..., 'negative': ...}`` (``perturbation_curve`` arguments)."""
    return {m: perturbation_curve(model, images, relevance, mode=m, **kwargs) for m in ("positive", "negative")}


# ------------------------------------------------------------------ localisation


def resize_relevance(relevance: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize (half-pixel centres, edge clamp; = torch ``align_corners=False``).

    Args:
        relevance: (h, w) map.
        shape: (H, W) target size.

    Returns:
        (H, W) float64 map (the input itself, as float64, when the size already matches).
    """
    r = np.asarray(relevance, np.float64)
    if r.ndim != 2:
        raise ValueError(f"relevance must be 2-D, got shape {r.shape}")
    if r.shape == tuple(shape):
        return r

    def axis_weights(n_out: int, n_in: int) -> np.ndarray:
        src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
        src = np.clip(src, 0.0, None)
        i0 = np.minimum(np.floor(src).astype(int), n_in - 1)
        i1 = np.minimum(i0 + 1, n_in - 1)
        t = src - i0
        m = np.zeros((n_out, n_in))
        np.add.at(m, (np.arange(n_out), i0), 1.0 - t)
        np.add.at(m, (np.arange(n_out), i1), t)
        return m

    wy, wx = axis_weights(int(shape[0]), r.shape[0]), axis_weights(int(shape[1]), r.shape[1])
    return wy @ r @ wx.T


def _prepare(relevance: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    m = np.asarray(mask).astype(bool)
    if m.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {m.shape}")
    r = resize_relevance(relevance, m.shape)
    if not np.isfinite(r).all():
        raise ValueError("relevance contains NaN or infinite values")
    return r, m


def pointing_game(relevance: np.ndarray, mask: np.ndarray) -> float:
    """1.0 if a maximum of the relevance lies inside the mask, else 0.0 (NaN: empty mask).

    Args:
        relevance: (h, w) raw relevance; resized bilinearly to the mask size if needed.
        mask: (H, W) bool ground truth.
    """
    r, m = _prepare(relevance, mask)
    if not m.any():
        return float("nan")
    return float(bool(m[r == r.max()].any()))


def relevance_mass_accuracy(relevance: np.ndarray, mask: np.ndarray) -> float:
    """Share of the positive relevance that lies inside the mask (0..1; NaN: empty mask or no
    positive relevance).

    Args:
        relevance: (h, w) raw relevance; resized bilinearly to the mask size if needed.
        mask: (H, W) bool ground truth.
    """
    r, m = _prepare(relevance, mask)
    pos = np.clip(r, 0.0, None)
    total = float(pos.sum())
    if not m.any() or total <= 0:
        return float("nan")
    return float(pos[m].sum() / total)


def relevance_rank_accuracy(relevance: np.ndarray, mask: np.ndarray) -> float:
    """Share of the K most relevant pixels inside the mask, K = mask size (0..1; NaN: empty
    mask). Pixels tied with the K-th value share the remaining places in expectation.

    Args:
        relevance: (h, w) raw relevance; resized bilinearly to the mask size if needed.
        mask: (H, W) bool ground truth.
    """
    r, m = _prepare(relevance, mask)
    k = int(m.sum())
    if k == 0:
        return float("nan")
    flat, inside = r.ravel(), m.ravel()
    kth = np.partition(flat, flat.size - k)[flat.size - k]  # K-th largest value
    above = flat > kth
    tied = flat == kth
    slots = k - int(above.sum())
    hits = float((above & inside).sum())
    n_tied = int(tied.sum())
    if slots > 0 and n_tied > 0:
        hits += slots * float((tied & inside).sum()) / n_tied
    return hits / k


def localisation_scores(relevance: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """``{'pointing_game', 'mass_accuracy', 'rank_accuracy'}`` of one map against one mask."""
    return {
        "pointing_game": pointing_game(relevance, mask),
        "mass_accuracy": relevance_mass_accuracy(relevance, mask),
        "rank_accuracy": relevance_rank_accuracy(relevance, mask),
    }
