"""Discover a dataset: class folders, split folders or a CSV manifest.

Layouts (image extensions jpg, jpeg, png, tif, tiff, bmp, any case):

* class folders: ``ROOT/<class>/*.jpg`` (Kaggle "Eye Diseases Classification":
  cataract, diabetic_retinopathy, glaucoma, normal), no split;
* split folders: ``ROOT/{train,val,test}/<class>/*.jpg`` (RETFound layout;
  ``valid``/``validation`` mean ``val``);
* manifest: a CSV with columns ``path,label[,split][,patient_id][,eye][,mask_path]``
  and any further columns, kept in `ImageRecord.extra`.

Discovery only lists files; decoding and checking images is `ingest`'s job.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from retcore.data.names import DEFAULT_PATIENT_REGEX, parse_eye, parse_patient_id
from retcore.data.records import DatasetSpec, ImageRecord, SourceKind
from retcore.errors import DataError

__all__ = ["IMAGE_EXTENSIONS", "MANIFEST_COLUMNS", "discover", "normalize_eye", "normalize_split"]

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp"})
"""Lower-case suffixes of files taken as images."""

MANIFEST_COLUMNS: tuple[str, ...] = ("path", "label", "split", "patient_id", "eye", "mask_path")
"""Manifest columns with a meaning; every other column goes to `ImageRecord.extra`."""

_SPLIT_ALIASES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
_EYE_ALIASES = {"left": "left", "l": "left", "os": "left", "right": "right", "r": "right", "od": "right"}


def normalize_split(value: str) -> str | None:
    """'train'/'val'/'test' for a split name (case-insensitive; 'valid'/'validation' -> 'val').

    Returns None for an empty value and for an unknown name.
    """
    return _SPLIT_ALIASES.get(value.strip().lower()) if value.strip() else None


def normalize_eye(value: str) -> str | None:
    """'left'/'right' for left/right/l/r/OS/OD (case-insensitive); None if empty or unknown."""
    return _EYE_ALIASES.get(value.strip().lower())


def discover(
    source: str | os.PathLike[str],
    *,
    patient_regex: str | re.Pattern[str] = DEFAULT_PATIENT_REGEX,
    classes: Sequence[str] | None = None,
) -> DatasetSpec:
    """List the images of a dataset source.

    Args:
        source: a class-folder root, a split-folder root, or a ``.csv`` manifest.
        patient_regex: pattern with a named group ``patient`` applied to file
            stems when no patient id is given (see `parse_patient_id`); a stem
            that does not match becomes its own patient id.
        classes: the expected class names. Class folders / labels outside this
            set are an error; an expected class without any image is an error.
            `DatasetSpec.classes` is then ``sorted(classes)``.

    Returns:
        DatasetSpec whose records have absolute paths; folder sources are
        ordered by (split, class, file name), manifests keep the row order.

    Raises:
        DataError: missing source, unknown layout, unknown or empty class folder,
            bad manifest row (named by its CSV line number).
    """
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"dataset source {str(path)!r} does not exist; pass a dataset folder or a CSV manifest")
    path = Path(os.path.abspath(path))
    expected = _expected_classes(classes)
    kind: SourceKind
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise DataError(f"dataset source {str(path)!r} is a file but not a .csv manifest; pass a folder or a CSV")
        kind, records = "manifest", _read_manifest(path, patient_regex, expected)
    else:
        subdirs = _subdirs(path)
        split_dirs = [d for d in subdirs if d.name.lower() in _SPLIT_ALIASES]
        if split_dirs:
            kind, records = "split_folders", _read_split_folders(path, subdirs, patient_regex, expected)
        else:
            kind, records = "class_folders", _read_class_folders(path, None, patient_regex, expected)
    found = sorted({r.label for r in records})
    if expected is not None:
        missing = sorted(set(expected) - set(found))
        if missing:
            raise DataError(
                f"expected classes {missing} have no images in {str(path)!r}; add them or drop them from classes"
            )
    return DatasetSpec(root=str(path), kind=kind, classes=expected or found, records=records)


def _expected_classes(classes: Sequence[str] | None) -> list[str] | None:
    if classes is None:
        return None
    if isinstance(classes, str):
        raise TypeError("classes must be a sequence of class names, not a single string")
    names = [str(c) for c in classes]
    if not names or len(set(names)) != len(names) or any(not n.strip() for n in names):
        raise DataError(f"classes {names!r} must be non-empty, unique, non-blank names")
    return sorted(names)


def _visible(p: Path) -> bool:
    return not p.name.startswith((".", "__"))


def _subdirs(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir() and _visible(p)), key=lambda p: p.name)


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        (p for p in folder.iterdir() if _visible(p) and p.suffix.lower() in IMAGE_EXTENSIONS and not p.is_dir()),
        key=lambda p: p.name,
    )


def _record(path: Path, label: str, split: str | None, patient_regex: str | re.Pattern[str]) -> ImageRecord:
    return ImageRecord(
        path=str(path),
        label=label,
        split=split,
        patient_id=parse_patient_id(path.name, patient_regex),
        eye=parse_eye(path.name),
    )


def _read_class_folders(
    root: Path, split: str | None, patient_regex: str | re.Pattern[str], expected: list[str] | None
) -> list[ImageRecord]:
    class_dirs = _subdirs(root)
    if not class_dirs:
        raise DataError(
            f"no class folders in {str(root)!r}; expected {str(root)}/<class>/*.jpg, "
            "<root>/{train,val,test}/<class>/ or a CSV manifest"
        )
    records: list[ImageRecord] = []
    for class_dir in class_dirs:
        if expected is not None and class_dir.name not in expected:
            raise DataError(
                f"unknown class folder {str(class_dir)!r} (expected one of {expected}); "
                "rename or remove it, or add it to classes"
            )
        files = _image_files(class_dir)
        if not files:
            raise DataError(
                f"class folder {str(class_dir)!r} has no images "
                f"({', '.join(sorted(IMAGE_EXTENSIONS))}); add images or remove the folder"
            )
        records.extend(_record(f, class_dir.name, split, patient_regex) for f in files)
    return records


def _read_split_folders(
    root: Path, subdirs: Iterable[Path], patient_regex: str | re.Pattern[str], expected: list[str] | None
) -> list[ImageRecord]:
    seen: dict[str, Path] = {}
    records: list[ImageRecord] = []
    for split_dir in subdirs:
        split = normalize_split(split_dir.name)
        if split is None:
            raise DataError(
                f"folder {str(split_dir)!r} is not a split next to the split folders of {str(root)!r}; "
                "use train/val/test only, or move it out"
            )
        if split in seen:
            raise DataError(
                f"split folders {str(seen[split])!r} and {str(split_dir)!r} both mean {split!r}; merge them"
            )
        seen[split] = split_dir
    for split in ("train", "val", "test"):
        if split in seen:
            records.extend(_read_class_folders(seen[split], split, patient_regex, expected))
    return records


def _cell(value: str) -> str | None:
    value = value.strip()
    return value or None


_INT = re.compile(r"[+-]?(?:0|[1-9]\d*)")
_FLOAT = re.compile(r"[+-]?(?:\d+\.\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?\d+[eE][+-]?\d+")


def _parse_number(text: str) -> int | float | None:
    """int or float for a plain decimal literal; None otherwise (zero-padded ids like '007' stay text)."""
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    return None


def _extra_columns(frame: pd.DataFrame, names: list[str]) -> dict[str, list[object]]:
    """Extra manifest columns as Python values: all-numeric columns become int/float, empty cells None."""
    out: dict[str, list[object]] = {}
    for name in names:
        cells = [_cell(v) for v in frame[name].tolist()]
        present = [c for c in cells if c is not None]
        numbers = [_parse_number(c) for c in present]
        if present and all(n is not None for n in numbers):
            as_float = any(isinstance(n, float) for n in numbers)
            parsed = iter(numbers)
            out[name] = [None if c is None else (float(next(parsed)) if as_float else next(parsed)) for c in cells]
        else:
            out[name] = cells
    return out


def _resolve(base: Path, value: str) -> str:
    p = Path(value).expanduser()
    return os.path.abspath(p if p.is_absolute() else base / p)


def _read_manifest(
    csv_path: Path, patient_regex: str | re.Pattern[str], expected: list[str] | None
) -> list[ImageRecord]:
    try:
        frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False, encoding="utf-8-sig", skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise DataError(f"manifest {str(csv_path)!r} is not a readable CSV ({exc}); fix the file") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    known = {c.lower(): c for c in frame.columns if c.lower() in MANIFEST_COLUMNS}
    for required in ("path", "label"):
        if required not in known:
            raise DataError(
                f"manifest {str(csv_path)!r} has no {required!r} column (columns: {list(frame.columns)}); "
                "add a header row path,label[,split,patient_id,eye,mask_path]"
            )
    if frame.empty:
        raise DataError(f"manifest {str(csv_path)!r} has no rows; add one row per image")
    extra_names = [c for c in frame.columns if c not in known.values()]
    extras = _extra_columns(frame, extra_names)
    base = csv_path.parent

    def column(name: str) -> list[str]:
        return frame[known[name]].tolist() if name in known else [""] * len(frame)

    records: list[ImageRecord] = []
    rows = zip(*(column(name) for name in MANIFEST_COLUMNS))
    for i, (path, label, split, patient, eye, mask) in enumerate(rows):
        where = f"manifest {str(csv_path)!r} line {i + 2}"  # line 1 is the header
        path, label = path.strip(), label.strip()
        if not path:
            raise DataError(f"{where}: missing path; fill it in or delete the row")
        if not label:
            raise DataError(f"{where}: missing label for {path!r}; fill it in or delete the row")
        if expected is not None and label not in expected:
            raise DataError(
                f"{where}: unknown label {label!r} (expected one of {expected}); fix it or add it to classes"
            )
        split_value = normalize_split(split)
        if split.strip() and split_value is None:
            raise DataError(f"{where}: unknown split {split.strip()!r}; use train, val, test or leave it empty")
        eye_value = normalize_eye(eye) if eye.strip() else parse_eye(path)
        if eye.strip() and eye_value is None:
            raise DataError(f"{where}: unknown eye {eye.strip()!r}; use left/right (or OS/OD) or leave it empty")
        records.append(
            ImageRecord(
                path=_resolve(base, path),
                label=label,
                split=split_value,
                patient_id=_cell(patient) or parse_patient_id(path, patient_regex),
                eye=eye_value,
                mask_path=_resolve(base, mask.strip()) if mask.strip() else None,
                extra={name: values[i] for name, values in extras.items()},
            )
        )
    return records
