"""Allowed regions of guided fine-tuning: where the model *should* look, per image.

A guide kind (registered by name with ``@register_guide``) maps one image to a
boolean mask (H, W) in that image's own pixels: ``True`` where relevance is
allowed. Relevance outside it is what :mod:`retcore.guide.penalty` penalises.
``None`` means "no constraint for this image" (its penalty weight becomes 0).

Kinds:

- ``center``: the central disk of the field of view (FOV), radius
  ``radius x FOV radius`` (default 0.6).
- ``anatomy``: class-aware, from the detected landmarks (``retcore.anatomy``):
  cataract -> the central (lens-haze) disk of radius ``0.5 x FOV radius``;
  glaucoma -> the optic-disc box (side ``3 x disc radius``, as the ``anatomy``
  zone set); diabetic retinopathy -> the posterior pole (a disk centred a fifth
  of the way from the fovea to the disc, radius ``1.1 x`` the fovea-disc
  distance: the macula, the disc and the arcades between them); any other class
  (normal) -> the whole FOV (nothing to localise, only off-fundus relevance is
  penalised). All clipped to the FOV.
- ``mask``: the image's mask file (manifest ``mask_path``): pixels whose value
  has any of ``mask_bits`` set (default 1 = the demo lesion bit, the class evidence:
  haze, spots, cup; normal images have none and are unconstrained; a binary
  0/255 mask works too). A missing or empty mask -> ``None``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from retcore.anatomy import Landmarks, detect_landmarks, fov_circle, fov_mask
from retcore.errors import DataError
from retcore.registry import Registry

__all__ = [
    "ANATOMY_REGIONS",
    "GUIDE_REGISTRY",
    "GuideContext",
    "GuideSpec",
    "allowed_region",
    "get_guide",
    "list_guides",
    "register_guide",
]

ANATOMY_REGIONS: dict[str, str] = {
    "cataract": "central",
    "glaucoma": "optic_disc",
    "diabetic_retinopathy": "posterior_pole",
}
"""Class -> region of the ``anatomy`` guide (other classes: the whole FOV)."""


@dataclass(frozen=True)
class GuideSpec:
    """How a guided run constrains relevance.

    kind: guide name (``center`` | ``anatomy`` | ``mask``).
    form: penalty form (``input_gradient`` | ``relevance``, see ``retcore.guide.penalty``).
    weight: lambda, the penalty's weight added to the classification loss.
    radius: ``center`` disk radius in units of the FOV radius.
    mask_bits: ``mask`` bits that mark allowed pixels.
    """

    kind: str
    form: str = "relevance"
    weight: float = 1.0
    radius: float = 0.6
    mask_bits: int = 1


@dataclass(frozen=True)
class GuideContext:
    """One image as a guide sees it.

    rgb: (H, W, 3) uint8 pixels. label: class name. mask_path: the manifest mask or None.
    landmarks: detected landmarks (``anatomy``), or None.
    fov: (cx, cy, r) FOV circle in pixels, or None (computed when needed).
    """

    rgb: np.ndarray
    label: str
    mask_path: str | None = None
    landmarks: Landmarks | None = None
    fov: tuple[float, float, float] | None = None
    extra: dict = field(default_factory=dict)


GuideFn = Callable[[GuideContext, GuideSpec], "np.ndarray | None"]
GUIDE_REGISTRY: Registry[GuideFn] = Registry("guide")
"""Name -> allowed-region function; filled by :func:`register_guide`."""
NEEDS_LANDMARKS = {"anatomy"}
NEEDS_FOV = {"center", "anatomy"}


def register_guide(name: str) -> Callable[[GuideFn], GuideFn]:
    """Decorator registering an allowed-region function under ``name``.

    Raises:
        retcore.registry.DuplicateNameError: ``name`` is already registered.
    """
    return GUIDE_REGISTRY.register(name)


def list_guides() -> list[str]:
    """Names of the registered guide kinds, in registration order."""
    return GUIDE_REGISTRY.names()


def get_guide(name: str) -> GuideFn:
    """The region function of guide ``name``.

    Raises:
        retcore.registry.UnknownNameError: ``name`` is not registered (the message lists the names).
    """
    return GUIDE_REGISTRY.get(name)


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    return xs, ys


def _fov(ctx: GuideContext) -> tuple[float, float, float]:
    if ctx.fov is not None:
        return ctx.fov
    if ctx.landmarks is not None:
        return ctx.landmarks.fov
    return fov_circle(fov_mask(ctx.rgb))


def _disk(h: int, w: int, cx: float, cy: float, r: float) -> np.ndarray:
    xs, ys = _grid(h, w)
    return np.hypot(xs - cx, ys - cy) <= r


@register_guide("center")
def center_region(ctx: GuideContext, spec: GuideSpec) -> np.ndarray:
    """Central disk of radius ``spec.radius x`` FOV radius."""
    h, w = ctx.rgb.shape[:2]
    cx, cy, r = _fov(ctx)
    return _disk(h, w, cx, cy, spec.radius * r)


@register_guide("anatomy")
def anatomy_region(ctx: GuideContext, spec: GuideSpec) -> np.ndarray:
    """Class-aware region from the landmarks (see the module docstring)."""
    h, w = ctx.rgb.shape[:2]
    lm = ctx.landmarks if ctx.landmarks is not None else detect_landmarks(ctx.rgb)
    cx, cy, r = lm.fov
    inside = _disk(h, w, cx, cy, r)
    region = ANATOMY_REGIONS.get(ctx.label)
    if region == "central":
        return _disk(h, w, cx, cy, 0.5 * r)
    if region == "optic_disc":
        xs, ys = _grid(h, w)
        half = 1.5 * lm.disc_r
        return inside & (np.abs(xs - lm.disc_x) <= half) & (np.abs(ys - lm.disc_y) <= half)
    if region == "posterior_pole":
        fx, fy = lm.fovea
        dist = float(np.hypot(lm.disc_x - fx, lm.disc_y - fy))
        px, py = fx + 0.2 * (lm.disc_x - fx), fy + 0.2 * (lm.disc_y - fy)
        return inside & _disk(h, w, px, py, 1.1 * dist)
    return inside


@register_guide("mask")
def mask_region(ctx: GuideContext, spec: GuideSpec) -> np.ndarray | None:
    """Pixels of the manifest mask with any of ``spec.mask_bits`` set; None when there are none."""
    if not ctx.mask_path:
        return None
    try:
        with Image.open(ctx.mask_path) as im:
            im = im.convert("L")
            h, w = ctx.rgb.shape[:2]
            if im.size != (w, h):
                im = im.resize((w, h), Image.NEAREST)
            m = np.asarray(im)
    except (OSError, ValueError) as exc:
        raise DataError(f"guide mask {ctx.mask_path}: cannot read it ({exc}); fix the manifest's mask_path") from exc
    allowed = (m & spec.mask_bits) != 0
    return allowed if allowed.any() else None


def allowed_region(ctx: GuideContext, spec: GuideSpec) -> np.ndarray | None:
    """The (H, W) bool allowed region of ``ctx`` under ``spec`` (None = unconstrained)."""
    return get_guide(spec.kind)(ctx, spec)
