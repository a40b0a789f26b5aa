"""Dataset discovery, checking, splitting, transforms and the PyTorch dataset.

Typical pipeline::

    spec = discover("data/eye_diseases", classes=[...])      # list files
    result = ingest(spec.records, progress=True)              # decode, hash, check
    records = exclude_conflicting(result.records, result.duplicates)
    records = assign_splits(records, val=0.15, test=0.15, seed=0)  # by patient
    train = FundusDataset([r for r in records if r.split == "train"],
                          spec.classes, build_train_transform(224))

Deduplicate before splitting so that a copied image cannot sit in two splits.
"""
from __future__ import annotations

from retcore.data.dataset import FundusDataset, collate_skipping
from retcore.data.ingest import (
    DEFAULT_MAX_PIXELS,
    ERROR_KINDS,
    DuplicateGroup,
    IngestError,
    IngestResult,
    exclude_conflicting,
    ingest,
    load_rgb,
)
from retcore.data.names import DEFAULT_PATIENT_REGEX, parse_eye, parse_patient_id
from retcore.data.records import EYES, SPLITS, DatasetSpec, ImageRecord
from retcore.data.sources import IMAGE_EXTENSIONS, discover
from retcore.data.split import assign_splits, group_key
from retcore.data.transforms import (
    FovCrop,
    build_eval_transform,
    build_train_transform,
    fov_bbox,
    fov_crop,
    fov_square_box,
    normalize_on_device,
)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_PATIENT_REGEX",
    "ERROR_KINDS",
    "EYES",
    "IMAGE_EXTENSIONS",
    "SPLITS",
    "DatasetSpec",
    "DuplicateGroup",
    "FovCrop",
    "FundusDataset",
    "collate_skipping",
    "ImageRecord",
    "IngestError",
    "IngestResult",
    "assign_splits",
    "build_eval_transform",
    "build_train_transform",
    "discover",
    "exclude_conflicting",
    "fov_bbox",
    "fov_crop",
    "fov_square_box",
    "group_key",
    "ingest",
    "load_rgb",
    "normalize_on_device",
    "parse_eye",
    "parse_patient_id",
]
