"""Stored full-resolution heatmap files and the notes that say why a map shows nothing.

:func:`read_heatmap` opens a ``.npy`` map written by ``retcore explain`` only from the
run's own heatmap folder and only when its SHA-256 matches the database; otherwise it
says why (:data:`FILE_PROBLEMS`). :func:`choose_map` picks the file or the stored token
grid, and :func:`map_notes` / :func:`tile_label` label empty, constant or non-finite maps
so that the dashboard never draws a silent blank.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["FILE_PROBLEMS", "MapNote", "choose_map", "load_heatmap", "map_notes", "read_heatmap", "tile_label"]


FILE_PROBLEMS = {
    "no path": "no full-resolution map file is recorded",
    "no folder": "the run has no recorded output folder, so its map files cannot be located",
    "not npy": "the recorded map file is not a .npy file; it is not read",
    "outside": "the map file lies outside this run's heatmap folder; it is not read",
    "missing": "the full-resolution map file is missing (moved or deleted)",
    "too large": "the map file is larger than 64 MiB; it is not read",
    "checksum": "the map file fails its SHA-256 check (changed since `retcore explain` wrote it)",
    "unreadable": "the map file is not a readable 2-D array",
    "underflow": "the map file holds no positive value although the stored map has some (a float16 file of an "
                 "older version underflowed)",
}


def read_heatmap(path: str | None, sha256: str | None, run_out_dir: str | None
                 ) -> tuple[np.ndarray | None, str | None]:
    """A full-resolution map file written by ``retcore explain``, or why it was not used.

    ``path`` is absolute (older databases) or relative to the results folder
    (``Path(run_out_dir).parents[1]``, which holds ``runs/`` and ``heatmaps/``).
    The file is read only when it resolves (links followed) to a ``.npy`` inside
    ``<results>/heatmaps/``, is at most 64 MiB and matches the recorded SHA-256;
    it is never unpickled.

    Returns:
        (map as float32 (h, w), None), or (None, a key of :data:`FILE_PROBLEMS`).
    """
    import hashlib
    import io

    if not path:
        return None, "no path"
    if not run_out_dir:
        return None, "no folder"
    if not str(path).endswith(".npy"):
        return None, "not npy"
    try:
        results = Path(run_out_dir).expanduser().resolve().parents[1]
        root = (results / "heatmaps").resolve()
        given = Path(str(path)).expanduser()
        file = (given if given.is_absolute() else results / given).resolve()
    except (OSError, RuntimeError, ValueError, IndexError):
        return None, "outside"
    if not file.is_relative_to(root):
        return None, "outside"
    try:
        if not file.is_file():
            return None, "missing"
        if file.stat().st_size > 64 * 2**20:
            return None, "too large"
        data = file.read_bytes()
    except OSError:
        return None, "missing"
    if sha256 and hashlib.sha256(data).hexdigest() != sha256:
        return None, "checksum"
    try:
        heat = np.load(io.BytesIO(data), allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None, "unreadable"
    if not isinstance(heat, np.ndarray) or heat.ndim != 2 or not np.issubdtype(heat.dtype, np.number):
        return None, "unreadable"
    return np.asarray(heat, dtype=np.float32), None


def load_heatmap(path: str | None, sha256: str | None, run_out_dir: str | None) -> np.ndarray | None:
    """The full-resolution map of :func:`read_heatmap`, or None when it cannot be used."""
    return read_heatmap(path, sha256, run_out_dir)[0]


def choose_map(full: np.ndarray | None, problem: str | None, token_grid: np.ndarray,
               positive_sum: float | None = None) -> tuple[np.ndarray, str | None]:
    """The map to show: the full-resolution file when usable, else the token grid from the database.

    A file without any positive value is not used when the database says the
    map has positive relevance (``positive_sum`` > 0 or a positive grid value):
    float16 files of older versions underflow to zeros.

    Returns:
        (map, problem): ``problem`` is a key of :data:`FILE_PROBLEMS` when the
        token grid is shown instead of the file, else None.
    """
    if full is None:
        return token_grid, problem
    with np.errstate(invalid="ignore"):
        file_positive = bool(np.nanmax(full, initial=0.0) > 0) if full.size else False
        stored_positive = (positive_sum is not None and np.isfinite(positive_sum) and positive_sum > 0) or \
            bool(np.nanmax(token_grid, initial=0.0) > 0)
    if not file_positive and stored_positive:
        return token_grid, "underflow"
    return full, None


@dataclass(frozen=True)
class MapNote:
    """Why a map tile needs words: ``kind`` is 'file', 'nonfinite', 'empty' or 'constant'."""

    kind: str
    text: str


_TILE_LABELS = {"nonfinite": "no finite values", "empty": "no positive relevance", "constant": "constant map"}


def map_notes(method: str, target_label: str | None, grid: np.ndarray | None, *,
              positive_sum: float | None = None, file_problem: str | None = None) -> list[MapNote]:
    """What to tell the viewer about one relevance map (empty list: nothing to say).

    Parameters:
        method: the explanation method.
        target_label: the explained class.
        grid: the map shown (full resolution or token grid); None when there is none.
        positive_sum: ``explanations.positive_sum`` (sum of the positive part of the full map).
        file_problem: a key of :data:`FILE_PROBLEMS` when the full-resolution file was not used.

    Returns:
        Notes in display order: the file fallback, then at most one of: no
        finite values, no positive relevance (positive mass <= 0 or grid max
        <= 0), constant map (no spatial variation).
    """
    notes = []
    cls = target_label if isinstance(target_label, str) and target_label else "the explained class"
    if file_problem is not None:
        reason = FILE_PROBLEMS.get(file_problem, file_problem)
        notes.append(MapNote("file", f"{reason}; showing the token grid from the database"))
    if grid is None:
        return notes
    values = np.asarray(grid, dtype=np.float64)
    finite = values[np.isfinite(values)]
    no_mass = positive_sum is not None and np.isfinite(positive_sum) and positive_sum <= 0
    if finite.size == 0:
        notes.append(MapNote("nonfinite", f"no finite values: {method} failed on this image (NaN or infinite "
                                          "relevance)"))
    elif no_mass or finite.max() <= 0:
        notes.append(MapNote("empty", f"no positive relevance for {cls}: {method} found no evidence for this "
                                      "class in this image"))
    elif finite.max() - finite.min() <= 1e-6 * float(np.abs(finite).max()):  # relative: lrp values are ~1e-13
        notes.append(MapNote("constant", f"constant map: {method} gives no spatial information here"))
    return notes


def tile_label(notes: list[MapNote]) -> str | None:
    """The short label to write on a tile whose map shows nothing (None when the map shows something)."""
    return next((_TILE_LABELS[n.kind] for n in notes if n.kind in _TILE_LABELS), None)
