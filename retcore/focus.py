"""Where a heatmap puts its relevance: zone scores, concentration and localisation
of one explanation, in the model-input frame.

Landmarks are detected once per photo in its own pixel frame
(:func:`retcore.anatomy.detect_landmarks`); :func:`input_geometry` maps them
into the ``S x S`` frame the model saw (:mod:`retcore.data.frame`), together
with the FOV mask of that view and the ground-truth masks, so every zone set
is drawn on the same grid as the full-resolution heatmap.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from retcore.anatomy import Landmarks
from retcore.data.frame import InputFrame, input_frame, to_input_view
from retcore.evaluate import localisation_scores
from retcore.zones import (
    DEMO_MASK_BITS,
    ZoneContext,
    area_transfer,
    circle_mask,
    compute_zones,
    concentration,
    decode_mask_bits,
    zone_scores,
)

__all__ = ["DEFAULT_ZONE_SETS", "FocusResult", "InputGeometry", "focus_scores", "input_geometry"]

DEFAULT_ZONE_SETS: tuple[str, ...] = ("thirds", "anatomy", "mask")
LOCALISATION_MASKS: tuple[str, ...] = ("lesion", "marker")


@dataclass
class InputGeometry:
    """One image in the model-input frame: the view (S, S, 3) uint8, the FOV
    circle mask (S, S) bool the zones are clipped to, the zone context and the
    ground-truth masks (S, S) bool."""

    view: np.ndarray
    fov: np.ndarray
    context: ZoneContext
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    zones: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


def input_geometry(
    photo: Image.Image,
    landmarks: Landmarks,
    img_size: int,
    *,
    eye: str | None = None,
    mask: Image.Image | None = None,
    zone_sets: Sequence[str] = DEFAULT_ZONE_SETS,
    mask_bits: Mapping[str, int] = DEMO_MASK_BITS,
    frame: InputFrame | None = None,
) -> InputGeometry:
    """Map ``landmarks`` (original pixels) and ``mask`` into the input frame of ``photo``.

    ``eye`` is the known laterality, else ``landmarks.eye_estimate`` is used.
    Zone masks of every set in ``zone_sets`` are drawn at (S, S); the ``mask``
    set is skipped when there is no mask. ``frame`` is ``input_frame(photo,
    img_size)`` when the caller has it already (the FOV box is found once).
    """
    if frame is None:
        frame = input_frame(photo, img_size)
    view = to_input_view(photo, frame)
    cx, cy = frame.point_to_input(landmarks.fov_cx, landmarks.fov_cy)
    dx, dy = frame.point_to_input(landmarks.disc_x, landmarks.disc_y)
    fx, fy = frame.point_to_input(landmarks.fovea_x, landmarks.fovea_y)
    masks: dict[str, np.ndarray] = {}
    if mask is not None:
        masks = decode_mask_bits(to_input_view(mask, frame, nearest=True), mask_bits)
    context = ZoneContext(
        height=img_size, width=img_size, fov=(cx, cy, frame.length_to_input(landmarks.fov_r)),
        disc=(dx, dy, frame.length_to_input(landmarks.disc_r)), fovea=(fx, fy),
        eye=eye or landmarks.eye_estimate, masks=masks,
    )
    fov = circle_mask(context)  # the zones' own FOV, so zone shares of a partition sum to 1
    zones = {name: compute_zones(name, context, (img_size, img_size))
             for name in zone_sets if name != "mask" or masks}
    return InputGeometry(view=view, fov=fov, context=context, masks=masks, zones=zones)


@dataclass
class FocusResult:
    """Scores of one heatmap: ``zones`` rows (zone_set, zone, mass_share,
    area_share, score), ``peak_zone`` (of ``thirds``), ``entropy``/``gini`` and
    ``localisation`` rows (mask, pointing_game, mass_accuracy, rank_accuracy)."""

    zones: list[dict[str, object]]
    peak_zone: str | None
    entropy: float
    gini: float
    localisation: list[dict[str, object]]


def focus_scores(heatmap: np.ndarray, grid: np.ndarray, geometry: InputGeometry) -> FocusResult:
    """Score a raw heatmap (S, S) and its native grid (gh, gw) against ``geometry``.

    Zone shares use the full-resolution map (never min-max normalised);
    concentration uses the native grid (tokens, or pixels for ``lrp_pixels``)
    restricted to the FOV; localisation uses the full-resolution map against
    each non-empty ground-truth mask.
    """
    rows: list[dict[str, object]] = []
    peak = None
    for set_name, zones in geometry.zones.items():
        for score in zone_scores(heatmap, zones, geometry.fov):
            rows.append({"zone_set": set_name, "zone": score.zone, "mass_share": score.mass_share,
                         "area_share": score.area_share, "score": score.score})
            if set_name == "thirds" and score.peak and score.zone in ("center", "left", "right"):
                peak = score.zone
    if grid.shape == heatmap.shape:
        grid_fov = geometry.fov
    else:
        grid_fov = area_transfer(geometry.fov.astype(np.float64), grid.shape, "mean") >= 0.5
    conc = concentration(grid, grid_fov)
    loc = []
    for name in LOCALISATION_MASKS:
        mask = geometry.masks.get(name)
        if mask is not None and mask.any():
            loc.append({"mask": name, **localisation_scores(heatmap, mask)})
    return FocusResult(rows, peak, float(conc["entropy"]), float(conc["gini"]), loc)
