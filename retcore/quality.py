"""Image-quality metrics of colour fundus photos, a registry of them, and a quality grade.

Every metric is computed inside the field of view (FOV, ``retcore.anatomy.fov_mask``) on
one *analysis copy* of the photo: the image block-averaged by the integer factor
``f = max(1, FOV radius // ANALYSIS_FOV_RADIUS)``, so the FOV radius of the copy lies in
[100, 200) px whatever the camera resolution (a 224-px demo image is used as is, a
512-px Kaggle image is halved, a 1411-px photo shrunk 7x). Integer block averaging is a
fixed, interpolation-free low-pass that puts the resolution-dependent ``blur`` values of
different cameras on a similar scale; they are still not identical (the remaining FOV
radius varies by up to 2x and optics differ), so compare blur within one dataset or set
its thresholds per camera.

Registered metrics (``list_metrics()``), all floats:

- ``blur``: variance of the 3x3 Laplacian of the green channel (0..255 units) over the
  FOV shrunk by 3 px (the aperture edge is excluded). Lower = blurrier. Scales with
  contrast, so a dark photo also reads as blurrier.
- ``glare``: share of FOV pixels that are near white (all three channels >= 235):
  specular reflexes and flash glare saturate every channel, the reddish fundus never.
  A faint reflex that saturates nothing reads 0; a very pale glaucomatous cup can reach
  ~0.001.
- ``illumination_mean``, ``illumination_contrast``: mean and standard deviation of the
  luminance ``Y = 0.299 R + 0.587 G + 0.114 B`` (0..255) in the FOV.
- ``off_centre``: distance of the fitted FOV-circle centre from the image centre, as a
  share of the image's shorter side (0 = centred).
- ``fov_cutoff``: share of the fitted FOV circle that is missing from the image (cut off
  by the frame or a crop); 0 for a complete circle.
- ``fov_coverage``: FOV area / image area.

``quality_grade`` turns the metrics into 'good' | 'usable' | 'poor' with the
configurable thresholds of ``QualityThresholds``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from scipy import ndimage as ndi

from retcore.anatomy import fov_circle, fov_mask
from retcore.registry import Registry

__all__ = [
    "ANALYSIS_FOV_RADIUS",
    "GRADES",
    "METRIC_REGISTRY",
    "QualityInput",
    "QualityThresholds",
    "list_metrics",
    "metric_levels",
    "prepare_quality_input",
    "quality_grade",
    "quality_metrics",
    "register_metric",
]

ANALYSIS_FOV_RADIUS = 100
"""The analysis copy is block-averaged by ``FOV radius // ANALYSIS_FOV_RADIUS`` (at least 1)."""

GRADES: tuple[str, ...] = ("good", "usable", "poor")
"""Quality grades from best to worst."""

_EDGE_MARGIN = 3  # px of the analysis copy excluded along the FOV edge for the blur metric
_NEAR_WHITE = 235  # all channels at or above this level = glare


@dataclass
class QualityInput:
    """The shared inputs of all metrics (one analysis copy of one photo).

    rgb: (h, w, 3) float32 0..255, the block-averaged analysis copy.
    fov: (h, w) bool FOV mask of the copy.
    circle: (cx, cy, r) of the FOV in analysis pixels (``retcore.anatomy.fov_circle``).
    factor: block size used (input pixels per analysis pixel).
    """

    rgb: np.ndarray
    fov: np.ndarray
    circle: tuple[float, float, float]
    factor: int

    @cached_property
    def luminance(self) -> np.ndarray:
        """(h, w) float32 Rec. 601 luminance, 0..255."""
        r, g, b = self.rgb[..., 0], self.rgb[..., 1], self.rgb[..., 2]
        return (0.299 * r + 0.587 * g + 0.114 * b).astype(np.float32)

    @cached_property
    def inner_fov(self) -> np.ndarray:
        """(h, w) bool FOV shrunk by ``_EDGE_MARGIN`` px (falls back to the FOV if empty)."""
        inner = ndi.binary_erosion(self.fov, iterations=_EDGE_MARGIN, border_value=0)
        return inner if inner.any() else self.fov


MetricFn = Callable[[QualityInput], float]
METRIC_REGISTRY: Registry[MetricFn] = Registry("quality metric")
"""Name -> ``fn(QualityInput) -> float``; filled by :func:`register_metric`."""


def register_metric(name: str) -> Callable[[MetricFn], MetricFn]:
    """Decorator adding ``fn(QualityInput) -> float`` to the metric registry under ``name``.

    Raises:
        retcore.registry.DuplicateNameError: ``name`` is already registered.
    """
    return METRIC_REGISTRY.register(name)


def list_metrics() -> list[str]:
    """Names of the registered quality metrics, in registration order."""
    return METRIC_REGISTRY.names()


def prepare_quality_input(rgb: np.ndarray, fov: np.ndarray | None = None) -> QualityInput:
    """Build the analysis copy (see the module docstring) shared by all metrics.

    Args:
        rgb: (H, W, 3) uint8 colour fundus photo.
        fov: optional (H, W) bool FOV mask at input resolution; computed when None.

    Returns:
        ``QualityInput`` of the block-averaged copy.
    """
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB array, got shape {rgb.shape}")
    h, w = rgb.shape[:2]
    if fov is None:
        stride = max(1, math.ceil(max(h, w) / 256))
        r_est = fov_circle(fov_mask(rgb[::stride, ::stride]))[2] * stride
    else:
        r_est = fov_circle(np.asarray(fov, bool))[2]
    f = max(1, int(r_est // ANALYSIS_FOV_RADIUS))
    img = _block_mean(rgb[..., :3].astype(np.float32), f)
    if fov is None:
        fm = fov_mask(np.clip(img + 0.5, 0, 255).astype(np.uint8))
    else:
        fm = _block_mean(np.asarray(fov, np.float32)[..., None], f)[..., 0] >= 0.5
    return QualityInput(rgb=img, fov=fm, circle=fov_circle(fm), factor=f)


def _block_mean(x: np.ndarray, f: int) -> np.ndarray:
    """(H, W, C) -> (H // f, W // f, C) mean over f x f blocks (the remainder is dropped)."""
    if f == 1:
        return x
    h, w, c = x.shape
    h2, w2 = h // f, w // f
    return x[: h2 * f, : w2 * f].reshape(h2, f, w2, f, c).mean(axis=(1, 3))


def quality_metrics(rgb: np.ndarray, fov: np.ndarray | None = None,
                    names: list[str] | None = None) -> dict[str, float]:
    """All (or the named) registered quality metrics of one photo, sharing one FOV mask.

    Args:
        rgb: (H, W, 3) uint8 colour fundus photo.
        fov: optional (H, W) bool FOV mask; computed when None.
        names: metrics to compute (default: all of ``list_metrics()``).

    Returns:
        ``{name: value}`` in the order of ``names`` (see the module docstring for units).

    Raises:
        retcore.registry.UnknownNameError: a name is not registered (the message lists the names).
    """
    chosen = list_metrics() if names is None else list(names)
    METRIC_REGISTRY.check(chosen)
    q = prepare_quality_input(rgb, fov)
    return {n: float(METRIC_REGISTRY.get(n)(q)) for n in chosen}


# ------------------------------------------------------------------------ metrics


@register_metric("blur")
def blur(q: QualityInput) -> float:
    """Variance of the 3x3 Laplacian of green (0..255) in the inner FOV; lower = blurrier."""
    lap = ndi.laplace(q.rgb[..., 1], mode="nearest")
    vals = lap[q.inner_fov]
    return float(vals.var()) if vals.size else 0.0


@register_metric("glare")
def glare(q: QualityInput) -> float:
    """Share (0..1) of FOV pixels with all channels >= 235 (near-white reflex)."""
    white = q.rgb.min(axis=2) >= _NEAR_WHITE
    n = int(q.fov.sum())
    return float((white & q.fov).sum() / n) if n else 0.0


@register_metric("illumination_mean")
def illumination_mean(q: QualityInput) -> float:
    """Mean luminance (0..255) in the FOV."""
    vals = q.luminance[q.fov]
    return float(vals.mean()) if vals.size else 0.0


@register_metric("illumination_contrast")
def illumination_contrast(q: QualityInput) -> float:
    """Standard deviation of the luminance (0..255) in the FOV."""
    vals = q.luminance[q.fov]
    return float(vals.std()) if vals.size else 0.0


@register_metric("off_centre")
def off_centre(q: QualityInput) -> float:
    """FOV-centre offset from the image centre / the image's shorter side (0 = centred)."""
    h, w = q.fov.shape
    cx, cy, _ = q.circle
    return float(math.hypot(cx - w / 2.0, cy - h / 2.0) / min(h, w))


@register_metric("fov_cutoff")
def fov_cutoff(q: QualityInput) -> float:
    """Share (0..1) of the fitted FOV circle missing from the image."""
    r = q.circle[2]
    full = math.pi * r * r
    return float(np.clip(1.0 - q.fov.sum() / full, 0.0, 1.0)) if full > 0 else 0.0


@register_metric("fov_coverage")
def fov_coverage(q: QualityInput) -> float:
    """FOV area / image area (0..1)."""
    return float(q.fov.mean())


# -------------------------------------------------------------------------- grade


@dataclass(frozen=True)
class QualityThresholds:
    """Thresholds of ``quality_grade``; each metric has a 'usable' and a 'poor' limit.

    A metric whose value crosses its 'usable' limit makes the photo at best usable; one
    that crosses its 'poor' limit makes it poor. Defaults were set on the demo set at
    224 px and are meant to be tuned per camera and resolution:

    - blur_usable, blur_poor: minimum Laplacian variance. Sharp demo photos: 180-620;
      Gaussian blur sigma 1 px: ~10-30, sigma >= 1.7 px: 2-4. Cataract haze also lowers
      it (demo cataract photos: 7-90), so hazy cataract photos usually grade 'usable':
      the grade describes the photo, not the cause of the haze.
    - glare_usable, glare_poor: maximum near-white share of the FOV (clean demo photos
      <= 0.001, a pale glaucomatous cup included; a strong reflex 0.005-0.015).
    - illumination_low_usable, illumination_low_poor: minimum mean luminance (clean demo
      photos 100-170, exposure x0.5 ~50-70).
    - illumination_high_usable, illumination_high_poor: maximum mean luminance.
    - contrast_usable, contrast_poor: minimum luminance standard deviation (clean 19-35).
    - off_centre_usable, off_centre_poor: maximum FOV-centre offset, share of the shorter
      side (clean demo photos <= 0.025; a shift of 10% of the side reads ~0.1).
    - fov_cutoff_usable, fov_cutoff_poor: maximum missing share of the FOV circle
      (photos cropped at top and bottom, as in the Kaggle set, lose ~0.04).
    - fov_coverage_poor: minimum FOV area share (one level only: a small FOV is either
      still readable or not).
    - extra: limits for further registered metrics, ``name -> ('min'|'max', usable, poor)``.
    """

    blur_usable: float = 60.0
    blur_poor: float = 6.0
    glare_usable: float = 0.002
    glare_poor: float = 0.01
    illumination_low_usable: float = 80.0
    illumination_low_poor: float = 50.0
    illumination_high_usable: float = 200.0
    illumination_high_poor: float = 230.0
    contrast_usable: float = 12.0
    contrast_poor: float = 6.0
    off_centre_usable: float = 0.06
    off_centre_poor: float = 0.15
    fov_cutoff_usable: float = 0.1
    fov_cutoff_poor: float = 0.3
    fov_coverage_poor: float = 0.2
    extra: Mapping[str, tuple[str, float, float]] = field(default_factory=dict)


def _level(value: float, kind: str, usable: float, poor: float) -> str:
    if not math.isfinite(value):
        return "poor"
    if kind == "min":
        return "poor" if value < poor else "usable" if value < usable else "good"
    return "poor" if value > poor else "usable" if value > usable else "good"


def metric_levels(metrics: Mapping[str, float], thresholds: QualityThresholds = QualityThresholds()) -> dict[str, str]:
    """Per-metric level 'good' | 'usable' | 'poor' of the metrics that have thresholds.

    Args:
        metrics: output of ``quality_metrics`` (missing metrics are skipped).
        thresholds: the limits.

    Returns:
        ``{metric name: level}``; ``illumination_mean`` is checked on both sides.
    """
    t = thresholds
    rules: dict[str, list[tuple[str, float, float]]] = {
        "blur": [("min", t.blur_usable, t.blur_poor)],
        "glare": [("max", t.glare_usable, t.glare_poor)],
        "illumination_mean": [("min", t.illumination_low_usable, t.illumination_low_poor),
                              ("max", t.illumination_high_usable, t.illumination_high_poor)],
        "illumination_contrast": [("min", t.contrast_usable, t.contrast_poor)],
        "off_centre": [("max", t.off_centre_usable, t.off_centre_poor)],
        "fov_cutoff": [("max", t.fov_cutoff_usable, t.fov_cutoff_poor)],
        "fov_coverage": [("min", t.fov_coverage_poor, t.fov_coverage_poor)],
    }
    for name, (kind, usable, poor) in t.extra.items():
        rules[name] = [(kind, usable, poor)]
    out: dict[str, str] = {}
    for name, checks in rules.items():
        if name in metrics:
            levels = [_level(float(metrics[name]), *c) for c in checks]
            out[name] = max(levels, key=GRADES.index)
    return out


def quality_grade(metrics: Mapping[str, float], thresholds: QualityThresholds = QualityThresholds()) -> str:
    """Overall grade: the worst per-metric level (``metric_levels``).

    Rule: 'poor' if any metric crosses its poor limit (or is not finite); else 'usable'
    if any crosses its usable limit; else 'good'. Metrics without thresholds are ignored.

    Args:
        metrics: output of ``quality_metrics``.
        thresholds: the limits (``QualityThresholds``).

    Returns:
        'good' | 'usable' | 'poor'.
    """
    levels = metric_levels(metrics, thresholds)
    return max(levels.values(), key=GRADES.index) if levels else "good"
