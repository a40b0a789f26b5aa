"""Zone sets: geometry of thirds / anatomy / mask, the registry and the eye convention."""
from __future__ import annotations

import math

import numpy as np
import pytest

from retcore import zones as Z
from retcore.anatomy import Landmarks, laterality_from_disc
from retcore.zones import THIRDS_RADIUS, ZoneContext, circle_mask, compute_zones, decode_mask_bits

CTX = ZoneContext(224, 224, fov=(112.0, 112.0, 100.0), disc=(40.0, 105.0, 13.0), fovea=(112.0, 118.0), eye="left")


def test_registry():
    assert Z.list_zone_sets()[:3] == ["thirds", "anatomy", "mask"]
    with pytest.raises(KeyError, match="unknown zone set"):
        compute_zones("nope", CTX)
    with pytest.raises(ValueError, match="already registered"):
        Z.register_zone_set("thirds")(lambda ctx, shape: {})


def test_register_custom_zone_set():
    @Z.register_zone_set("upper")
    def upper(ctx, shape):
        rows = np.arange(shape[0])[:, None] < shape[0] // 2
        return {"upper": np.broadcast_to(rows, shape).copy()}

    try:
        zones = compute_zones("upper", CTX, (4, 4))
        assert zones["upper"].sum() == 8
    finally:
        Z.ZONE_SET_REGISTRY.unregister("upper")


@pytest.mark.parametrize("shape", [(224, 224), (14, 14), (300, 300)])
def test_thirds_partition_the_fov_with_equal_areas(shape):
    zones = compute_zones("thirds", ZoneContext(224, 224, fov=(112.0, 112.0, 100.0)), shape)
    assert set(zones) == {"center", "left", "right"}  # eye unknown: no nasal/temporal
    fov = circle_mask(ZoneContext(224, 224, fov=(112.0, 112.0, 100.0)), shape)
    total = sum(z.astype(int) for z in zones.values())
    assert (total == fov).all(), "center, left and right partition the FOV"
    if shape[0] >= 224:  # equal thirds up to rasterisation
        for z in zones.values():
            assert z.sum() / fov.sum() == pytest.approx(1 / 3, abs=0.01)
    assert THIRDS_RADIUS == pytest.approx(math.sqrt(1 / 3))


def test_thirds_radius_is_configurable():
    zones = compute_zones("thirds", CTX, radius=0.5)
    fov = circle_mask(CTX)
    assert zones["center"].sum() / fov.sum() == pytest.approx(0.25, abs=0.01)


@pytest.mark.parametrize("eye", ["left", "right"])
def test_nasal_is_the_disc_side(eye):
    """Nasal/temporal follow the laterality convention of retcore.anatomy: the disc is nasal."""
    disc_x = 40.0 if eye == "left" else 184.0
    assert laterality_from_disc(disc_x, 112.0) == eye
    ctx = ZoneContext(224, 224, fov=(112.0, 112.0, 100.0), disc=(disc_x, 110.0, 13.0), eye=eye)
    zones = compute_zones("thirds", ctx)
    assert zones["nasal"][110, int(disc_x)], "the disc lies in the nasal zone"
    assert (zones["nasal"] == zones[eye]).all()
    assert (zones["temporal"] == zones["right" if eye == "left" else "left"]).all()
    with pytest.raises(ValueError, match="eye="):
        compute_zones("thirds", ZoneContext(224, 224, fov=(112.0, 112.0, 100.0), eye="both"))


def test_anatomy_zones_geometry():
    zones = compute_zones("anatomy", CTX)
    assert set(zones) == {"optic_disc", "macula", "central", "periphery"}
    ys, xs = np.nonzero(zones["optic_disc"])
    assert xs.min() >= 40 - 19.5 - 1 and xs.max() <= 40 + 19.5  # side 3 x r = 39 px
    assert xs.max() - xs.min() + 1 == pytest.approx(39, abs=1)
    assert zones["macula"][118, 112] and zones["macula"].sum() == pytest.approx(math.pi * 26 ** 2, rel=0.03)
    assert zones["central"].sum() == pytest.approx(math.pi * 50 ** 2, rel=0.02)
    fov = circle_mask(CTX)
    ring = fov & ~circle_mask(CTX, scale=0.8)
    assert (zones["periphery"] == ring).all()
    assert not (zones["optic_disc"] & ~fov).any(), "zones are clipped to the FOV"
    assert (zones["macula"] & zones["central"]).any(), "zones may overlap"
    bigger = compute_zones("anatomy", CTX, disc_box=4.0, macula_radius=1.0)
    assert bigger["optic_disc"].sum() > zones["optic_disc"].sum() > 0
    assert bigger["macula"].sum() < zones["macula"].sum()


def test_anatomy_zones_need_a_disc_and_default_the_fovea():
    with pytest.raises(ValueError, match="needs the optic disc"):
        compute_zones("anatomy", ZoneContext(224, 224, fov=(112.0, 112.0, 100.0)))
    ctx = ZoneContext(224, 224, fov=(112.0, 112.0, 100.0), disc=(40.0, 105.0, 13.0))
    mac = compute_zones("anatomy", ctx)["macula"]
    ys, xs = np.nonzero(mac)  # fovea_geometric: 2.5 disc diameters temporal, 0.5 r below
    assert xs.mean() + 0.5 == pytest.approx(40 + 65, abs=1) and ys.mean() + 0.5 == pytest.approx(111.5, abs=1)


def test_context_from_landmarks():
    lm = Landmarks(112.0, 112.0, 100.0, 184.0, 110.0, 13.0, 100.0, 115.0, "right")
    ctx = ZoneContext.from_landmarks(lm, 224, 224)
    assert ctx.fov == (112.0, 112.0, 100.0) and ctx.disc == (184.0, 110.0, 13.0) and ctx.eye is None
    assert ZoneContext.from_landmarks(lm, 224, 224, eye=lm.eye_estimate).eye == "right"


def test_mask_zone_set_from_demo_bits():
    bits = np.zeros((8, 8), np.uint8)
    bits[0:4, 0:4] |= 1
    bits[2:6, 2:6] |= 2
    bits[7, 7] |= 4
    named = decode_mask_bits(bits)
    assert named["lesion"].sum() == 16 and named["disc"].sum() == 16 and named["marker"].sum() == 1
    assert (named["lesion"] & named["disc"]).sum() == 4
    ctx = ZoneContext(8, 8, fov=(4.0, 4.0, 4.0), masks=named)
    same = compute_zones("mask", ctx)
    assert (same["lesion"] == named["lesion"]).all()
    coarse = compute_zones("mask", ctx, (2, 2))  # majority of each 4x4 block
    assert coarse["lesion"].tolist() == [[True, False], [False, False]]
    assert not coarse["marker"].any()
    with pytest.raises(ValueError, match="expected"):
        compute_zones("mask", ZoneContext(9, 9, fov=(4.0, 4.0, 4.0), masks=named))
