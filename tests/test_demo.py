"""Tests of the semi-synthetic demo dataset generator (retcore.demo)."""
from __future__ import annotations

import csv
import json
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage as ndi

from retcore.demo import DEMO_CONFIG_FILE, DEMO_MANIFEST, MANIFEST_COLUMNS, DemoConfig, make_demo_dataset
from retcore.demo.base import load_base
from retcore.demo.generate import plan_samples
from retcore.demo.render import FOV_FRACTION, Quality, render_sample
from retcore.errors import DataError

COLUMNS = ("path,label,split,patient_id,eye,mask_path,disc_x,disc_y,disc_r,blur_sigma,glare,shift_px,"
           "exposure,shortcut,marker_x,marker_y,marker_r").split(",")
CLASSES = ("cataract", "diabetic_retinopathy", "glaucoma", "normal")


def _rows(manifest: Path) -> list[dict[str, str]]:
    with open(manifest, newline="") as f:
        return list(csv.DictReader(f))


def _img(root: Path, rel: str) -> np.ndarray:
    return np.asarray(Image.open(root / rel))


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    """40 images at 96 px, no quality perturbation, no shortcut, 2 worker processes."""
    cfg = DemoConfig(n_images=40, img_size=96, quality_rate=0.0, seed=1, workers=2)
    return make_demo_dataset(tmp_path_factory.mktemp("clean"), cfg)


@pytest.fixture(scope="module")
def degraded(tmp_path_factory) -> Path:
    """40 images at 96 px, every image perturbed."""
    cfg = DemoConfig(n_images=40, img_size=96, quality_rate=1.0, seed=2, workers=1)
    return make_demo_dataset(tmp_path_factory.mktemp("degraded"), cfg)


@pytest.fixture(scope="module")
def marked(tmp_path_factory) -> Path:
    """40 images at 64 px with the shortcut planted on glaucoma."""
    cfg = DemoConfig(n_images=40, img_size=64, shortcut="glaucoma", seed=4, workers=1)
    return make_demo_dataset(tmp_path_factory.mktemp("marked"), cfg)


def test_manifest_columns_paths_and_files(clean):
    root = clean.parent
    assert clean.name == DEMO_MANIFEST
    assert clean.read_text().splitlines()[0] == ",".join(COLUMNS)
    assert tuple(COLUMNS) == MANIFEST_COLUMNS
    rows = _rows(clean)
    assert len(rows) == 40
    assert {r["label"] for r in rows} == set(CLASSES)
    for r in rows:
        name = f"{r['patient_id']}_{r['eye']}.png"
        assert r["path"] == f"images/{r['label']}/{name}" and r["mask_path"] == f"masks/{name}"
        assert r["eye"] in ("left", "right") and r["split"] in ("train", "val", "test")
        im, mask = Image.open(root / r["path"]), Image.open(root / r["mask_path"])
        assert im.mode == "RGB" and im.size == (96, 96)
        assert mask.mode == "L" and mask.size == (96, 96)
        a = np.asarray(im)
        assert a[0, 0].max() == 0 and a[-1, -1].max() == 0  # black outside the circular FOV
        assert a[48, 48].max() > 40
    conf = json.loads((root / DEMO_CONFIG_FILE).read_text())
    assert conf["n_images"] == 40 and conf["img_size"] == 96 and "workers" not in conf
    assert not list(root.glob(".staging-*"))


def test_deterministic_and_independent_of_workers(clean, tmp_path):
    cfg = DemoConfig(n_images=40, img_size=96, quality_rate=0.0, seed=1, workers=1)
    again = make_demo_dataset(tmp_path / "again", cfg)
    assert again.read_bytes() == clean.read_bytes()
    for r in _rows(clean)[:: 5]:
        for key in ("path", "mask_path"):
            assert (again.parent / r[key]).read_bytes() == (clean.parent / r[key]).read_bytes()
    other = make_demo_dataset(tmp_path / "other", replace(cfg, n_images=8, seed=7))
    r0 = _rows(other)[0]
    same = clean.parent / r0["path"]
    assert not same.exists() or same.read_bytes() != (other.parent / r0["path"]).read_bytes()


def test_grouped_stratified_split():
    for n in (24, 40, 800):
        plans = plan_samples(DemoConfig(n_images=n, seed=5))
        assert len(plans) == n
        split_of, label_of = defaultdict(set), defaultdict(set)
        for p in plans:
            split_of[p.patient_id].add(p.split)
            label_of[p.patient_id].add(p.label)
        assert all(len(s) == 1 for s in split_of.values())  # no patient in two splits
        assert all(len(s) == 1 for s in label_of.values())  # both eyes share the class
        per = defaultdict(int)
        for p in plans:
            per[(p.split, p.label)] += 1
        for split in ("train", "val", "test"):
            for label in CLASSES:
                assert per[(split, label)] > 0, (n, split, label)
        if n == 800:
            two_eyed = sum(len({q.eye for q in plans if q.patient_id == pid}) == 2 for pid in split_of)
            assert two_eyed / len(split_of) > 0.7
            for label in CLASSES:
                assert 20 <= per[("test", label)] <= 40 and 20 <= per[("val", label)] <= 40
    a, b = plan_samples(DemoConfig(n_images=40, seed=5)), plan_samples(DemoConfig(n_images=40, seed=5))
    assert a == b


def test_mask_bits(clean):
    root = clean.parent
    s = 96
    yy, xx = np.mgrid[0:s, 0:s] + 0.5
    for r in _rows(clean):
        mask = _img(root, r["mask_path"])
        dx, dy, dr = float(r["disc_x"]), float(r["disc_y"]), float(r["disc_r"])
        assert mask[int(dy), int(dx)] & 2, r["path"]
        disc = (mask & 2) > 0
        assert abs(disc.sum() - np.pi * dr ** 2) < 0.3 * np.pi * dr ** 2
        assert not (mask & 4).any()  # no shortcut configured
        lesion = (mask & 1) > 0
        if r["label"] == "normal":
            assert not lesion.any()
        elif r["label"] == "cataract":
            assert lesion[s // 2, s // 2]
            frac = np.sqrt(lesion.sum() / np.pi) / (FOV_FRACTION * s)
            assert 0.35 < frac < 0.9  # haze zone radius in FOV radii
        elif r["label"] == "glaucoma":
            d = np.hypot(xx - dx, yy - dy)
            assert lesion.any() and (d[lesion] <= dr + 1.0).all()  # cup inside the disc
            assert 0.5 < np.sqrt(lesion.sum() / disc.sum()) < 1.0  # cup-to-disc ratio 0.7-0.9
        else:
            n_spots = ndi.label(lesion)[1]
            assert n_spots >= 1 and lesion.sum() >= 20  # 25-50 lesions; the red ones (drawn 2.2x) merge at 96 px
            d = np.hypot(xx - s / 2, yy - s / 2)
            assert d[lesion].max() <= 0.75 * FOV_FRACTION * 1.1 * s + 3  # posterior pole


def test_lesions_are_in_the_pixels(clean):
    """Class evidence really changes the image where the mask says so."""
    root = clean.parent
    rows = _rows(clean)
    lap = {}
    for r in rows:
        g = _img(root, r["path"])[..., 1].astype(float)
        fov = ndi.binary_erosion(g > 10, iterations=3)
        lap[r["path"]] = ndi.laplace(g)[fov].var()
    by = defaultdict(list)
    for r in rows:
        by[r["label"]].append(lap[r["path"]])
    assert max(by["cataract"]) < min(by["normal"])  # the haze blurs
    for r in rows:
        im = _img(root, r["path"]).astype(float)
        mask = _img(root, r["mask_path"])
        if r["label"] == "glaucoma":  # the cup is paler (brighter blue channel) than the rim
            cup, rim = (mask & 1) > 0, ((mask & 2) > 0) & ((mask & 1) == 0)
            if rim.sum() >= 3:
                assert im[..., 2][cup].mean() > im[..., 2][rim].mean()
        if r["label"] == "diabetic_retinopathy":
            spots = (mask & 1) > 0
            ring = ndi.binary_dilation(spots, iterations=3) & ~spots & ((mask & 2) == 0)
            # dark haemorrhages and bright exudates: spot pixels differ from the surrounding retina
            dev_spot = np.abs(im[spots] - np.median(im[ring], axis=0)).max(axis=1).mean()
            dev_ring = np.abs(im[ring] - np.median(im[ring], axis=0)).max(axis=1).mean()
            assert dev_spot > 1.5 * dev_ring and dev_spot > 15


def test_eyes_are_mirrored(clean):
    root = clean.parent
    rows = _rows(clean)
    left = [float(r["disc_x"]) for r in rows if r["eye"] == "left"]
    right = [float(r["disc_x"]) for r in rows if r["eye"] == "right"]
    assert left and right and max(left) < 48 < min(right)  # the base photo is a left eye: disc left
    for r in rows:  # the pixels agree: the smoothed brightest point lies on the recorded disc
        if r["label"] in ("normal", "glaucoma"):
            g = ndi.gaussian_filter(_img(root, r["path"]).astype(float).mean(2), 2)
            y, x = np.unravel_index(np.argmax(g), g.shape)
            assert np.hypot(x + 0.5 - float(r["disc_x"]), y + 0.5 - float(r["disc_y"])) < 1.5 * float(r["disc_r"])


def test_quality_labels_recorded(degraded, clean):
    rows = _rows(degraded)
    for r in rows:
        blur, glare, shift, expo = (float(r[k]) for k in ("blur_sigma", "glare", "shift_px", "exposure"))
        assert blur > 0 or glare > 0 or shift > 0 or expo < 1  # quality_rate=1: every image degraded
        assert blur == 0 or 0.8 <= blur <= 3.2
        assert glare == 0 or 0.3 <= glare <= 1.0
        assert expo == 1 or 0.35 <= expo <= 0.7
        assert shift == 0 or shift > 0.03 * 96
    for k in ("blur_sigma", "glare", "shift_px"):
        assert any(float(r[k]) > 0 for r in rows), k
    for r in _rows(clean):
        assert (r["blur_sigma"], r["glare"], r["shift_px"], r["exposure"]) == ("0.0", "0.0", "0.0", "1.0")
    # across the set: blurred non-cataract images are smoother than the sharp ones
    root = degraded.parent
    sharp, blurred = [], []
    for r in rows:
        if r["label"] != "cataract" and float(r["exposure"]) == 1:
            g = _img(root, r["path"])[..., 1].astype(float)
            v = ndi.laplace(g)[ndi.binary_erosion(g > 10, iterations=3)].var()
            (blurred if float(r["blur_sigma"]) > 0 else sharp).append(v)
    assert blurred and sharp and np.mean(blurred) < np.mean(sharp)


def _render(plan, q: Quality, size: int = 96) -> np.ndarray:
    return render_sample(plan, size, 0.0, load_base(2 * size), quality=q).image.astype(float)


def _fov(im: np.ndarray) -> np.ndarray:
    return im.max(axis=2) > 8


def test_quality_perturbations_are_monotonic():
    """The same sample rendered with increasing strength: each quality signal moves one way."""
    plan = next(p for p in plan_samples(DemoConfig(n_images=8, seed=9)) if p.label == "normal")
    none = _render(plan, Quality())
    fov = ndi.binary_erosion(_fov(none), iterations=3)

    def lap(im):
        return ndi.laplace(im[..., 1])[fov].var()

    blur = [lap(none)] + [lap(_render(plan, Quality(blur_sigma=s))) for s in (0.8, 1.6, 3.0)]
    assert all(a > b for a, b in zip(blur, blur[1:]))
    sat = [(_render(plan, Quality(glare=g)).min(axis=2)[fov] >= 250).mean() for g in (0.0, 0.3, 0.6, 1.0)]
    assert sat[0] == 0 and all(a < b for a, b in zip(sat, sat[1:]))
    lum = [_render(plan, Quality(exposure=e))[fov].mean() for e in (0.35, 0.5, 0.7, 1.0)]
    assert all(a < b for a, b in zip(lum, lum[1:]))
    assert abs(lum[1] / lum[3] - 0.5) < 0.03

    def centre(im):
        ys, xs = np.nonzero(_fov(im))
        return np.array([xs.mean(), ys.mean()])

    off = [np.hypot(*(centre(_render(plan, Quality(shift_px=d, shift_angle=0.3))) - centre(none))) for d in (8, 16, 24)]
    assert all(a < b for a, b in zip(off, off[1:])) and off[0] > 4
    # recorded shift equals the applied one when the disc stays inside the image
    row = render_sample(plan, 96, 0.0, load_base(192), quality=Quality(shift_px=10.0, shift_angle=0.3)).row
    assert row["shift_px"] == pytest.approx(10.0, abs=0.01)


def test_shortcut_rates_planned():
    plans = plan_samples(DemoConfig(n_images=4000, shortcut="glaucoma", seed=0))
    rate = defaultdict(list)
    for p in plans:
        rate[("test" if p.split == "test" else "trainval", p.label)].append(p.marker)
    assert np.mean(rate[("trainval", "glaucoma")]) == pytest.approx(0.9, abs=0.04)
    for label in ("cataract", "diabetic_retinopathy", "normal"):
        assert np.mean(rate[("trainval", label)]) == pytest.approx(0.05, abs=0.03)
    for label in CLASSES:
        assert np.mean(rate[("test", label)]) == pytest.approx(0.5, abs=0.12)
    none = plan_samples(DemoConfig(n_images=400, shortcut=None))
    assert not any(p.marker for p in none)
    custom = plan_samples(DemoConfig(n_images=400, shortcut="normal", shortcut_rate_trainval=1.0,
                                     shortcut_rate_other=0.0, test_marker_rate=0.0))
    assert all(p.marker == (p.label == "normal" and p.split != "test") for p in custom)


def test_shortcut_marker_rendered(marked, clean):
    root = marked.parent
    rows = _rows(marked)
    tv = [r for r in rows if r["split"] != "test"]
    glauc = [int(r["shortcut"]) for r in tv if r["label"] == "glaucoma"]
    others = [int(r["shortcut"]) for r in tv if r["label"] != "glaucoma"]
    assert np.mean(glauc) >= 0.6 and np.mean(others) <= 0.2
    for r in rows:
        mask = _img(root, r["mask_path"])
        if r["shortcut"] == "1":
            x, y, rad = float(r["marker_x"]), float(r["marker_y"]), float(r["marker_r"])
            assert x < 32 and y < 32 and rad > 0  # upper-left periphery
            assert mask[int(y), int(x)] & 4
            assert _img(root, r["path"])[int(y), int(x)].min() > 150  # bright marker
        else:
            assert (r["marker_x"], r["marker_y"], r["marker_r"]) == ("-1.0", "-1.0", "-1.0")
            assert not (mask & 4).any()
    assert all(r["shortcut"] == "0" for r in _rows(clean))


def test_resume_and_rebuild(tmp_path, monkeypatch):
    out = tmp_path / "demo"
    cfg = DemoConfig(n_images=24, img_size=64, workers=1)
    man = make_demo_dataset(out, cfg)
    stamp = man.stat().st_mtime_ns
    some = out / _rows(man)[0]["path"]
    img_stamp = some.stat().st_mtime_ns

    import retcore.demo.generate as gen

    def boom(plan):
        raise AssertionError("must not render again")

    monkeypatch.setattr(gen, "_render_and_save", boom)
    t = time.perf_counter()
    assert make_demo_dataset(out, replace(cfg, workers=2)) == man  # workers do not matter
    assert time.perf_counter() - t < 1.0
    assert man.stat().st_mtime_ns == stamp and some.stat().st_mtime_ns == img_stamp
    monkeypatch.undo()

    some.unlink()  # incomplete -> rebuilt
    make_demo_dataset(out, cfg)
    assert some.exists()
    make_demo_dataset(out, replace(cfg, seed=1))  # another config -> rebuilt
    assert json.loads((out / DEMO_CONFIG_FILE).read_text())["seed"] == 1
    assert len(_rows(man)) == 24 and all((out / r["path"]).exists() for r in _rows(man))


def test_interrupted_generation_leaves_no_manifest(tmp_path, monkeypatch):
    import retcore.demo.generate as gen

    real = gen._render_and_save
    calls = {"n": 0}

    def flaky(plan):
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt
        return real(plan)

    monkeypatch.setattr(gen, "_render_and_save", flaky)
    out = tmp_path / "demo"
    with pytest.raises(KeyboardInterrupt):
        make_demo_dataset(out, DemoConfig(n_images=24, img_size=64, workers=1))
    assert not (out / DEMO_MANIFEST).exists()
    assert not list(out.glob(".staging-*")) and not (out / "images").exists()
    monkeypatch.undo()
    assert make_demo_dataset(out, DemoConfig(n_images=24, img_size=64, workers=1)).exists()


@pytest.mark.parametrize("bad", [dict(shortcut="myopia"), dict(classes=("normal", "amd")), dict(n_images=2),
                                 dict(val=0.6, test=0.5), dict(quality_rate=1.5), dict(img_size=8)])
def test_invalid_config(tmp_path, bad):
    with pytest.raises(DataError):
        make_demo_dataset(tmp_path, DemoConfig(**bad))
