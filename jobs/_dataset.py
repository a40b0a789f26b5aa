"""Turning a ``--data`` source into registered, ingested records (used by finetune)."""
from __future__ import annotations

import hashlib
import json
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
from retcore.data.roots import resolve_stored, root_folder, to_stored
from retcore.storage.writes import image_id_for, register_dataset, write_ingest_errors

__all__ = ["PreparedData", "dataset_id_for", "prepare_dataset", "registered_dataset"]


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
    reused: bool = False


def dataset_id_for(root: str, *, val: float, test: float, split_seed: int, regex: str) -> str:
    """The id a source gets for these split settings (the same source and settings -> the same id)."""
    key = f"{root}|{val}|{test}|{split_seed}|{regex}"
    return f"{Path(root).stem or 'data'}-{hashlib.sha1(key.encode()).hexdigest()[:8]}"


def _gt(record: ImageRecord, name: str) -> float | None:
    value = record.extra.get(name)
    try:
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None


def _registered(db, dataset_id: str, spec, records: list[ImageRecord], *,
                include_conflicting: bool) -> PreparedData | None:
    """The dataset as an earlier ingest registered it, when the folder still lists the same files.

    Every discovered file must be registered or recorded as a skipped file, and
    every registered image must still be discovered; otherwise None (ingest again).
    Records keep the discovery order, so training sees the same order either way.
    """
    from retcore.results.lookups import ingest_error_paths, registered_images
    from retcore.storage import connect

    base = root_folder(spec.root)
    with connect(db, read_only=True) as con:
        rows = registered_images(con, dataset_id)
        if rows is None:
            return None
        bad = ingest_error_paths(con, dataset_id)
    rows["resolved"] = [resolve_stored(p, base) for p in rows["path"]]
    by_path = {p: row for p, row in zip(rows["resolved"], rows.itertuples(index=False))}
    bad = {resolve_stored(p, base) for p in bad}
    found = [r.path for r in records]
    if any(p not in by_path and p not in bad for p in found) or set(by_path) - set(found):
        return None
    kept, ids = [], []
    for rec in records:
        row = by_path.get(rec.path)
        if row is None:
            continue
        if not include_conflicting and (row.duplicate_of is not None or bool(row.conflicting_label)):
            continue
        extra = json.loads(row.extra) if isinstance(row.extra, str) else (row.extra or {})
        kept.append(ImageRecord(path=rec.path, label=row.label, split=row.split, patient_id=row.patient_id,
                                eye=row.eye, mask_path=resolve_stored(row.mask_path, base), extra=extra,
                                sha256=row.sha256, width=int(row.width), height=int(row.height)))
        ids.append(row.image_id)
    return PreparedData(
        dataset_id=dataset_id, root=spec.root, classes=list(spec.classes), records=kept, image_ids=ids,
        n_errors=len(bad), n_duplicates=int(rows["duplicate_of"].notna().sum()),
        n_conflicting=int(rows["conflicting_label"].fillna(False).astype(bool).sum()), reused=True,
    )


def _discovered(source: Path, *, val: float, test: float, split_seed: int, patient_regex: str):
    """``(spec, records with splits, dataset id)`` of ``source`` for these split settings (lists files only)."""
    spec = discover(source, patient_regex=patient_regex)
    records = assign_splits(spec.records, val=val, test=test, seed=split_seed)
    return spec, records, dataset_id_for(spec.root, val=val, test=test, split_seed=split_seed, regex=patient_regex)


def registered_dataset(
    db, source: Path, *, val: float = 0.15, test: float = 0.15, split_seed: int = 0,
    patient_regex: str = DEFAULT_PATIENT_REGEX, include_conflicting: bool = False,
) -> PreparedData | None:
    """``source`` as registered by an earlier ingest with these settings, or None (nothing is written).

    Lists the files only (no decoding): None when any file is new or any registered one is gone.
    """
    spec, records, dataset_id = _discovered(source, val=val, test=test, split_seed=split_seed,
                                            patient_regex=patient_regex)
    return _registered(db, dataset_id, spec, records, include_conflicting=include_conflicting)


def prepare_dataset(
    db, source: Path, *, run_id: str, val: float = 0.15, test: float = 0.15, split_seed: int = 0,
    patient_regex: str = DEFAULT_PATIENT_REGEX, strict: bool = False, include_conflicting: bool = False,
    reuse: bool = False,
) -> PreparedData:
    """Discover, split, ingest and register ``source``; record skipped files.

    Returns only the records usable for training: readable, deduplicated and,
    unless ``include_conflicting``, without duplicates whose labels disagree.
    Paths are stored relative to the dataset's root folder (absolute when a
    manifest points outside it). ``reuse`` skips decoding when the same files
    were registered before under the same settings (the pipeline's ingest stage
    has just checked them); ``PreparedData.reused`` says so.
    """
    spec, records, dataset_id = _discovered(source, val=val, test=test, split_seed=split_seed,
                                            patient_regex=patient_regex)
    if reuse:
        found = _registered(db, dataset_id, spec, records, include_conflicting=include_conflicting)
        if found is not None:
            return found
    result = ingest(records, strict=strict, progress=True)
    base = root_folder(spec.root)
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
        "path": [to_stored(r.path, base) for r in result.records],
        "sha256": [r.sha256 for r in result.records],
        "label": [r.label for r in result.records],
        "split": [r.split for r in result.records],
        "patient_id": [r.patient_id for r in result.records],
        "eye": [r.eye for r in result.records],
        "width": [r.width for r in result.records],
        "height": [r.height for r in result.records],
        "mask_path": [to_stored(r.mask_path, base) for r in result.records],
        "duplicate_of": [duplicate_of.get(r.path) for r in result.records],
        "conflicting_label": [r.path in conflicting for r in result.records],
        "gt_disc_x": [_gt(r, "disc_x") for r in result.records],
        "gt_disc_y": [_gt(r, "disc_y") for r in result.records],
        "gt_disc_r": [_gt(r, "disc_r") for r in result.records],
        "extra": [r.extra for r in result.records],
    })
    register_dataset(db, dataset_id=dataset_id, root=spec.root, kind=spec.kind, classes=spec.classes,
                     images=frame)
    write_ingest_errors(db, [(to_stored(e.path, base), e.reason) for e in result.errors], run_id=run_id,
                        dataset_id=dataset_id)
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
