"""Drift of where the model looks: distances between groups with permutation p-values.

Heatmaps (2-D relevance grids, e.g. 14 x 14) are compared as distributions over cells.
``normalise_heatmaps`` keeps the positive part and scales each map to sum 1 (as the zone
scores do, ``retcore.zones``); a group's mean heatmap is the cell-wise mean of its
normalised maps (again a distribution). Distance between two mean heatmaps P and Q:

    Jensen-Shannon distance JSD(P, Q) = sqrt( KL(P || M) / 2 + KL(Q || M) / 2 ),
    M = (P + Q) / 2, KL(P || M) = sum_k P_k log2(P_k / M_k)  (0 log 0 = 0),

a metric in [0, 1] (base-2 logarithms); 0 = same mean map, 1 = disjoint support. It
equals ``scipy.spatial.distance.jensenshannon(P, Q, base=2)``.

Zone scores (one value per image) are compared by the 1-D Wasserstein (earth mover's)
distance of the two empirical distributions, W1(A, B) = integral |F_A(t) - F_B(t)| dt
(in the units of the score; ``scipy.stats.wasserstein_distance``).

Permutation p-value: pool both groups, draw ``n_permutations`` random relabellings that
keep the group sizes (seeded generator), recompute the distance for each, and report
p = (1 + #{d_perm >= d_obs}) / (1 + n_permutations) (never 0; identical groups give 1).
Cost with N = n_a + n_b and P permutations: heatmaps O(P N K) (one matrix product per
chunk of permutations, K = cells; ~0.2 s for N = 10,000, K = 196, P = 1,000), scores
O(N log N + P N) (cumulative counts over the pooled sorted values).
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps
from scipy.special import rel_entr

from retcore.stats.groups import holm
from retcore.stats.intervals import CHUNK_CELLS, Seed, rng_from, single_threaded_blas

__all__ = [
    "N_PERMUTATIONS",
    "DriftResult",
    "drift_matrix",
    "heatmap_drift",
    "js_distance",
    "mean_heatmap",
    "normalise_heatmaps",
    "score_drift",
    "wasserstein",
]

N_PERMUTATIONS = 1000
"""Default number of permutations."""

NAN = float("nan")


@dataclass(frozen=True)
class DriftResult:
    """Distance between two groups with its permutation p-value.

    metric: 'jensen-shannon' (heatmaps) | 'wasserstein' (scores); distance: observed
    distance; p_value: permutation p-value (NaN with no permutations or an empty group);
    n_a, n_b: group sizes used.
    """

    metric: str
    distance: float
    p_value: float
    n_a: int
    n_b: int


def normalise_heatmaps(maps: np.ndarray) -> np.ndarray:
    """Positive part of each map (N, H, W), scaled to sum 1; maps with no positive mass become NaN."""
    maps = np.asarray(maps, dtype=np.float64)
    positive = np.clip(np.nan_to_num(maps, nan=0.0), 0.0, None)
    total = positive.reshape(len(maps), -1).sum(axis=1).reshape((-1,) + (1,) * (maps.ndim - 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, positive / total, np.nan)


def mean_heatmap(maps: np.ndarray) -> np.ndarray:
    """Cell-wise mean (H, W) of normalised maps (N, H, W), skipping maps with a NaN; NaN if none."""
    maps = np.asarray(maps, dtype=np.float64)
    ok = np.isfinite(maps.reshape(len(maps), -1)).all(axis=1)
    if not ok.any():
        return np.full(maps.shape[1:], np.nan)
    return maps[ok].mean(axis=0)


def _js_divergence_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Base-2 JS divergence of the rows of (b, K) non-negative arrays, each row scaled to sum 1."""
    p = p / p.sum(axis=-1, keepdims=True)
    q = q / q.sum(axis=-1, keepdims=True)
    m = 0.5 * (p + q)
    js = 0.5 * (rel_entr(p, m).sum(axis=-1) + rel_entr(q, m).sum(axis=-1)) / np.log(2.0)
    return np.clip(js, 0.0, 1.0)


def js_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) of two non-negative grids of the same shape."""
    p = np.asarray(p, dtype=np.float64).ravel()
    q = np.asarray(q, dtype=np.float64).ravel()
    if p.shape != q.shape:
        raise ValueError(f"distributions differ in shape: {p.shape} vs {q.shape}")
    if p.sum() <= 0 or q.sum() <= 0 or not (np.isfinite(p).all() and np.isfinite(q).all()):
        return NAN
    return float(np.sqrt(_js_divergence_rows(p[None], q[None])[0]))


def wasserstein(a: np.ndarray, b: np.ndarray) -> float:
    """1-D Wasserstein distance of two samples (NaN dropped; NaN if either is empty)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) == 0 or len(b) == 0:
        return NAN
    return float(sps.wasserstein_distance(a, b))


def _permutation_p(kernel: Callable[[np.ndarray], np.ndarray], observed_mask: np.ndarray,
                   n_permutations: int, rng: np.random.Generator) -> tuple[float, float]:
    """(observed statistic, p-value) of ``kernel`` (b, N) masks -> (b,) under relabelling.

    Each permuted mask marks a uniformly random subset of the observed group-a size.
    """
    n = len(observed_mask)
    n_a = int(observed_mask.sum())
    with single_threaded_blas():
        observed = float(kernel(observed_mask[None].astype(np.float64))[0])
    if n_permutations <= 0:
        return observed, NAN
    m = min(n_a, n - n_a)  # draw the smaller side: cheaper without replacement
    per_chunk = max(1, CHUNK_CELLS // n)
    exceed, done = 0, 0
    tol = 1e-12 * max(1.0, abs(observed))
    with single_threaded_blas():
        while done < n_permutations:
            b = min(per_chunk, n_permutations - done)
            masks = np.zeros((b, n))
            for row in masks:
                row[rng.choice(n, m, replace=False, shuffle=False)] = 1.0
            if m != n_a:
                masks = 1.0 - masks
            exceed += int(np.sum(kernel(masks) >= observed - tol))
            done += b
    return observed, (1 + exceed) / (1 + n_permutations)


def heatmap_drift(maps_a: np.ndarray, maps_b: np.ndarray, n_permutations: int = N_PERMUTATIONS,
                  seed: Seed = 0) -> DriftResult:
    """JS distance between the mean normalised heatmaps of two groups, with permutation p-value.

    ``maps_a`` (n_a, H, W) and ``maps_b`` (n_b, H, W) are normalised maps (see
    ``normalise_heatmaps``); maps containing NaN are dropped.
    """
    a = np.asarray(maps_a, dtype=np.float64)
    b = np.asarray(maps_b, dtype=np.float64)
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"heatmap grids differ: {a.shape[1:]} vs {b.shape[1:]}")
    cells = int(np.prod(a.shape[1:]))
    a = a.reshape(len(a), cells)
    b = b.reshape(len(b), cells)
    a, b = a[np.isfinite(a).all(axis=1)], b[np.isfinite(b).all(axis=1)]
    n_a, n_b = len(a), len(b)
    if n_a == 0 or n_b == 0:
        return DriftResult("jensen-shannon", NAN, NAN, n_a, n_b)
    pooled = np.concatenate([a, b])
    total = pooled.sum(axis=0)

    def kernel(masks: np.ndarray) -> np.ndarray:
        sum_a = masks @ pooled
        return _js_divergence_rows(sum_a / n_a, (total - sum_a) / n_b)

    mask = np.r_[np.ones(n_a), np.zeros(n_b)]
    divergence, p = _permutation_p(kernel, mask, n_permutations, rng_from(seed))
    return DriftResult("jensen-shannon", float(np.sqrt(divergence)), p, n_a, n_b)


def score_drift(scores_a: np.ndarray, scores_b: np.ndarray, n_permutations: int = N_PERMUTATIONS,
                seed: Seed = 0) -> DriftResult:
    """1-D Wasserstein distance between two groups' zone scores, with permutation p-value."""
    a = np.asarray(scores_a, dtype=np.float64).ravel()
    b = np.asarray(scores_b, dtype=np.float64).ravel()
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    n_a, n_b = len(a), len(b)
    if n_a == 0 or n_b == 0:
        return DriftResult("wasserstein", NAN, NAN, n_a, n_b)
    pooled = np.concatenate([a, b])
    order = np.argsort(pooled, kind="stable")
    gaps = np.diff(pooled[order])  # (N - 1,): F_A - F_B is constant on each gap
    below = np.arange(1, len(pooled), dtype=np.float64)  # pooled values <= each gap's left end

    def kernel(masks: np.ndarray) -> np.ndarray:
        count_a = np.cumsum(masks, axis=1)[:, :-1]
        return np.abs(count_a / n_a - (below - count_a) / n_b) @ gaps

    mask = np.r_[np.ones(n_a), np.zeros(n_b)][order]  # permutations are drawn in sorted order
    distance, p = _permutation_p(kernel, mask, n_permutations, rng_from(seed))
    return DriftResult("wasserstein", distance, p, n_a, n_b)


def drift_matrix(values: np.ndarray, groups: Sequence, reference: object | None = None,
                 n_permutations: int = N_PERMUTATIONS, seed: Seed = 0) -> pd.DataFrame:
    """Drift between groups: every group vs ``reference``, or every pair when it is None.

    ``values`` are zone scores (N,) -> Wasserstein, or normalised heatmaps (N, H, W) ->
    JS distance; ``groups`` (N,) the group of each row (NaN/None rows dropped). Groups are
    taken in sorted order. Columns: group_a, group_b (the reference), metric, distance,
    p_value, p_holm (Holm over the rows of the table), n_a, n_b. Each pair draws its
    permutations from its own child generator of ``seed``.
    """
    values = np.asarray(values)
    labels = pd.Series(np.asarray(groups, dtype=object))
    if len(labels) != len(values):
        raise ValueError(f"values and groups differ in length: {len(values)} vs {len(labels)}")
    known = labels.notna().to_numpy()
    names = sorted(labels[known].unique(), key=str)
    if reference is not None and reference not in names:
        raise ValueError(f"reference group {reference!r} not among {names}")
    pairs = ([(g, reference) for g in names if g != reference] if reference is not None
             else list(itertools.combinations(names, 2)))
    test = score_drift if values.ndim == 1 else heatmap_drift
    rngs = rng_from(seed).spawn(len(pairs)) if pairs else []
    rows = []
    for (ga, gb), rng in zip(pairs, rngs):
        result = test(values[(labels == ga).to_numpy()], values[(labels == gb).to_numpy()], n_permutations, rng)
        rows.append({"group_a": ga, "group_b": gb, **asdict(result)})
    columns = ["group_a", "group_b", "metric", "distance", "p_value", "n_a", "n_b"]
    out = pd.DataFrame(rows, columns=columns)
    out.insert(5, "p_holm", holm(out["p_value"].to_numpy(np.float64)))
    return out
