"""Plain value types describing a fundus-image dataset.

`ImageRecord` is one image with its label and metadata; `DatasetSpec` is the
result of discovering a dataset source (see `retcore.data.sources.discover`).
Both are plain dataclasses: no I/O happens here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["EYES", "SOURCE_KINDS", "SPLITS", "DatasetSpec", "ImageRecord", "SourceKind"]

SPLITS: tuple[str, ...] = ("train", "val", "test")
"""Allowed values of `ImageRecord.split` (besides None = not assigned yet)."""

EYES: tuple[str, ...] = ("left", "right")
"""Allowed values of `ImageRecord.eye` (besides None = unknown)."""

SourceKind = Literal["class_folders", "split_folders", "manifest"]
SOURCE_KINDS: tuple[str, ...] = ("class_folders", "split_folders", "manifest")


@dataclass(frozen=True)
class ImageRecord:
    """One image of a dataset.

    Attributes:
        path: absolute path of the image file.
        label: class name (a folder name or the manifest's `label` value).
        split: 'train' | 'val' | 'test', or None when not assigned yet.
        patient_id: grouping key for patient-level splits; images of the same
            patient (e.g. both eyes) share it. None = unknown (the image is its
            own group).
        eye: 'left' | 'right' | None.
        mask_path: absolute path of an optional mask PNG aligned with the image.
        extra: further manifest columns (e.g. ground-truth disc position in
            pixels); numbers are parsed as int/float, empty cells are None.
        sha256: hex digest of the file bytes (filled by `ingest`).
        width: decoded image width in pixels (filled by `ingest`).
        height: decoded image height in pixels (filled by `ingest`).
    """

    path: str
    label: str
    split: str | None = None
    patient_id: str | None = None
    eye: str | None = None
    mask_path: str | None = None
    extra: dict[str, object] = field(default_factory=dict)
    sha256: str | None = None
    width: int | None = None
    height: int | None = None

    def __post_init__(self) -> None:
        if self.split is not None and self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS} or None, got {self.split!r}")
        if self.eye is not None and self.eye not in EYES:
            raise ValueError(f"eye must be one of {EYES} or None, got {self.eye!r}")


@dataclass(frozen=True)
class DatasetSpec:
    """A discovered dataset.

    Attributes:
        root: absolute path of the source (a folder, or the CSV file for a manifest).
        kind: 'class_folders' | 'split_folders' | 'manifest'.
        classes: sorted class names; label index i means `classes[i]`.
        records: the images, in a deterministic order.
    """

    root: str
    kind: SourceKind
    classes: list[str]
    records: list[ImageRecord]

    def __len__(self) -> int:
        return len(self.records)
