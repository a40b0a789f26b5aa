"""Rendering of one demo sample: warp the base photo, draw the class lesions, degrade, mark.

Coordinates: continuous pixel coordinates (pixel ``i`` spans ``[i, i+1)``, centre ``i+0.5``).
Work happens on a canvas of twice the output size (``W = 2*S``) and is box-downsampled at
the end (anti-aliasing); recorded positions and radii are in output pixels.
Masks are rendered analytically at output resolution (bit 1 lesion/class evidence,
bit 2 optic disc, bit 4 shortcut marker).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from .base import BasePhoto

__all__ = ["SamplePlan", "Quality", "RenderedSample", "draw_quality", "render_sample", "FOV_FRACTION"]

#: nominal FOV radius as a share of the image side (times the per-sample scale 0.9-1.1)
FOV_FRACTION = 0.45
MASK_LESION, MASK_DISC, MASK_MARKER = 1, 2, 4

_HAEM = np.array([0.50, 0.08, 0.05], np.float32)
_MICRO = np.array([0.48, 0.06, 0.05], np.float32)
_EXUDATE = np.array([0.99, 0.92, 0.52], np.float32)
_CUP = np.array([0.97, 0.93, 0.81], np.float32)
_PALLOR = np.array([0.98, 0.84, 0.72], np.float32)
_PPA = np.array([0.86, 0.70, 0.52], np.float32)
_COTTON = np.array([0.94, 0.86, 0.78], np.float32)
_VEIL = np.array([0.97, 0.93, 0.80], np.float32)
_MARKER = np.array([0.75, 1.0, 1.0], np.float32)


@dataclass(frozen=True)
class SamplePlan:
    """What the parent decides for image ``index``; everything else comes from its own RNGs."""

    index: int
    seed: int
    patient_id: str
    eye: str  # 'left' | 'right'
    label: str
    split: str
    marker: bool
    gain: tuple[float, float, float]  # patient-level per-channel colour gain


@dataclass(frozen=True)
class Quality:
    """Quality perturbation strengths (neutral values = not applied); positions in FOV units."""

    blur_sigma: float = 0.0  # Gaussian sigma, output px
    glare: float = 0.0  # intensity in [0, 1]; the added light peaks at 0.6 + 1.2 * glare
    shift_px: float = 0.0  # extra off-centre displacement of the fundus, output px
    exposure: float = 1.0  # multiplicative factor
    shift_angle: float = 0.0  # radians
    glare_angle: float = 0.0
    glare_dist: float = 0.5  # FOV radii from the FOV centre
    glare_size: float = 0.15  # FOV radii


@dataclass(frozen=True)
class RenderedSample:
    """image (S, S, 3) uint8, mask (S, S) uint8 bit field, row: manifest values (no paths)."""

    image: np.ndarray
    mask: np.ndarray
    row: dict[str, object]


def draw_quality(index: int, seed: int, rate: float, img_size: int) -> Quality:
    """Draw the quality perturbations of image ``index`` from its own stream (seed, 4, index)."""
    rng = np.random.default_rng([seed, 4, index])
    u = rng.random(12)  # fixed number of draws: the stream does not depend on the branch taken
    kinds: set[int] = set()
    if u[0] < rate:
        kinds.add(int(u[1] * 4) % 4)
        if u[2] < 0.2:
            kinds.add((int(u[1] * 4) + 1 + int(u[3] * 3)) % 4)
    return Quality(
        blur_sigma=round(0.8 + 2.4 * u[4], 2) if 0 in kinds else 0.0,
        glare=round(0.3 + 0.7 * u[5], 3) if 1 in kinds else 0.0,
        shift_px=round((0.07 + 0.13 * u[6]) * img_size, 2) if 2 in kinds else 0.0,
        exposure=round(0.35 + 0.35 * u[7], 3) if 3 in kinds else 1.0,
        shift_angle=2 * math.pi * u[8],
        glare_angle=2 * math.pi * u[9],
        glare_dist=0.25 + 0.5 * u[10],
        glare_size=0.1 + 0.1 * u[11],
    )


def _splat(img: np.ndarray, cx: float, cy: float, rx: float, ry: float, ang: float,
           color: np.ndarray, amax: float, soft: float = 0.3):
    """Blend an elliptical spot (canvas px) toward ``color`` in place; alpha ramps smoothly to 0
    over the outer ``soft`` share of the radius. Returns (region slices, alpha (h, w, 1)) or None."""
    h, w = img.shape[:2]
    rmax = max(rx, ry) + 1.0
    x0, x1 = max(int(cx - rmax), 0), min(int(cx + rmax) + 2, w)
    y0, y1 = max(int(cy - rmax), 0), min(int(cy + rmax) + 2, h)
    if x0 >= x1 or y0 >= y1:
        return None
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32) + 0.5
    dx, dy = xs - cx, ys - cy
    c, s = math.cos(ang), math.sin(ang)
    d = np.hypot((c * dx + s * dy) / rx, (-s * dx + c * dy) / ry)
    t = np.clip((1.0 - d) / soft, 0.0, 1.0)
    a = (amax * t * t * (3 - 2 * t))[..., None]
    patch = img[y0:y1, x0:x1]
    patch += a * (color - patch)
    return (slice(y0, y1), slice(x0, x1)), a


def _ellipse_mask(shape: tuple[int, int], cx: float, cy: float, rx: float, ry: float, ang: float) -> np.ndarray:
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    dx, dy = xs - cx, ys - cy
    c, s = math.cos(ang), math.sin(ang)
    return ((c * dx + s * dy) / rx) ** 2 + ((-s * dx + c * dy) / ry) ** 2 <= 1.0


def _cataract(img, rng, fov_c, fov_r, u, mask, aperture):
    from scipy import ndimage as ndi

    hc = fov_c + rng.normal(0.0, 0.05 * fov_r, 2)
    rh = rng.uniform(0.5, 0.8) * fov_r  # radius where the veil is at half its peak
    a0 = rng.uniform(0.5, 0.75)
    sig = rng.uniform(2.0, 3.5) * u * 2  # canvas px
    blurred = ndi.gaussian_filter(img, (sig, sig, 0), mode="nearest", truncate=3.0)
    h = img.shape[0]
    ys, xs = np.mgrid[0:h, 0:h].astype(np.float32) + 0.5
    prof = np.exp(-math.log(2) * ((xs - hc[0]) ** 2 + (ys - hc[1]) ** 2) / rh ** 2)[..., None]
    img += (0.45 + 0.55 * prof) * (blurred - img)
    img += (a0 * prof) * (_VEIL * rng.uniform(0.9, 1.0) - img)
    s = mask.shape[0]
    zone = _ellipse_mask((s, s), hc[0] / 2, hc[1] / 2, rh / 2, rh / 2, 0.0)
    mask[zone & (aperture > 0.5)] |= MASK_LESION


def _posterior_pole_point(rng, disc, disc_r, fovea, fov_c, fov_r):
    axis = disc - fovea
    length = float(np.hypot(*axis))
    normal = np.array([-axis[1], axis[0]]) / length
    for _ in range(50):
        p = fovea + rng.uniform(-0.45, 0.85) * axis + rng.normal(0.0, 0.3) * length * normal
        if np.hypot(*(p - fov_c)) <= 0.6 * fov_r and np.hypot(*(p - disc)) >= 1.4 * disc_r:
            return p
    return fovea + rng.normal(0.0, 0.1 * fov_r, 2)


DR_LESION_SCALE = 2.2
"""Size of the red DR lesions (micro-aneurysms, haemorrhages) relative to a typical 45-degree photo at this
resolution: at 224 px true-to-scale micro-aneurysms are about one pixel, too faint for a ViT trained from scratch
in minutes, so the demo draws them 1.7x larger (still within the lesion sizes seen on real photos). The bright
lesions (exudates, cotton-wool spots) keep their size: larger bright plaques pull optic-disc detectors off the disc."""


def _diabetic_retinopathy(img, rng, disc, disc_r, fovea, fov_c, fov_r, u, mask):
    ur = u * DR_LESION_SCALE  # red lesions
    n = int(rng.integers(25, 51))
    # 0 micro-aneurysm, 1 dot-blot haemorrhage, 2 flame haemorrhage, 3 hard-exudate cluster, 4 cotton-wool spot
    kinds = rng.choice(5, size=n, p=[0.20, 0.42, 0.15, 0.17, 0.06])
    spots: list[tuple[float, float, float]] = []  # output px (x, y, r)
    flames: list[tuple[float, float, float, float, float]] = []  # output px (x, y, rx, ry, angle)
    exudates: list[np.ndarray] = []
    for k in kinds:
        if k == 3 and exudates and rng.random() < 0.6:  # hard exudates cluster
            p = exudates[int(rng.integers(len(exudates)))] + rng.normal(0.0, 0.05 * fov_r, 2)
        else:
            p = _posterior_pole_point(rng, disc, disc_r, fovea, fov_c, fov_r)
        if k == 0:
            r = rng.uniform(1.0, 1.6) * ur * 2
            _splat(img, p[0], p[1], r, r, 0.0, _MICRO, rng.uniform(0.8, 0.95), 0.5)
            spots.append((p[0] / 2, p[1] / 2, r / 2))
        elif k == 1:
            r = rng.uniform(3.0, 6.0) * ur * 2
            for _ in range(int(rng.integers(1, 4))):  # dot-blot: a few overlapping blobs
                q = p + rng.normal(0.0, 0.35 * r, 2)
                rx, ry = r * rng.uniform(0.6, 1.0), r * rng.uniform(0.6, 1.0)
                _splat(img, q[0], q[1], rx, ry, rng.uniform(0, math.pi), _HAEM * rng.uniform(0.85, 1.15),
                       rng.uniform(0.8, 0.95), 0.45)
                spots.append((q[0] / 2, q[1] / 2, max(rx, ry) / 2))
        elif k == 2:  # flame: elongated along the nerve fibres (about radial to the disc)
            length, width = rng.uniform(5.0, 9.0) * ur * 2, rng.uniform(1.5, 2.5) * ur * 2
            ang = math.atan2(p[1] - disc[1], p[0] - disc[0]) + rng.normal(0.0, 0.2)
            _splat(img, p[0], p[1], length, width, ang, _HAEM * rng.uniform(0.95, 1.2), rng.uniform(0.7, 0.9), 0.5)
            flames.append((p[0] / 2, p[1] / 2, length / 2 + 1.0, width / 2 + 1.0, ang))
        elif k == 4:  # soft, fluffy pale patch
            r = rng.uniform(4.0, 7.0) * u * 2
            _splat(img, p[0], p[1], r, r * rng.uniform(0.6, 0.9), rng.uniform(0, math.pi), _COTTON,
                   rng.uniform(0.55, 0.75), 0.8)
            spots.append((p[0] / 2, p[1] / 2, r / 2))
        else:  # a plaque of a few waxy yellow dots
            for j in range(int(rng.integers(2, 7))):
                q = p if j == 0 else p + rng.normal(0.0, 2.5 * u * 2, 2)
                r = rng.uniform(1.2, 2.8) * u * 2
                _splat(img, q[0], q[1], r, r * rng.uniform(0.7, 1.0), rng.uniform(0, math.pi), _EXUDATE,
                       rng.uniform(0.85, 1.0), 0.35)
                spots.append((q[0] / 2, q[1] / 2, r / 2))
            exudates.append(p)
    s = mask.shape[0]
    ys, xs = np.mgrid[0:s, 0:s].astype(np.float32) + 0.5
    for x, y, r in spots:  # dilated by 1 output px
        mask[(xs - x) ** 2 + (ys - y) ** 2 <= (r + 1.0) ** 2] |= MASK_LESION
    for x, y, rx, ry, ang in flames:
        mask[_ellipse_mask((s, s), x, y, rx, ry, ang)] |= MASK_LESION


def _glaucoma(img, rng, disc, disc_r, fovea, theta, mask):
    from scipy import ndimage as ndi

    h = img.shape[0]
    y0, y1 = max(int(disc[1] - 1.9 * disc_r - 3), 0), min(int(disc[1] + 1.9 * disc_r) + 5, h)
    x0, x1 = max(int(disc[0] - 1.9 * disc_r - 3), 0), min(int(disc[0] + 1.9 * disc_r) + 5, h)
    region = img[y0:y1, x0:x1]
    sig = max(0.1 * disc_r, 1.0)
    detail = region - ndi.gaussian_filter(region, (sig, sig, 0), mode="nearest")  # vessels on the disc
    cdr = rng.uniform(0.7, 0.9)
    to_fovea = (fovea - disc) / np.hypot(*(fovea - disc))
    # peripapillary atrophy: a pale halo, widest on the temporal side, then disc pallor
    ppa = disc + rng.uniform(0.1, 0.3) * disc_r * to_fovea
    rp = rng.uniform(1.25, 1.5) * disc_r
    _splat(img, ppa[0], ppa[1], rp, rp, 0.0, _PPA, rng.uniform(0.25, 0.45), 0.5)
    _splat(img, disc[0], disc[1], disc_r, disc_r, 0.0, _PALLOR, rng.uniform(0.25, 0.45), 0.25)
    soft = 0.3
    rx = cdr * disc_r
    ry = min(cdr * disc_r * rng.uniform(1.0, 1.1), 0.95 * disc_r)  # cups enlarge vertically first
    off = min(rng.uniform(0.0, 0.1) * disc_r, max(0.97 * disc_r - max(rx, ry), 0.0))
    c = disc + off * to_fovea  # slightly temporal
    # the half-alpha contour of the splat is the cup outline (radius rx, ry)
    res = _splat(img, c[0], c[1], rx / (1 - soft / 2), ry / (1 - soft / 2), theta, _CUP * rng.uniform(0.95, 1.0),
                 rng.uniform(0.65, 0.85), soft)
    if res is not None:  # vessels stay visible on the pale cup floor
        (sy, sx), a = res
        full = np.zeros(region.shape[:2] + (1,), np.float32)
        full[sy.start - y0: sy.stop - y0, sx.start - x0: sx.stop - x0] = a
        region += full * detail * rng.uniform(1.0, 1.3)
    s = mask.shape[0]
    mask[_ellipse_mask((s, s), c[0] / 2, c[1] / 2, rx / 2, ry / 2, theta)] |= MASK_LESION


def render_sample(plan: SamplePlan, img_size: int, quality_rate: float, base: BasePhoto,
                  quality: Quality | None = None) -> RenderedSample:
    """Render sample ``plan`` at ``img_size`` px from ``base`` (a ``load_base(2 * img_size)``).

    Returns the RGB image (S, S, 3) uint8, its mask (S, S) uint8 bit field and the manifest
    values (disc centre/radius and marker in output px, quality strengths). ``quality``
    overrides the perturbations drawn with ``quality_rate`` (tests render counterparts).
    """
    from PIL import Image
    from scipy import ndimage as ndi

    S, W = img_size, 2 * img_size
    u = S / 224.0  # lesion sizes are specified for 224 px images
    rng = np.random.default_rng([plan.seed, 2, plan.index])
    q = quality if quality is not None else draw_quality(plan.index, plan.seed, quality_rate, S)

    # --- geometry (output px): v in FOV units -> p = C + k * R @ (m * v)
    theta = math.radians(rng.uniform(-15.0, 15.0))
    k = FOV_FRACTION * S * rng.uniform(0.9, 1.1)
    centre = S / 2.0 + rng.uniform(-0.02, 0.02, 2) * S
    m = np.array([-1.0 if plan.eye != "left" else 1.0, 1.0])  # the base photo is a left eye
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])

    def fwd(v, c):
        return c + k * rot @ (m * np.asarray(v))

    if q.shift_px > 0:
        rd_out, moved = k * base.disc_r, centre
        for i in range(16):  # keep the optic disc (and its ground truth) inside the image
            mag = q.shift_px if i < 8 else q.shift_px * 0.5
            ang = q.shift_angle + i * math.pi / 4
            c2 = centre + mag * np.array([math.cos(ang), math.sin(ang)])
            d = fwd(base.disc, c2)
            if (d >= rd_out + 1).all() and (d <= S - rd_out - 1).all():
                moved = c2
                break
        q = replace(q, shift_px=round(float(np.hypot(*(moved - centre))), 2))  # the shift really applied
        centre = moved
    disc_o, fovea_o, rd_o = fwd(base.disc, centre), fwd(base.fovea, centre), k * base.disc_r

    # --- warp the base photo onto the canvas (PIL maps output -> input coordinates)
    bs = base.size / 2.0
    a = (bs / k) * (np.diag(m) @ rot.T)
    off = bs - a @ centre
    a2 = a / 2.0  # canvas px -> output px
    warped = Image.fromarray(base.rgb).transform(
        (W, W), Image.Transform.AFFINE, (a2[0, 0], a2[0, 1], off[0], a2[1, 0], a2[1, 1], off[1]),
        resample=Image.Resampling.BILINEAR)
    img = np.asarray(warped, dtype=np.float32) / 255.0

    ys, xs = np.mgrid[0:S, 0:S].astype(np.float32) + 0.5
    aperture = np.clip(k - np.hypot(xs - centre[0], ys - centre[1]) + 0.5, 0.0, 1.0)
    mask = np.zeros((S, S), np.uint8)

    # --- class evidence (canvas px = 2 * output px)
    c2x, d2, f2 = 2 * centre, 2 * disc_o, 2 * fovea_o
    if plan.label == "cataract":
        _cataract(img, rng, c2x, 2 * k, u, mask, aperture)
    elif plan.label == "diabetic_retinopathy":
        _diabetic_retinopathy(img, rng, d2, 2 * rd_o, f2, c2x, 2 * k, u, mask)
    elif plan.label == "glaucoma":
        _glaucoma(img, rng, d2, 2 * rd_o, f2, theta, mask)

    # --- camera: colour gain (patient) x brightness, contrast (image)
    gain = np.asarray(plan.gain, np.float32) * rng.uniform(0.88, 1.12)
    mean = img[W // 4: 3 * W // 4: 4, W // 4: 3 * W // 4: 4].mean(axis=(0, 1))
    img = (mean + rng.uniform(0.85, 1.15) * (img - mean)) * gain

    # --- quality perturbations
    if q.glare > 0:
        for i in range(8):  # a reflex, not on the optic disc
            ang = q.glare_angle + i * math.pi / 4
            g = centre + q.glare_dist * k * np.array([math.cos(ang), math.sin(ang)])
            if np.hypot(*(g - disc_o)) > 2.5 * rd_o:
                break
        gy, gx = np.mgrid[0:W, 0:W].astype(np.float32) + 0.5
        r2 = ((gx - 2 * g[0]) ** 2 + (gy - 2 * g[1]) ** 2) / (2 * q.glare_size * k) ** 2
        peak = 0.6 + 1.2 * q.glare  # additive light: even the weakest glare saturates its core
        img += (peak * np.exp(-2.0 * r2))[..., None] * np.array([1.0, 1.0, 0.97], np.float32)
    if q.blur_sigma > 0:
        s2 = 2 * q.blur_sigma
        img = ndi.gaussian_filter(img, (s2, s2, 0), mode="nearest", truncate=3.0)
    if q.exposure != 1.0:
        img *= q.exposure

    # --- downsample, aperture, marker
    img = (img[0::2, 0::2] + img[1::2, 0::2] + img[0::2, 1::2] + img[1::2, 1::2]) * (0.25 * aperture[..., None])
    mk = (-1.0, -1.0, -1.0)
    if plan.marker:  # burnt-in acquisition marker: fixed-ish position in the upper-left periphery
        ang = math.radians(225.0 + rng.uniform(-6.0, 6.0))
        dist = FOV_FRACTION * S * rng.uniform(0.76, 0.84)
        mx, my, mr = (S / 2 + dist * math.cos(ang), S / 2 + dist * math.sin(ang),
                      max(rng.uniform(2.6, 3.4) * u, 1.5))
        dm = np.hypot(xs - mx, ys - my)
        am = np.clip(mr - dm + 0.5, 0.0, 1.0)[..., None]
        img += am * (_MARKER - img)
        mask[dm <= mr] |= MASK_MARKER
        mk = (round(mx, 2), round(my, 2), round(mr, 2))
    out = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)

    dd = np.hypot(xs - disc_o[0], ys - disc_o[1]) <= rd_o
    mask[dd] |= MASK_DISC
    ix, iy = int(disc_o[0]), int(disc_o[1])
    if 0 <= ix < S and 0 <= iy < S:
        mask[iy, ix] |= MASK_DISC
    row = {
        "disc_x": round(float(disc_o[0]), 2), "disc_y": round(float(disc_o[1]), 2), "disc_r": round(float(rd_o), 2),
        "blur_sigma": q.blur_sigma, "glare": q.glare, "shift_px": q.shift_px, "exposure": q.exposure,
        "shortcut": int(plan.marker), "marker_x": mk[0], "marker_y": mk[1], "marker_r": mk[2],
    }
    return RenderedSample(out, mask, row)
