"""The zone-set registry: sets are registered by name and drawn on any grid spanning the image."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from retcore.registry import Registry
from retcore.zones.geometry import ZoneContext

__all__ = ["ZONE_SET_REGISTRY", "ZoneSetFn", "compute_zones", "list_zone_sets", "register_zone_set"]


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
        **params: options of the zone set (see ``retcore.zones``).

    Returns:
        ``{zone name: (h, w) bool mask}``.

    Raises:
        retcore.registry.UnknownNameError: ``name`` is not registered (the message lists the names).
    """
    fn = ZONE_SET_REGISTRY.get(name)
    grid = (ctx.height, ctx.width) if shape is None else (int(shape[0]), int(shape[1]))
    return fn(ctx, grid, **params)
