"""Quality metrics: registry, monotonicity in each planted perturbation, grade rule."""
from __future__ import annotations

import math

import numpy as np
import pytest

from retcore import quality as Q
from retcore.quality import QualityThresholds, list_metrics, metric_levels, quality_grade, quality_metrics

SIZE = 160  # px; rendering is ~10 ms an image at this size


@pytest.fixture(scope="module")
def renderer():
    """render(label, eye, **quality) -> (S, S, 3) uint8: one fixed demo sample, varied quality."""
    from retcore.demo.base import load_base
    from retcore.demo.render import Quality, SamplePlan, render_sample

    base = load_base(2 * SIZE)

    def render(label: str = "normal", eye: str = "left", **quality) -> np.ndarray:
        plan = SamplePlan(3, 0, "p1", eye, label, "test", False, (1.0, 1.0, 1.0))
        return render_sample(plan, SIZE, 0.0, base, Quality(**quality)).image

    return render


def test_registry_lists_all_metrics():
    assert list_metrics()[:7] == ["blur", "glare", "illumination_mean", "illumination_contrast",
                                  "off_centre", "fov_cutoff", "fov_coverage"]
    with pytest.raises(ValueError, match="already registered"):
        Q.register_metric("blur")(lambda q: 0.0)
    with pytest.raises(KeyError, match="unknown quality metric 'nope': choose one of blur, glare"):
        quality_metrics(np.zeros((8, 8, 3), np.uint8), names=["nope"])


def test_register_custom_metric(renderer):
    Q.register_metric("red_mean")(lambda q: float(q.rgb[..., 0][q.fov].mean()))
    try:
        m = quality_metrics(renderer())
        assert "red_mean" in m and 50 < m["red_mean"] < 255
        assert list_metrics()[-1] == "red_mean"
    finally:
        Q.METRIC_REGISTRY.unregister("red_mean")


LABELS = ["normal", "cataract"]


@pytest.mark.parametrize("label", LABELS)
def test_blur_decreases_with_blur_sigma(renderer, label):
    vals = [quality_metrics(renderer(label, blur_sigma=s))["blur"] for s in (0.0, 0.5, 1.0, 1.5, 2.5)]
    assert all(a > b for a, b in zip(vals, vals[1:])), vals


@pytest.mark.parametrize("label", LABELS)
def test_glare_increases_with_glare_intensity(renderer, label):
    vals = [quality_metrics(renderer(label, glare=g, glare_angle=1.0))["glare"] for g in (0.0, 0.5, 0.75, 1.0)]
    assert vals[0] == 0.0
    assert all(a < b for a, b in zip(vals, vals[1:])), vals


@pytest.mark.parametrize("label", LABELS)
def test_off_centre_increases_with_shift(renderer, label):
    vals = [quality_metrics(renderer(label, shift_px=f * SIZE, shift_angle=math.pi / 2))["off_centre"]
            for f in (0.0, 0.05, 0.1, 0.2)]
    assert all(a < b for a, b in zip(vals, vals[1:])), vals
    assert vals[-1] == pytest.approx(0.2, abs=0.03)  # the shift, as a share of the side


@pytest.mark.parametrize("label", LABELS)
def test_illumination_increases_with_exposure(renderer, label):
    ms = [quality_metrics(renderer(label, exposure=e)) for e in (0.35, 0.5, 0.7, 1.0)]
    for key in ("illumination_mean", "illumination_contrast"):
        vals = [m[key] for m in ms]
        assert all(a < b for a, b in zip(vals, vals[1:])), (key, vals)


def test_spearman_on_a_demo_set():
    """Rank correlation between each planted perturbation and its metric over 60 demo renders."""
    from scipy.stats import spearmanr

    from retcore.demo import DemoConfig
    from retcore.demo.base import load_base
    from retcore.demo.generate import plan_samples
    from retcore.demo.render import render_sample

    size = 128
    base = load_base(2 * size)
    rows, mets = [], []
    for plan in plan_samples(DemoConfig(n_images=60, img_size=size, quality_rate=1.0, seed=5)):
        res = render_sample(plan, size, 1.0, base)
        rows.append(res.row)
        mets.append(quality_metrics(res.image))

    def rho(col: str, metric: str) -> float:
        return float(spearmanr([r[col] for r in rows], [m[metric] for m in mets]).statistic)

    # measured: blur -0.72, glare 0.91, off_centre 0.84, illumination mean / contrast 0.77 / 0.72
    assert rho("blur_sigma", "blur") < -0.5
    assert rho("glare", "glare") > 0.7
    assert rho("shift_px", "off_centre") > 0.6
    assert rho("exposure", "illumination_mean") > 0.5
    assert rho("exposure", "illumination_contrast") > 0.5


def test_metric_values_on_a_clean_photo(renderer):
    m = quality_metrics(renderer())
    assert m["glare"] == 0.0 and m["off_centre"] < 0.03 and m["fov_cutoff"] < 0.01
    assert 0.5 < m["fov_coverage"] < 0.8  # FOV radius ~0.45 of the side: pi 0.45^2 = 0.64
    assert quality_grade(m) == "good"


def test_grades_of_degraded_photos(renderer):
    assert quality_grade(quality_metrics(renderer(blur_sigma=2.5))) == "poor"
    assert quality_grade(quality_metrics(renderer(exposure=0.35))) == "poor"
    assert quality_grade(quality_metrics(renderer(shift_px=0.1 * SIZE, shift_angle=0.0))) != "good"


def test_grade_rule_on_hand_made_metrics():
    t = QualityThresholds()
    ok = {"blur": 200.0, "glare": 0.0, "illumination_mean": 120.0, "illumination_contrast": 25.0,
          "off_centre": 0.01, "fov_cutoff": 0.0, "fov_coverage": 0.6}
    assert quality_grade(ok, t) == "good"
    assert quality_grade({**ok, "blur": 30.0}, t) == "usable"
    assert quality_grade({**ok, "blur": 30.0, "glare": 0.05}, t) == "poor"  # worst level wins
    assert quality_grade({**ok, "illumination_mean": 215.0}, t) == "usable"  # too bright
    assert quality_grade({**ok, "illumination_mean": 40.0}, t) == "poor"  # too dark
    assert quality_grade({**ok, "fov_coverage": 0.1}, t) == "poor"
    assert quality_grade({**ok, "blur": float("nan")}, t) == "poor"
    assert metric_levels({**ok, "off_centre": 0.1}, t)["off_centre"] == "usable"
    # thresholds are configurable, and further metrics can be graded through `extra`
    assert quality_grade({**ok, "blur": 30.0}, QualityThresholds(blur_usable=20.0)) == "good"
    extra = QualityThresholds(extra={"red_mean": ("max", 200.0, 240.0)})
    assert quality_grade({**ok, "red_mean": 220.0}, extra) == "usable"
    assert quality_grade({"unrelated": 1.0}, t) == "good"


def test_precomputed_fov_and_large_photos_are_block_averaged(renderer):
    img = renderer()
    big = np.repeat(np.repeat(img, 4, axis=0), 4, axis=1)  # 640 px: FOV radius ~290 -> factor 2
    q = Q.prepare_quality_input(big)
    assert q.factor == 2 and q.rgb.shape[:2] == (320, 320)
    small = quality_metrics(img)
    m = quality_metrics(big)
    for key in ("illumination_mean", "illumination_contrast", "off_centre", "fov_coverage"):
        assert m[key] == pytest.approx(small[key], rel=0.05, abs=0.01)
    from retcore.anatomy import fov_mask

    fov = fov_mask(img)
    assert quality_metrics(img, fov=fov) == pytest.approx(small, rel=1e-6)
