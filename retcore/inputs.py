"""Model inputs with their geometry, prepared once per image in DataLoader workers.

Explaining an image needs more than its tensor: the landmarks and quality
metrics of the photo (computed once per image), and its geometry in the
model-input frame (zones, FOV, ground-truth masks). :class:`ExplainInputs`
does all of it in one pass per image, so a GPU never waits for JPEG decoding:
the file is decoded once, the field-of-view box is found once (the same box the
eval transform would find), and the tensor is the eval transform of that crop —
identical to ``build_eval_transform(size)(photo)``.

Items are :class:`PreparedImage`; :func:`collate_prepared` stacks the tensors of
the readable images and keeps the rest as lists (use it as ``collate_fn``).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from retcore.anatomy import Landmarks, detect_landmarks
from retcore.data.frame import input_frame
from retcore.data.ingest import load_rgb
from retcore.data.transforms import build_eval_transform
from retcore.errors import DataError
from retcore.focus import DEFAULT_ZONE_SETS, InputGeometry, input_geometry
from retcore.quality import quality_grade, quality_metrics

__all__ = ["ExplainInputs", "PreparedBatch", "PreparedImage", "collate_prepared"]

LANDMARK_FIELDS: tuple[str, ...] = ("fov_cx", "fov_cy", "fov_r", "disc_x", "disc_y", "disc_r", "fovea_x",
                                    "fovea_y", "eye_estimate")


@dataclass
class PreparedImage:
    """One image ready to explain, or the reason it is not.

    index: position in the dataset's rows; image_id, path: as given.
    tensor: (3, S, S) float32 eval-transformed input (None when unreadable).
    geometry: the image in the input frame (None when unreadable).
    landmarks: the landmarks used (given, or detected now).
    analysis: ``(landmark row dict, quality metrics dict)`` when they were
        computed in this pass (the caller stores them), else None.
    error: one-line reason the image could not be read, else None.
    """

    index: int
    image_id: str
    path: str
    tensor: torch.Tensor | None = None
    geometry: InputGeometry | None = None
    landmarks: Landmarks | None = None
    analysis: tuple[dict, dict] | None = None
    error: str | None = None


@dataclass
class PreparedBatch:
    """A collated batch: ``images`` (b, 3, S, S) of the readable items ``ok``, and ``failed`` items."""

    images: torch.Tensor | None
    ok: list[PreparedImage]
    failed: list[PreparedImage]


class ExplainInputs(Dataset[PreparedImage]):
    """Images of ``rows`` (``image_id``, ``path``, optional ``mask_path`` and ``eye``) prepared for explaining.

    Args:
        rows: one dict per image.
        img_size: model input side S (pixels).
        landmarks: known landmarks by image id; missing ones are detected (with the
            quality metrics) and returned in ``PreparedImage.analysis``.
        zone_sets: zone sets drawn into each geometry.
    """

    def __init__(self, rows: Sequence[Mapping[str, object]], img_size: int,
                 landmarks: Mapping[str, Landmarks] | None = None,
                 zone_sets: Sequence[str] = DEFAULT_ZONE_SETS) -> None:
        self.rows = [dict(r) for r in rows]
        self.img_size = int(img_size)
        self.landmarks = dict(landmarks or {})
        self.zone_sets = tuple(zone_sets)
        self.transform = build_eval_transform(self.img_size, fov=False)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> PreparedImage:
        row = self.rows[index]
        item = PreparedImage(index=index, image_id=str(row["image_id"]), path=str(row["path"]))
        try:
            photo = load_rgb(item.path)
            mask_path = row.get("mask_path")
            mask = Image.open(mask_path) if isinstance(mask_path, str) and Path(mask_path).is_file() else None
        except (DataError, OSError) as exc:
            item.error = str(exc).splitlines()[0]
            return item
        lm = self.landmarks.get(item.image_id)
        if lm is None:
            rgb = np.asarray(photo)
            lm = detect_landmarks(rgb)
            metrics = quality_metrics(rgb)
            item.analysis = ({"image_id": item.image_id, **lm.to_dict(), "quality_grade": quality_grade(metrics)},
                             {k: float(v) for k, v in metrics.items()})
        frame = input_frame(photo, self.img_size)
        eye = row.get("eye")
        item.landmarks = lm
        item.tensor = self.transform(photo.crop(frame.box)).float()
        item.geometry = input_geometry(photo, lm, self.img_size, eye=eye if isinstance(eye, str) else None,
                                       mask=mask, zone_sets=self.zone_sets, frame=frame)
        return item


def collate_prepared(items: list[PreparedImage]) -> PreparedBatch:
    """``collate_fn`` for :class:`ExplainInputs`: stack readable tensors, keep failures apart."""
    ok = [it for it in items if it.error is None]
    failed = [it for it in items if it.error is not None]
    images = torch.stack([it.tensor for it in ok]) if ok else None  # type: ignore[misc]
    return PreparedBatch(images=images, ok=ok, failed=failed)


def landmarks_from_row(row: Mapping[str, object]) -> Landmarks:
    """A :class:`Landmarks` from a ``landmarks`` table row (a mapping with its columns)."""
    return Landmarks(**{k: row[k] for k in LANDMARK_FIELDS})  # type: ignore[arg-type]
