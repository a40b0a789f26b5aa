"""Zones of a fundus photo and where a relevance map puts its mass.

Zone sets are registered by name (``@register_zone_set``). Each is computed in the
field-of-view (FOV) frame of one image, described by a ``ZoneContext`` (image size, FOV
circle, optionally optic disc, fovea, eye and user masks, all in image pixels), and
returns named boolean masks rasterised on any grid that spans the image: the full
image, or a ViT token grid. A grid cell belongs to a zone when its centre does.

Frames: the relevance map, the zone masks and the FOV mask must describe the same
image (for a model explanation: the model-input crop, so detect landmarks on that crop
or map them into it).

Registered sets:

- ``thirds``: ``center`` = central disk of radius ``radius x FOV radius`` (default
  ``THIRDS_RADIUS = 1/sqrt(3) ~ 0.577``, which gives the three zones equal areas: 1/3 of
  the FOV each); ``left`` / ``right`` = the rest of the FOV on the viewer's left / right
  of the vertical line through the FOV centre. When the eye is known, ``nasal`` and
  ``temporal`` are added as aliases: the disc is nasal and sits on the viewer's right in a
  right eye (see ``retcore.anatomy``), so right eye: nasal = right, temporal = left; left
  eye: nasal = left, temporal = right. Aliases duplicate masks, so shares of all the
  returned zones sum to 2, not 1.
- ``anatomy``: ``optic_disc`` = square centred on the disc with side
  ``disc_box x disc radius`` (default 3: the disc plus half a radius of margin on each
  side, room for detection error); ``macula`` = disk around the fovea of radius
  ``macula_radius x disc radius`` (default 2 = one disc diameter; the fovea defaults to
  ``retcore.anatomy.fovea_geometric``); ``central`` = central disk of the FOV of radius
  ``central_radius x FOV radius`` (default 0.5: the lens / cataract-haze region);
  ``periphery`` = the FOV outside ``periphery_radius x FOV radius`` (default 0.8). All
  clipped to the FOV circle. These zones may overlap (the macula lies inside the central
  disk), so their shares do not sum to 1.
- ``mask``: the user masks of the context (e.g. ``decode_mask_bits`` of the demo mask:
  lesion, disc, marker), resampled to the grid by majority (area coverage >= 0.5).

Scores (``zone_scores``), always on the positive part ``R+ = max(R, 0)`` of the raw
relevance, never on a min-max-normalised map, so they are invariant to positive scaling:

- mass share = sum(R+ in zone and FOV) / sum(R+ in FOV);
- area share = area(zone and FOV) / area(FOV);
- score = mass share / area share (1.0 = no preference, > 1 = the zone attracts relevance);
- peak: whether the zone holds the relevance maximum (the FOV cell with the largest R+).

Resampling choice: the relevance is transferred onto the zone-mask grid by
*area-weighted, mass-conserving* transfer: each relevance cell's mass is spread
uniformly over the area it covers (equivalently, each zone is rasterised on the relevance
grid by its area coverage of every cell), and a relevance grid finer than the masks is
summed into the mask cells by overlap. Area shares are counted on the mask grid, so a
uniform map scores exactly 1.0 in every zone at any pair of resolutions. Prefer masks at
full image resolution: a token-grid mask rounds zone borders to whole tokens.

``concentration`` measures how peaked the map is over the FOV on its own grid:
normalised entropy (1 = uniform, 0 = one cell) and Gini coefficient (0 = uniform,
(n-1)/n = one cell).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from retcore.anatomy import Landmarks, fovea_geometric
from retcore.registry import Registry

__all__ = [
    "DEMO_MASK_BITS",
    "THIRDS_RADIUS",
    "ZONE_SET_REGISTRY",
    "ZoneContext",
    "ZoneScore",
    "area_transfer",
    "circle_mask",
    "compute_zones",
    "concentration",
    "decode_mask_bits",
    "list_zone_sets",
    "peak_zone",
    "register_zone_set",
    "score_zone_set",
    "zone_scores",
]

THIRDS_RADIUS = 1.0 / math.sqrt(3.0)
"""Central-disk radius (x FOV radius) of the ``thirds`` set: three zones of equal area."""

DEMO_MASK_BITS: dict[str, int] = {"lesion": 1, "disc": 2, "marker": 4}
"""Bits of the demo mask PNG (``retcore.demo``): lesion / class evidence, optic disc, marker."""


@dataclass(frozen=True)
class ZoneContext:
    """Geometry of one image in which zones are drawn (all in image pixels).

    height, width: image size (pixels) that every zone grid spans.
    fov: (cx, cy, r) FOV circle (continuous coordinates, pixel centres at +0.5).
    disc: (x, y, r) optic disc, or None (the ``anatomy`` set needs it).
    fovea: (x, y), or None (``anatomy`` then uses ``fovea_geometric``).
    eye: 'left' | 'right' | None; adds nasal/temporal to ``thirds`` when known.
    masks: user masks, name -> (height, width) bool, for the ``mask`` set.
    """

    height: int
    width: int
    fov: tuple[float, float, float]
    disc: tuple[float, float, float] | None = None
    fovea: tuple[float, float] | None = None
    eye: str | None = None
    masks: Mapping[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def from_landmarks(cls, landmarks: Landmarks, height: int, width: int, *, eye: str | None = None,
                       masks: Mapping[str, np.ndarray] | None = None) -> ZoneContext:
        """Context from detected ``Landmarks`` of a (height, width) image.

        ``eye`` is the known laterality (e.g. from the file name); pass
        ``landmarks.eye_estimate`` explicitly to use the disc-side estimate instead.
        """
        return cls(height=height, width=width, fov=landmarks.fov, disc=landmarks.disc,
                   fovea=landmarks.fovea, eye=eye, masks=dict(masks or {}))


@dataclass(frozen=True)
class ZoneScore:
    """Where a relevance map puts its positive mass, for one zone.

    zone: zone name. mass_share: share of the FOV's positive relevance in the zone (0..1).
    area_share: zone area / FOV area (0..1). score: mass_share / area_share (1.0 =
    uniform; NaN for an empty zone). peak: the zone holds the map's maximum.
    """

    zone: str
    mass_share: float
    area_share: float
    score: float
    peak: bool


ZoneSetFn = Callable[..., dict[str, np.ndarray]]
ZONE_SET_REGISTRY: Registry[ZoneSetFn] = Registry("zone set")
"""Name -> zone-set function; filled by :func:`register_zone_set`."""


def register_zone_set(name: str) -> Callable[[ZoneSetFn], ZoneSetFn]:
    """Decorator registering ``fn(ctx: ZoneContext, shape: (h, w), **params) -> {zone: (h, w) bool}``.

    Raises:
        retcore.registry.DuplicateNameError: ``name`` is already registered.
    """
    return ZONE_SET_REGISTRY.register(name)


def list_zone_sets() -> list[str]:
    """Names of the registered zone sets, in registration order."""
    return ZONE_SET_REGISTRY.names()


def compute_zones(name: str, ctx: ZoneContext, shape: tuple[int, int] | None = None,
                  **params: object) -> dict[str, np.ndarray]:
    """Masks of the zone set ``name`` on an (h, w) grid spanning the image.

    Args:
        name: a registered zone set (``list_zone_sets()``).
        ctx: geometry of the image.
        shape: (h, w) of the grid; default the image size (ctx.height, ctx.width).
        **params: options of the zone set (see the module docstring).

    Returns:
        ``{zone name: (h, w) bool mask}``.

    Raises:
        retcore.registry.UnknownNameError: ``name`` is not registered (the message lists the names).
    """
    fn = ZONE_SET_REGISTRY.get(name)
    grid = (ctx.height, ctx.width) if shape is None else (int(shape[0]), int(shape[1]))
    return fn(ctx, grid, **params)


# --------------------------------------------------------------------- geometry


def _cell_centres(ctx_h: int, ctx_w: int, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Image-pixel coordinates (x (1, w), y (h, 1)) of the cell centres of an (h, w) grid."""
    h, w = shape
    xs = (np.arange(w, dtype=np.float64) + 0.5) * (ctx_w / w)
    ys = (np.arange(h, dtype=np.float64) + 0.5) * (ctx_h / h)
    return xs[None, :], ys[:, None]


def circle_mask(ctx: ZoneContext, shape: tuple[int, int] | None = None, scale: float = 1.0) -> np.ndarray:
    """Cells of an (h, w) grid whose centre lies within ``scale x`` the FOV circle.

    Args:
        ctx: geometry (FOV circle in image pixels).
        shape: (h, w) grid spanning the image; default the image size.
        scale: radius factor (1.0 = the FOV circle itself).

    Returns:
        (h, w) bool mask.
    """
    grid = (ctx.height, ctx.width) if shape is None else shape
    xs, ys = _cell_centres(ctx.height, ctx.width, grid)
    cx, cy, r = ctx.fov
    return np.hypot(xs - cx, ys - cy) <= scale * r


@register_zone_set("thirds")
def thirds_zones(ctx: ZoneContext, shape: tuple[int, int], radius: float = THIRDS_RADIUS) -> dict[str, np.ndarray]:
    """``center`` disk (radius x FOV radius), ``left`` / ``right`` remainders of the FOV,
    plus ``nasal`` / ``temporal`` aliases when ``ctx.eye`` is known (see the module docstring)."""
    xs, ys = _cell_centres(ctx.height, ctx.width, shape)
    cx, cy, r = ctx.fov
    d = np.hypot(xs - cx, ys - cy)
    inside = d <= r
    center = d <= radius * r
    rest = inside & ~center
    right_half = np.broadcast_to(xs >= cx, shape)
    zones = {"center": center, "left": rest & ~right_half, "right": rest & right_half}
    if ctx.eye in ("left", "right"):
        nasal = "right" if ctx.eye == "right" else "left"
        temporal = "left" if nasal == "right" else "right"
        zones["nasal"] = zones[nasal].copy()
        zones["temporal"] = zones[temporal].copy()
    elif ctx.eye is not None:
        raise ValueError(f"eye={ctx.eye!r} is not 'left', 'right' or None")
    return zones


@register_zone_set("anatomy")
def anatomy_zones(ctx: ZoneContext, shape: tuple[int, int], disc_box: float = 3.0, macula_radius: float = 2.0,
                  central_radius: float = 0.5, periphery_radius: float = 0.8) -> dict[str, np.ndarray]:
    """``optic_disc`` box, ``macula`` disk, ``central`` disk and ``periphery`` ring, clipped
    to the FOV (sizes in the module docstring). Needs ``ctx.disc``."""
    if ctx.disc is None:
        raise ValueError("the 'anatomy' zone set needs the optic disc: build the ZoneContext with disc=(x, y, r), "
                         "e.g. ZoneContext.from_landmarks(detect_landmarks(rgb), H, W)")
    xs, ys = _cell_centres(ctx.height, ctx.width, shape)
    cx, cy, r = ctx.fov
    d = np.hypot(xs - cx, ys - cy)
    inside = d <= r
    dx, dy, dr = ctx.disc
    half = 0.5 * disc_box * dr
    fx, fy = ctx.fovea if ctx.fovea is not None else fovea_geometric(ctx.disc, cx)
    return {
        "optic_disc": inside & (np.abs(xs - dx) <= half) & (np.abs(ys - dy) <= half),
        "macula": inside & (np.hypot(xs - fx, ys - fy) <= macula_radius * dr),
        "central": d <= central_radius * r,
        "periphery": inside & (d > periphery_radius * r),
    }


@register_zone_set("mask")
def mask_zones(ctx: ZoneContext, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """The user masks of ``ctx.masks`` ((height, width) bool each), resampled to ``shape``
    by majority (a cell is in the zone when at least half its area is)."""
    out: dict[str, np.ndarray] = {}
    for name, m in ctx.masks.items():
        m = np.asarray(m)
        if m.shape != (ctx.height, ctx.width):
            raise ValueError(f"user mask {name!r} has shape {m.shape}, expected ({ctx.height}, {ctx.width})")
        if m.shape == tuple(shape):
            out[name] = m.astype(bool)
        else:
            cov = area_transfer(m.astype(np.float64), shape, mode="mean")
            out[name] = cov >= 0.5
    return out


def decode_mask_bits(mask: np.ndarray, bits: Mapping[str, int] = DEMO_MASK_BITS) -> dict[str, np.ndarray]:
    """Split a bit-field mask image into named boolean masks.

    Args:
        mask: (H, W) integer mask (e.g. the demo mask PNG: 1 lesion, 2 disc, 4 marker).
        bits: name -> bit value.

    Returns:
        ``{name: (H, W) bool}`` with ``mask & bit != 0``.
    """
    m = np.asarray(mask)
    if m.ndim == 3:
        m = m[..., 0]
    m = m.astype(np.int64)
    return {name: (m & int(bit)) != 0 for name, bit in bits.items()}


# ------------------------------------------------------------------ resampling


def _overlap(n_out: int, n_in: int) -> np.ndarray:
    """(n_out, n_in) overlap lengths of the cells of two partitions of [0, 1]."""
    edges_out = np.arange(n_out + 1, dtype=np.float64) / n_out
    edges_in = np.arange(n_in + 1, dtype=np.float64) / n_in
    lo = np.maximum(edges_out[:-1, None], edges_in[None, :-1])
    hi = np.minimum(edges_out[1:, None], edges_in[None, 1:])
    return np.clip(hi - lo, 0.0, None)


def area_transfer(x: np.ndarray, shape: tuple[int, int], mode: str = "mass") -> np.ndarray:
    """Resample an (h, w) array onto an (H, W) grid spanning the same extent, by area overlap.

    Args:
        x: (h, w) array.
        shape: (H, W) target grid.
        mode: 'mass' conserves the sum (each source cell's value is split over the target
            cells in proportion to the overlap: relevance mass); 'mean' gives each target
            cell the area-weighted mean of the source (coverage of a mask, densities).

    Returns:
        (H, W) float64 array.
    """
    x = np.asarray(x, np.float64)
    if x.ndim != 2:
        raise ValueError(f"area_transfer needs a 2-D array, got shape {x.shape}")
    (h, w), (hh, ww) = x.shape, (int(shape[0]), int(shape[1]))
    if (h, w) == (hh, ww):
        return x.copy()
    oy, ox = _overlap(hh, h), _overlap(ww, w)
    if mode == "mass":
        oy, ox = oy * h, ox * w  # columns sum to 1
    elif mode == "mean":
        oy, ox = oy * hh, ox * ww  # rows sum to 1
    else:
        raise ValueError(f"mode={mode!r}: use 'mass' or 'mean'")
    return oy @ x @ ox.T


def _check_relevance(relevance: np.ndarray) -> np.ndarray:
    r = np.asarray(relevance, dtype=np.float64)
    if r.ndim != 2:
        raise ValueError(f"relevance must be a 2-D (h, w) map, got shape {r.shape}")
    if not np.isfinite(r).all():
        raise ValueError("relevance contains NaN or infinite values")
    return r


# ----------------------------------------------------------------------- scores


def zone_scores(relevance: np.ndarray, zones: Mapping[str, np.ndarray],
                fov_mask: np.ndarray | None = None) -> list[ZoneScore]:
    """Mass share, area share, area-normalised score and peak flag of each zone.

    Args:
        relevance: (h, w) raw relevance (token grid or pixels; any sign, any scale; only
            the positive part is used).
        zones: ``{name: (H, W) bool}`` masks on one grid spanning the same image
            (``compute_zones``); (H, W) may differ from (h, w).
        fov_mask: (H, W) bool FOV mask on the zone grid; None = the whole image.

    Returns:
        One ``ZoneScore`` per zone, in the order of ``zones``. Shares are NaN when the
        map has no positive mass in the FOV; score is NaN for a zone with no area.
        Relevance is moved onto the zone grid by ``area_transfer(..., 'mass')`` (see the
        module docstring), so results do not depend on the resolution of either grid
        beyond the rasterisation of the masks.
    """
    r = _check_relevance(relevance)
    if not zones:
        return []
    shapes = {np.asarray(m).shape for m in zones.values()}
    if len(shapes) != 1:
        raise ValueError(f"zone masks must share one shape, got {sorted(shapes)}")
    grid = shapes.pop()
    if len(grid) != 2:
        raise ValueError(f"zone masks must be 2-D, got shape {grid}")
    fov = np.ones(grid, bool) if fov_mask is None else np.asarray(fov_mask, bool)
    if fov.shape != grid:
        raise ValueError(f"fov_mask has shape {fov.shape}, the zones {grid}")
    pos = np.clip(r, 0.0, None)
    mass = area_transfer(pos, grid, mode="mass")
    total = float(mass[fov].sum())
    fov_area = int(fov.sum())
    peak_cov = _peak_coverages(pos, zones, fov)
    out = []
    for name, m in zones.items():
        zf = np.asarray(m, bool) & fov
        area_share = zf.sum() / fov_area if fov_area else float("nan")
        mass_share = float(mass[zf].sum()) / total if total > 0 else float("nan")
        score = mass_share / area_share if area_share > 0 else float("nan")
        out.append(ZoneScore(name, float(mass_share), float(area_share), float(score),
                             bool(peak_cov.get(name, 0.0) >= 0.5)))
    return out


def _peak_cell(pos: np.ndarray, fov_cov: np.ndarray) -> tuple[int, int] | None:
    cand = np.where(fov_cov >= 0.5, pos, -np.inf)
    if not np.isfinite(cand).any() or cand.max() <= 0:
        return None
    i, j = np.unravel_index(int(np.argmax(cand)), cand.shape)
    return int(i), int(j)


def _peak_coverages(pos: np.ndarray, zones: Mapping[str, np.ndarray], fov: np.ndarray) -> dict[str, float]:
    """Share of the relevance peak cell (first maximum of R+ among cells at least half in
    the FOV) covered by each zone (and the FOV)."""
    h, w = pos.shape
    grid = fov.shape
    fov_cov = area_transfer(fov.astype(np.float64), (h, w), mode="mean")
    cell = _peak_cell(pos, fov_cov)
    if cell is None:
        return {}
    i, j = cell
    wy = _overlap(h, grid[0])[i] * h  # weights of the mask rows inside relevance row i
    wx = _overlap(w, grid[1])[j] * w
    return {name: float(wy @ (np.asarray(m, bool) & fov).astype(np.float64) @ wx) for name, m in zones.items()}


def peak_zone(relevance: np.ndarray, zones: Mapping[str, np.ndarray], fov_mask: np.ndarray | None = None) -> str | None:
    """Name of the zone covering most of the relevance peak cell (None if no zone does or
    the map has no positive value in the FOV); ties go to the first zone.

    Args:
        relevance: (h, w) raw relevance.
        zones: ``{name: (H, W) bool}``.
        fov_mask: (H, W) bool or None.
    """
    r = _check_relevance(relevance)
    if not zones:
        return None
    grid = next(iter(zones.values())).shape
    fov = np.ones(grid, bool) if fov_mask is None else np.asarray(fov_mask, bool)
    cov = _peak_coverages(np.clip(r, 0.0, None), zones, fov)
    if not cov or max(cov.values()) <= 0:
        return None
    return max(cov, key=lambda k: cov[k])


def concentration(relevance: np.ndarray, fov_mask: np.ndarray | None = None) -> dict[str, float]:
    """How concentrated the positive relevance is over the FOV, on the map's own grid.

    With ``p_i = R+_i / sum(R+)`` over the n relevance cells at least half inside the FOV:
    ``entropy = -sum p_i log p_i / log n`` (1 = uniform, 0 = a single cell) and
    ``gini = sum_i (2 i - n - 1) x_(i) / (n sum x)`` over the ascending values x_(i)
    (0 = uniform, (n - 1) / n = a single cell).

    Args:
        relevance: (h, w) raw relevance.
        fov_mask: bool FOV mask on any grid spanning the image (resampled to (h, w) by
            area coverage); None = all cells.

    Returns:
        ``{'entropy': float, 'gini': float, 'n_cells': float}``; entropy and gini are NaN
        when there is no positive mass (or fewer than 2 cells).
    """
    r = _check_relevance(relevance)
    if fov_mask is None:
        inside = np.ones(r.shape, bool)
    else:
        inside = area_transfer(np.asarray(fov_mask, np.float64), r.shape, mode="mean") >= 0.5
    x = np.clip(r[inside], 0.0, None)
    n = x.size
    total = float(x.sum())
    if n < 2 or total <= 0:
        return {"entropy": float("nan"), "gini": float("nan"), "n_cells": float(n)}
    p = x / total
    nz = p[p > 0]
    entropy = max(0.0, float(-(nz * np.log(nz)).sum() / math.log(n)))
    xs = np.sort(x)
    idx = np.arange(1, n + 1, dtype=np.float64)
    gini = float(((2 * idx - n - 1) * xs).sum() / (n * total))
    return {"entropy": entropy, "gini": gini, "n_cells": float(n)}


def score_zone_set(relevance: np.ndarray, name: str, ctx: ZoneContext, *, fov_mask: np.ndarray | None = None,
                   shape: tuple[int, int] | None = None, **params: object) -> list[ZoneScore]:
    """``zone_scores`` of the zone set ``name`` drawn on ``shape`` (default full image).

    Args:
        relevance: (h, w) raw relevance spanning the image of ``ctx``.
        name: registered zone set.
        ctx: geometry of the image.
        fov_mask: (H, W) bool FOV mask on the zone grid; default the FOV circle of ``ctx``
            clipped to the image.
        shape: (H, W) zone grid; default (ctx.height, ctx.width).
        **params: options of the zone set.

    Returns:
        list of ``ZoneScore``.
    """
    grid = (ctx.height, ctx.width) if shape is None else shape
    zones = compute_zones(name, ctx, grid, **params)
    fov = circle_mask(ctx, grid) if fov_mask is None else fov_mask
    return zone_scores(relevance, zones, fov)
