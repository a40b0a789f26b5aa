"""Fundus photos and relevance overlays for the dashboard.

Safety: an image path from the database is only opened when, resolved (links
followed), it lies inside the root of a dataset recorded in the database
(``datasets.root``; a manifest's folder for a CSV dataset). Anything else — a
moved file, a path outside every root, an unreadable image — gives a grey
placeholder, never an exception.

Geometry: relevance maps live in the model-input frame (FOV square crop,
resize, centre crop; :mod:`retcore.data.frame`). The photo is rendered in the
same frame, scaled to the display size, so the map, the zone outlines and the
optic-disc box line up with what the model saw. Maps are upsampled with
:func:`retcore.explain.display.upsample` and normalised for display only
(positive part, 99th-percentile clip, min-max).

Empty maps are labelled, never drawn as a silent blank: :func:`map_notes`
says why a map shows nothing (no positive relevance, constant, no finite
values) or why the stored full-resolution file was not used (missing, changed,
outside the run's heatmap folder), and :func:`render_case` stamps a short label
on such a tile.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image, ImageDraw

from dashboard import queries
from dashboard.heatmaps import (  # noqa: F401  (re-exported: pages use dashboard.images.*)
    FILE_PROBLEMS,
    MapNote,
    choose_map,
    load_heatmap,
    map_notes,
    read_heatmap,
    tile_label,
)

__all__ = [
    "COLORMAPS",
    "MapNote",
    "allowed_roots",
    "choose_map",
    "colorize",
    "display_map",
    "is_allowed",
    "load_heatmap",
    "map_notes",
    "overlay",
    "placeholder",
    "read_heatmap",
    "render_case",
    "tile_label",
]

DISPLAY = 320  # side of a rendered tile in pixels

# Colour maps as evenly spaced anchor colours (interpolated linearly in RGB).
COLORMAPS: dict[str, list[tuple[int, int, int]]] = {
    "inferno": [(0, 0, 4), (40, 11, 84), (101, 21, 110), (159, 42, 99), (212, 72, 66), (245, 125, 21),
                (250, 193, 39), (252, 255, 164)],
    "viridis": [(68, 1, 84), (70, 50, 127), (54, 92, 141), (39, 127, 142), (31, 161, 135), (74, 194, 109),
                (159, 218, 58), (253, 231, 37)],
    "magma": [(0, 0, 4), (28, 16, 68), (79, 18, 123), (129, 37, 129), (181, 54, 122), (229, 80, 100),
              (251, 135, 97), (252, 253, 191)],
    "jet": [(0, 0, 128), (0, 0, 255), (0, 128, 255), (0, 255, 255), (128, 255, 128), (255, 255, 0),
            (255, 128, 0), (255, 0, 0), (128, 0, 0)],
    "hot": [(0, 0, 0), (128, 0, 0), (255, 0, 0), (255, 128, 0), (255, 255, 0), (255, 255, 255)],
    "gray": [(0, 0, 0), (255, 255, 255)],
}


# ----------------------------------------------------------------------------- paths


def _root_dir(root: str) -> Path | None:
    """The folder a dataset root stands for: itself, or a manifest file's folder."""
    try:
        path = Path(root).expanduser().resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    return path.parent if path.suffix.lower() == ".csv" or path.is_file() else path


def allowed_roots() -> list[Path]:
    """Resolved dataset roots recorded in the database."""
    roots = queries.dataset_roots()
    out = []
    for root in roots["root"].dropna():
        folder = _root_dir(str(root))
        if folder is not None and folder not in out:
            out.append(folder)
    return out


def is_allowed(path: str | Path | None, roots: list[Path] | None = None) -> Path | None:
    """The resolved file when ``path`` is an existing file inside a recorded dataset root, else None."""
    if not path:
        return None
    try:
        resolved = Path(str(path)).expanduser().resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    for root in allowed_roots() if roots is None else roots:
        if resolved.is_relative_to(root):
            return resolved if resolved.is_file() else None
    return None


@st.cache_data(show_spinner=False, max_entries=256)
def _load(path: str, mtime: float) -> Image.Image | None:
    del mtime
    from retcore.data import load_rgb
    from retcore.errors import DataError

    try:
        return load_rgb(path)
    except (DataError, OSError, ValueError):
        return None


def load_photo(path: str | None) -> Image.Image | None:
    """The photo as RGB, or None when it is missing, outside the dataset roots or unreadable."""
    safe = is_allowed(path)
    if safe is None:
        return None
    try:
        mtime = safe.stat().st_mtime
    except OSError:
        return None
    return _load(str(safe), mtime)


def placeholder(text: str = "image not found", size: int = DISPLAY) -> np.ndarray:
    """A grey tile with ``text`` (used when a photo moved or cannot be read)."""
    img = Image.new("RGB", (size, size), (224, 224, 224))
    draw = ImageDraw.Draw(img)
    draw.rectangle([2, 2, size - 3, size - 3], outline=(170, 170, 170), width=2)
    bbox = draw.textbbox((0, 0), text)
    draw.text(((size - bbox[2]) / 2, (size - bbox[3]) / 2), text, fill=(90, 90, 90))
    return np.asarray(img)


# ----------------------------------------------------------------------------- maps


def colorize(values: np.ndarray, cmap: str = "inferno") -> np.ndarray:
    """Map values in [0, 1] to (..., 3) uint8 colours of ``cmap`` (see COLORMAPS)."""
    anchors = np.asarray(COLORMAPS.get(cmap, COLORMAPS["inferno"]), dtype=np.float64)
    v = np.clip(np.nan_to_num(np.asarray(values, dtype=np.float64)), 0.0, 1.0)
    pos = v * (len(anchors) - 1)
    lo = np.floor(pos).astype(int).clip(0, len(anchors) - 2)
    frac = (pos - lo)[..., None]
    return (anchors[lo] * (1 - frac) + anchors[lo + 1] * frac).round().astype(np.uint8)


@contextmanager
def _one_thread():
    """torch on one thread inside the block (restored after): the dashboard only resizes small maps, and
    on a busy 2-core machine torch's thread pool turns each 1 ms resize into 10-40 ms of waiting
    (a gallery of 24 tiles: 2.4 s instead of 0.2 s)."""
    import torch

    before = torch.get_num_threads()
    if before != 1:
        torch.set_num_threads(1)
    try:
        yield torch
    finally:
        if before != 1:
            torch.set_num_threads(before)


def display_map(grid: np.ndarray, size: int) -> np.ndarray:
    """A raw relevance map (gh, gw) upsampled to (size, size) and scaled to [0, 1] for display."""
    with _one_thread() as torch:
        return _display_map(torch, grid, size)


def _display_map(torch, grid: np.ndarray, size: int) -> np.ndarray:
    from retcore.explain.display import clip_percentile, normalize_minmax, upsample

    t = torch.as_tensor(np.asarray(grid, dtype=np.float32))
    if t.shape != (size, size):
        t = upsample(t, (size, size))
    t = torch.nan_to_num(t, nan=0.0, posinf=0.0, neginf=0.0).clamp(min=0)
    if float(t.max()) <= 0:
        return np.zeros((size, size), np.float32)
    clipped = clip_percentile(t, 99.0)
    if float(clipped.max()) <= 0:  # positive relevance on under 1% of the pixels: the clip would erase it
        clipped = t
    return normalize_minmax(clipped).numpy()


def overlay(photo: np.ndarray, heat: np.ndarray, cmap: str = "inferno", alpha: float = 0.5) -> np.ndarray:
    """Blend a [0, 1] map over an RGB photo; weight = ``alpha`` x map value (cold parts stay visible)."""
    colours = colorize(heat, cmap).astype(np.float32)
    weight = (alpha * np.clip(heat, 0, 1))[..., None].astype(np.float32)
    return (photo.astype(np.float32) * (1 - weight) + colours * weight).round().astype(np.uint8)


# ------------------------------------------------------------------------- geometry


@dataclass
class View:
    """A photo rendered in the model-input frame at ``size`` px, with landmarks in that frame."""

    rgb: np.ndarray
    fov: tuple[float, float, float] | None
    disc: tuple[float, float, float] | None


def input_view(photo: Image.Image, model_size: int, landmarks: dict | None, size: int = DISPLAY) -> View:
    """Render ``photo`` as the model saw it (``model_size`` input), scaled to ``size`` px."""
    from retcore.data.frame import InputFrame, input_frame, to_input_view

    frame = input_frame(photo, model_size)
    k = size / frame.size
    big = InputFrame(frame.box, max(int(round(frame.resized * k)), size), size)
    rgb = to_input_view(photo, big)
    fov = disc = None
    if landmarks:
        try:
            cx, cy = big.point_to_input(float(landmarks["fov_cx"]), float(landmarks["fov_cy"]))
            fov = (cx, cy, big.length_to_input(float(landmarks["fov_r"])))
            dx, dy = big.point_to_input(float(landmarks["disc_x"]), float(landmarks["disc_y"]))
            disc = (dx, dy, big.length_to_input(float(landmarks["disc_r"])))
        except (KeyError, TypeError, ValueError):
            fov = disc = None
    return View(np.ascontiguousarray(rgb[..., :3]), fov, disc)


def draw_outlines(rgb: np.ndarray, view: View, *, zones: bool = True, disc: bool = True) -> np.ndarray:
    """Draw the ``thirds`` zones (FOV circle, central disk, left/right divide) and the optic-disc box."""
    from retcore.zones import THIRDS_RADIUS

    img = Image.fromarray(rgb)
    draw = ImageDraw.Draw(img)
    width = max(1, rgb.shape[0] // 200)
    if zones and view.fov is not None:
        cx, cy, r = view.fov
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=(255, 255, 255), width=width)
        rc = THIRDS_RADIUS * r
        draw.ellipse([cx - rc, cy - rc, cx + rc, cy + rc], outline=(0, 255, 255), width=width)
        draw.line([cx, cy - r, cx, cy - rc], fill=(0, 255, 255), width=width)
        draw.line([cx, cy + rc, cx, cy + r], fill=(0, 255, 255), width=width)
    if disc and view.disc is not None:
        dx, dy, dr = view.disc
        half = 1.5 * dr  # the ``anatomy`` optic_disc zone: a box of side 3 disc radii
        draw.rectangle([dx - half, dy - half, dx + half, dy + half], outline=(0, 255, 0), width=width)
    return np.asarray(img)


def _stamp(rgb: np.ndarray, text: str | None) -> np.ndarray:
    """Write ``text`` on a dark band along the bottom of a tile (nothing when ``text`` is empty)."""
    if not text:
        return rgb
    img = Image.fromarray(np.ascontiguousarray(rgb))
    draw = ImageDraw.Draw(img)
    bbox = draw.textbbox((0, 0), text)
    h, w = rgb.shape[:2]
    band = bbox[3] - bbox[1] + 8
    draw.rectangle([0, h - band, w, h], fill=(30, 30, 30))
    draw.text((max((w - (bbox[2] - bbox[0])) / 2, 4), h - band + 3), text, fill=(255, 255, 255))
    return np.asarray(img)


def render_case(path: str | None, landmarks: dict | None, grid: np.ndarray | None, model_size: int, *,
                cmap: str = "inferno", alpha: float = 0.5, zones: bool = True, disc: bool = True,
                size: int = DISPLAY, label: str | None = None) -> np.ndarray:
    """One tile: the photo in the input frame, the map over it, zone outlines and the disc box.

    A missing photo gives a placeholder (with the map alone when there is one).
    ``label`` (see :func:`tile_label`) is written along the bottom, so an empty
    map is never a silent blank.
    """
    photo = load_photo(path)
    if photo is None:
        if grid is None:
            return placeholder(size=size)
        tile = colorize(display_map(grid, size), cmap)
        draw = ImageDraw.Draw(img := Image.fromarray(tile))
        draw.text((6, 6), "image not found", fill=(255, 255, 255))
        return _stamp(np.asarray(img), label)
    view = input_view(photo, model_size, landmarks, size)
    rgb = view.rgb
    if grid is not None:
        rgb = overlay(rgb, display_map(grid, size), cmap, alpha)
    return _stamp(draw_outlines(rgb, view, zones=zones, disc=disc), label)


#: Why a stored full-resolution map file was not used (``read_heatmap``'s second value).
def synthetic_fundus(size: int = DISPLAY) -> View:
    """A plain drawn fundus (orange disk, pale optic disc on the right) when no photo is readable."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    c, r = size / 2, size * 0.47
    d = np.hypot(xx - c, yy - c) / r
    base = np.stack([200 - 60 * d, 90 - 40 * d, 40 - 20 * d], axis=-1)
    disc = (size * 0.78, size * 0.5, size * 0.06)
    glow = np.exp(-((xx - disc[0]) ** 2 + (yy - disc[1]) ** 2) / (2 * disc[2] ** 2))[..., None]
    rgb = base * (1 - glow) + np.array([250, 230, 170]) * glow
    rgb = np.where((d <= 1)[..., None], rgb, 0).clip(0, 255).astype(np.uint8)
    return View(rgb, (c, c, r), disc)


def reference_view(candidates, model_size: int, size: int = DISPLAY) -> tuple[View, str]:
    """The first readable photo among ``candidates`` (rows with path and landmark columns), in the
    input frame; else the drawn fundus. Returns (view, description)."""
    for row in candidates.itertuples(index=False):
        photo = load_photo(row.path)
        if photo is not None:
            lm = None if pd_isna(row.fov_r) else row._asdict()
            return input_view(photo, model_size, lm, size), f"image {row.image_id}"
    return synthetic_fundus(size), "a drawn fundus (no photo readable)"


def pd_isna(value) -> bool:
    """True for None / NaN."""
    try:
        return value is None or bool(np.isnan(value))
    except TypeError:
        return False


def render_on(view: View, grid: np.ndarray | None, *, cmap: str = "inferno", alpha: float = 0.6,
              zones: bool = True, disc: bool = True, vmax: float | None = None) -> np.ndarray:
    """Draw ``grid`` over a prepared view. ``vmax`` scales every map alike (shared colour scale)."""
    size = view.rgb.shape[0]
    rgb = view.rgb
    if grid is not None:
        if vmax is None:
            heat = display_map(grid, size)
        else:
            from retcore.explain.display import upsample

            with _one_thread() as torch:
                up = upsample(torch.as_tensor(np.asarray(grid, np.float32)), (size, size)).numpy()
            heat = np.clip(up / vmax, 0, 1) if vmax > 0 else np.zeros_like(up)
        rgb = overlay(rgb, heat, cmap, alpha)
    return draw_outlines(rgb, view, zones=zones, disc=disc)
