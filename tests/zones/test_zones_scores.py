"""Zone scores and concentration: hand-worked values, invariances, resampling consistency."""
from __future__ import annotations

import numpy as np
import pytest

from retcore.zones import (
    ZoneContext,
    area_transfer,
    circle_mask,
    compute_zones,
    concentration,
    peak_zone,
    score_zone_set,
    zone_scores,
)

CTX = ZoneContext(224, 224, fov=(112.0, 112.0, 100.0), disc=(40.0, 105.0, 13.0), fovea=(112.0, 118.0), eye="right")


def _by_name(scores):
    return {s.zone: s for s in scores}


def test_hand_worked_example():
    # 4x4 map, zones on the same grid; FOV = all but the last column
    r = np.array([[4.0, 0.0, 0.0, 9.0],
                  [0.0, 2.0, 0.0, 9.0],
                  [0.0, 0.0, -5.0, 9.0],
                  [1.0, 0.0, 0.0, 9.0]])
    fov = np.ones((4, 4), bool)
    fov[:, 3] = False
    a = np.zeros((4, 4), bool)
    a[:2, :2] = True  # holds 4 + 2 = 6 of the 7 positive units in the FOV
    b = np.zeros((4, 4), bool)
    b[2:, :] = True  # holds 1 (the -5 is ignored), area 6 of 12 FOV cells
    s = _by_name(zone_scores(r, {"a": a, "b": b}, fov))
    assert s["a"].mass_share == pytest.approx(6 / 7) and s["a"].area_share == pytest.approx(4 / 12)
    assert s["a"].score == pytest.approx((6 / 7) / (4 / 12))
    assert s["b"].mass_share == pytest.approx(1 / 7) and s["b"].area_share == pytest.approx(6 / 12)
    assert s["a"].peak and not s["b"].peak  # the 9s lie outside the FOV
    assert peak_zone(r, {"a": a, "b": b}, fov) == "a"


@pytest.mark.parametrize("rel_shape,zone_shape", [((14, 14), (224, 224)), ((224, 224), (224, 224)),
                                                  ((448, 448), (224, 224)), ((224, 224), (14, 14)),
                                                  ((10, 13), (224, 224))])
@pytest.mark.parametrize("zone_set", ["thirds", "anatomy"])
def test_uniform_map_scores_one_everywhere(rel_shape, zone_shape, zone_set):
    scores = score_zone_set(np.full(rel_shape, 0.3), zone_set, CTX, shape=zone_shape)
    for s in scores:
        assert s.score == pytest.approx(1.0, abs=1e-9), s
        assert s.mass_share == pytest.approx(s.area_share, abs=1e-12)


def test_scores_ignore_scale_and_negative_values():
    rng = np.random.default_rng(0)
    r = rng.normal(size=(14, 14))
    zones = compute_zones("anatomy", CTX)
    fov = circle_mask(CTX)
    base = zone_scores(r, zones, fov)
    scaled = zone_scores(37.5 * r, zones, fov)
    shifted_neg = zone_scores(np.where(r > 0, r, 10 * r), zones, fov)  # only negative values change
    for a, b, c in zip(base, scaled, shifted_neg):
        assert (a.mass_share, a.score, a.peak) == pytest.approx((b.mass_share, b.score, b.peak), rel=1e-12)
        assert a.mass_share == pytest.approx(c.mass_share, rel=1e-12)
    assert concentration(r, fov) == pytest.approx(concentration(37.5 * r, fov), rel=1e-12)


def test_token_map_equals_its_blocky_upsampling():
    """Mass transfer = area-weighted coverage: a token map and its nearest upsampling agree."""
    rng = np.random.default_rng(1)
    tok = rng.random((14, 14))
    full = np.kron(tok, np.ones((16, 16)))
    zones = compute_zones("thirds", CTX)
    fov = circle_mask(CTX)
    for a, b in zip(zone_scores(tok, zones, fov), zone_scores(full, zones, fov)):
        assert a.mass_share == pytest.approx(b.mass_share, rel=1e-9)
        assert a.area_share == b.area_share


def test_peak_flag_and_zone():
    r = np.zeros((14, 14))
    r[7, 2] = 5.0  # the token over the disc at (40, 105) px
    zones = compute_zones("anatomy", CTX)
    s = _by_name(zone_scores(r, zones, circle_mask(CTX)))
    assert s["optic_disc"].peak and not s["macula"].peak
    assert s["optic_disc"].score > 10
    assert peak_zone(r, zones, circle_mask(CTX)) == "optic_disc"
    thirds = _by_name(score_zone_set(r, "thirds", CTX))
    assert thirds["left"].peak and thirds["temporal"].peak  # right eye: temporal = viewer's left


def test_empty_map_and_empty_zone_give_nan():
    zones = {"all": np.ones((8, 8), bool), "none": np.zeros((8, 8), bool)}
    s = _by_name(zone_scores(np.zeros((4, 4)), zones))
    assert np.isnan(s["all"].mass_share) and not s["all"].peak
    s = _by_name(zone_scores(np.ones((4, 4)), zones))
    assert s["none"].area_share == 0.0 and np.isnan(s["none"].score) and s["all"].score == 1.0
    assert peak_zone(np.zeros((4, 4)), zones) is None
    assert zone_scores(np.ones((4, 4)), {}) == []


def test_input_validation():
    with pytest.raises(ValueError, match="2-D"):
        zone_scores(np.ones((2, 4, 4)), {"a": np.ones((4, 4), bool)})
    with pytest.raises(ValueError, match="NaN"):
        zone_scores(np.full((4, 4), np.nan), {"a": np.ones((4, 4), bool)})
    with pytest.raises(ValueError, match="share one shape"):
        zone_scores(np.ones((4, 4)), {"a": np.ones((4, 4), bool), "b": np.ones((5, 5), bool)})
    with pytest.raises(ValueError, match="fov_mask"):
        zone_scores(np.ones((4, 4)), {"a": np.ones((4, 4), bool)}, np.ones((3, 3), bool))


def test_area_transfer_modes():
    rng = np.random.default_rng(2)
    x = rng.random((7, 5))
    for shape in [(14, 10), (3, 2), (20, 13)]:
        assert area_transfer(x, shape, "mass").sum() == pytest.approx(x.sum())
        assert np.allclose(area_transfer(np.full((7, 5), 2.5), shape, "mean"), 2.5)
    assert area_transfer(np.array([[1.0, 3.0]]), (1, 1), "mean")[0, 0] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="mode"):
        area_transfer(x, (2, 2), "max")


def test_concentration_extremes_and_hand_value():
    uni = concentration(np.ones((4, 4)))
    assert uni["entropy"] == pytest.approx(1.0) and uni["gini"] == pytest.approx(0.0) and uni["n_cells"] == 16
    one = np.zeros((4, 4))
    one[1, 2] = 3.0
    c = concentration(one)
    assert c["entropy"] == pytest.approx(0.0) and c["gini"] == pytest.approx(15 / 16)
    # two cells [1, 3]: p = (1/4, 3/4); H = -(1/4 ln 1/4 + 3/4 ln 3/4) / ln 2; G = (-1*1 + 1*3) / (2*4)
    c = concentration(np.array([[1.0, 3.0]]))
    h = -(0.25 * np.log(0.25) + 0.75 * np.log(0.75)) / np.log(2)
    assert c["entropy"] == pytest.approx(h) and c["gini"] == pytest.approx(0.25)
    fov = np.zeros((8, 8), bool)
    fov[:, :4] = True  # left half of a 4x4 map: cells of columns 0-1 only
    c = concentration(np.array([[1.0, 1.0, 50.0, 50.0]] * 4), fov)
    assert c["n_cells"] == 8 and c["gini"] == pytest.approx(0.0)
    assert np.isnan(concentration(np.zeros((3, 3)))["entropy"])
