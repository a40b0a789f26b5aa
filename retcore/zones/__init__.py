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

Modules: ``geometry`` (:class:`ZoneContext`, grid cell centres, :func:`circle_mask`),
``registry`` (:data:`ZONE_SET_REGISTRY`, :func:`compute_zones`), ``sets`` (the registered
sets and :func:`decode_mask_bits`), ``resample`` (:func:`area_transfer`) and ``scores``
(:class:`ZoneScore`, :func:`zone_scores`, :func:`peak_zone`, :func:`concentration`,
:func:`score_zone_set`).
"""

from __future__ import annotations

from retcore.zones.geometry import ZoneContext, circle_mask
from retcore.zones.registry import ZONE_SET_REGISTRY, compute_zones, list_zone_sets, register_zone_set
from retcore.zones.resample import area_transfer
from retcore.zones.scores import ZoneScore, concentration, peak_zone, score_zone_set, zone_scores
from retcore.zones.sets import DEMO_MASK_BITS, THIRDS_RADIUS, decode_mask_bits  # importing registers the sets

# public before the split, not in __all__: still importable from here
from retcore.zones.registry import ZoneSetFn  # noqa: F401
from retcore.zones.sets import anatomy_zones, mask_zones, thirds_zones  # noqa: F401

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
