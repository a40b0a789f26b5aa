"""The registered zone sets (``thirds``, ``anatomy``, ``mask``) and the demo mask's bit field.

Sizes and conventions are described in ``retcore.zones``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from retcore.anatomy import fovea_geometric
from retcore.zones.geometry import ZoneContext, _cell_centres
from retcore.zones.registry import register_zone_set
from retcore.zones.resample import area_transfer

__all__ = ["DEMO_MASK_BITS", "THIRDS_RADIUS", "anatomy_zones", "decode_mask_bits", "mask_zones", "thirds_zones"]

THIRDS_RADIUS = 1.0 / math.sqrt(3.0)
"""Central-disk radius (x FOV radius) of the ``thirds`` set: three zones of equal area."""

DEMO_MASK_BITS: dict[str, int] = {"lesion": 1, "disc": 2, "marker": 4}
"""Bits of the demo mask PNG (``retcore.demo``): lesion / class evidence, optic disc, marker."""


@register_zone_set("thirds")
def thirds_zones(ctx: ZoneContext, shape: tuple[int, int], radius: float = THIRDS_RADIUS) -> dict[str, np.ndarray]:
    """``center`` disk (radius x FOV radius), ``left`` / ``right`` remainders of the FOV,
    plus ``nasal`` / ``temporal`` aliases when ``ctx.eye`` is known (see ``retcore.zones``)."""
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
    to the FOV (sizes in ``retcore.zones``). Needs ``ctx.disc``."""
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
