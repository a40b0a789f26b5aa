"""Turning a ``--data`` source into registered, ingested records (used by finetune)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from retcore.data import (
    DEFAULT_PATIENT_REGEX,
    ImageRecord,
    assign_splits,
    discover,
    exclude_conflicting,
    ingest,
)
from retcore.storage.writes import image_id_for, register_dataset, write_ingest_errors

__all__ = ["PreparedData", "prepare_dataset"]


@dataclass
class PreparedData:
    """Ingested records ready for training, with their database ids."""

    dataset_id: str
    root: str
    classes: list[str]
    records: list[ImageRecord]
    image_ids: list[str]
    n_errors: int
    n_duplicates: int
    n_conflicting: int


def _dataset_id(root: str, *, val: float, test: float, split_seed: int, regex: str) -> str:
    key = f"{root}|{val}|{test}|{split_seed}|{regex}"
    return f"{Path(root).stem or 'data'}-{hashlib.sha1(key.encode()).hexdigest()[:8]}"


def _gt(record: ImageRecord, name: str) -> float | None:
    value = record.extra.get(name)
    try:
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None


def prepare_dataset(
    db, source: Path, *, run_id: str, val: float = 0.15, test: float = 0.15, split_seed: int = 0,
    patient_regex: str = DEFAULT_PATIENT_REGEX, strict: bool = False, include_conflicting: bool = False,
) -> PreparedData:
    """Discover, split, ingest and register ``source``; record skipped files.

    Returns only the records usable for training: readable, deduplicated and,
    unless ``include_conflicting``, without duplicates whose labels disagree.
    """
    spec = discover(source, patient_regex=patient_regex)
    records = assign_splits(spec.records, val=val, test=test, seed=split_seed)
    result = ingest(records, strict=strict, progress=True)
    dataset_id = _dataset_id(spec.root, val=val, test=test, split_seed=split_seed, regex=patient_regex)
    duplicate_of: dict[str, str] = {}
    conflicting: set[str] = set()
    for group in result.duplicates:
        first, *rest = group.paths
        for path in rest:
            duplicate_of[path] = image_id_for(dataset_id, first, spec.root)
        if group.conflicting:
            conflicting.update(group.paths)
    ids = [image_id_for(dataset_id, r.path, spec.root) for r in result.records]
    frame = pd.DataFrame({
        "image_id": ids,
        "path": [r.path for r in result.records],
        "sha256": [r.sha256 for r in result.records],
        "label": [r.label for r in result.records],
        "split": [r.split for r in result.records],
        "patient_id": [r.patient_id for r in result.records],
        "eye": [r.eye for r in result.records],
        "width": [r.width for r in result.records],
        "height": [r.height for r in result.records],
        "mask_path": [r.mask_path for r in result.records],
        "duplicate_of": [duplicate_of.get(r.path) for r in result.records],
        "conflicting_label": [r.path in conflicting for r in result.records],
        "gt_disc_x": [_gt(r, "disc_x") for r in result.records],
        "gt_disc_y": [_gt(r, "disc_y") for r in result.records],
        "gt_disc_r": [_gt(r, "disc_r") for r in result.records],
        "extra": [r.extra for r in result.records],
    })
    register_dataset(db, dataset_id=dataset_id, root=spec.root, kind=spec.kind, classes=spec.classes,
                     images=frame)
    write_ingest_errors(db, [(e.path, e.reason) for e in result.errors], run_id=run_id, dataset_id=dataset_id)
    for error in result.errors:
        tqdm.write(f"skipped {error.path}: {error.reason}")
    usable = result.records if include_conflicting else exclude_conflicting(result.records, result.duplicates)
    keep = {r.path for r in usable}
    pairs = [(r, i) for r, i in zip(result.records, ids) if r.path in keep]
    return PreparedData(
        dataset_id=dataset_id, root=spec.root, classes=list(spec.classes),
        records=[replace(r) for r, _ in pairs], image_ids=[i for _, i in pairs],
        n_errors=len(result.errors), n_duplicates=sum(len(g.paths) - 1 for g in result.duplicates),
        n_conflicting=len(conflicting),
    )
