"""Open, check and hash every image once; group exact duplicates.

Bad files never crash ingestion: each becomes an `IngestError(path, reason)`
whose reason starts with one of `ERROR_KINDS` ("kind: detail"). Images in
other modes than RGB are converted (grayscale, palette, alpha, CMYK, 16-bit);
`load_rgb` applies the same safe decoding at training time.

Pixel conventions: decoded images are PIL RGB, 8 bits per channel, in the
stored orientation (EXIF orientation is not applied, so masks stay aligned).
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import struct
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from retcore.data.records import ImageRecord
from retcore.errors import DataError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "ERROR_KINDS",
    "DuplicateGroup",
    "IngestError",
    "IngestResult",
    "exclude_conflicting",
    "ingest",
    "load_rgb",
]

DEFAULT_MAX_PIXELS = 89_478_485
"""Largest accepted width x height (Pillow's own decompression-bomb limit)."""

UNREADABLE = "unreadable"
EMPTY = "empty file"
NOT_AN_IMAGE = "not an image"
CORRUPT = "truncated or corrupt"
BOMB = "decompression bomb"
TOO_SMALL = "too small"
UNSUPPORTED_MODE = "unsupported mode"
ERROR_KINDS: tuple[str, ...] = (UNREADABLE, EMPTY, NOT_AN_IMAGE, CORRUPT, BOMB, TOO_SMALL, UNSUPPORTED_MODE)
"""Prefixes of `IngestError.reason`, in the order the checks run."""

_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA", "P"})
_PLAIN_CONVERTIBLE_MODES = frozenset({"1", "L", "CMYK", "YCbCr", "RGBX"})
# What Pillow decoders raise on damaged data besides OSError ("image file is truncated").
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, TypeError)


@dataclass(frozen=True)
class IngestError:
    """A file that cannot be used.

    Attributes:
        path: the image path as given in the record.
        reason: "kind: detail", kind one of `ERROR_KINDS`.
    """

    path: str
    reason: str

    @property
    def kind(self) -> str:
        """The reason's category, one of `ERROR_KINDS`."""
        return self.reason.split(":", 1)[0]


@dataclass(frozen=True)
class DuplicateGroup:
    """Images with identical file bytes.

    Attributes:
        sha256: the shared content hash (hex).
        paths: member paths, in record order (two or more).
        labels: the label of each member, parallel to `paths`.
        conflicting: True when the members do not all have the same label.
    """

    sha256: str
    paths: list[str]
    labels: list[str]
    conflicting: bool


@dataclass(frozen=True)
class IngestResult:
    """Outcome of `ingest`.

    Attributes:
        records: the usable images, with sha256/width/height filled, in input order.
        errors: one entry per unusable file, in input order.
        duplicates: groups of usable images with identical bytes.
    """

    records: list[ImageRecord]
    errors: list[IngestError] = field(default_factory=list)
    duplicates: list[DuplicateGroup] = field(default_factory=list)


class _BadImage(Exception):
    """Internal: why a file is unusable (kind from ERROR_KINDS + detail)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.reason = f"{kind}: {detail}"


def _read_bytes(path: str | os.PathLike[str]) -> bytes:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise _BadImage(UNREADABLE, exc.strerror or str(exc)) from exc
    if not data:
        raise _BadImage(EMPTY, "0 bytes")
    return data


def _sixteen_bit_to_rgb(img: Image.Image) -> Image.Image:
    """16-bit gray (0..65535) -> 8-bit RGB by v / 257 (65535 -> 255), rounding, no clipping."""
    values = np.asarray(img)
    if values.size and (values.min() < 0 or values.max() > 65535):
        raise _BadImage(UNSUPPORTED_MODE, f"{img.mode} values outside 0..65535")
    gray = np.rint(values.astype(np.float64) / 257.0).astype(np.uint8)
    return Image.fromarray(np.repeat(gray[:, :, None], 3, axis=2), "RGB")


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert a loaded image to 8-bit RGB; transparent pixels become black (the fundus background)."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in _SIXTEEN_BIT_MODES:
        return _sixteen_bit_to_rgb(img)
    if mode in _ALPHA_MODES:
        if mode == "P" and "transparency" not in img.info:
            return img.convert("RGB")
        rgba = img.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(black, rgba).convert("RGB")
    if mode in _PLAIN_CONVERTIBLE_MODES:
        return img.convert("RGB")
    raise _BadImage(UNSUPPORTED_MODE, f"cannot convert mode {mode!r} to RGB; re-save the image as 8-bit RGB")


def _decode(data: bytes, max_pixels: int) -> Image.Image:
    """Fully decode image bytes into an RGB image, or raise _BadImage."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise _BadImage(BOMB, str(exc)) from exc
        except UnidentifiedImageError as exc:
            raise _BadImage(NOT_AN_IMAGE, "no image format recognised") from exc
        except _DECODE_ERRORS as exc:
            raise _BadImage(CORRUPT, f"{type(exc).__name__}: {exc}") from exc
        width, height = img.size
        if width * height > max_pixels:
            raise _BadImage(BOMB, f"{width}x{height} = {width * height} pixels > limit {max_pixels}")
        try:
            img.load()
            return _to_rgb(img)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise _BadImage(BOMB, str(exc)) from exc
        except _DECODE_ERRORS as exc:
            raise _BadImage(CORRUPT, f"{type(exc).__name__}: {exc}") from exc


def load_rgb(path: str | os.PathLike[str], *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open and fully decode an image as 8-bit RGB (same checks and conversions as `ingest`).

    Args:
        path: image file.
        max_pixels: largest accepted width x height (also capped by Pillow's
            `Image.MAX_IMAGE_PIXELS`).

    Returns:
        PIL image, mode 'RGB', size (W, H) as stored.

    Raises:
        DataError: naming the path and the reason (see `ERROR_KINDS`).
    """
    try:
        return _decode(_read_bytes(path), max_pixels)
    except _BadImage as exc:
        raise DataError(f"image {os.fspath(path)!r}: {exc.reason}; fix or remove the file") from exc


def _check(record: ImageRecord, min_side: int, max_pixels: int) -> ImageRecord:
    """The record with sha256/width/height filled, or raise _BadImage."""
    data = _read_bytes(record.path)
    img = _decode(data, max_pixels)
    width, height = img.size
    if min(width, height) < min_side:
        raise _BadImage(TOO_SMALL, f"{width}x{height} px, shortest side below {min_side}")
    return dataclasses.replace(record, sha256=hashlib.sha256(data).hexdigest(), width=width, height=height)


def _duplicate_groups(records: Sequence[ImageRecord]) -> list[DuplicateGroup]:
    by_hash: dict[str, list[ImageRecord]] = {}
    for r in records:
        if r.sha256 is not None:
            by_hash.setdefault(r.sha256, []).append(r)
    return [
        DuplicateGroup(
            sha256=digest,
            paths=[m.path for m in members],
            labels=[m.label for m in members],
            conflicting=len({m.label for m in members}) > 1,
        )
        for digest, members in by_hash.items()
        if len(members) > 1
    ]


def ingest(
    records: Sequence[ImageRecord],
    *,
    strict: bool = False,
    min_side: int = 32,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: bool = False,
) -> IngestResult:
    """Decode every image once, fill sha256/width/height, collect errors and duplicates.

    Each file is read, hashed (sha256 of the file bytes) and fully decoded with
    Pillow (`Image.load()`, so truncation is caught). Unusable files: unreadable
    (missing, a folder, no permission), empty, not an image, truncated or
    corrupt, decompression bomb (more than `max_pixels` pixels, or Pillow's
    DecompressionBombWarning/Error), too small, or a mode that cannot be
    converted to RGB.

    Args:
        records: images to check (e.g. `discover(...).records`).
        strict: raise on the first unusable file instead of recording it.
        min_side: smallest accepted width and height, in pixels.
        max_pixels: largest accepted width x height.
        progress: show a tqdm progress bar.

    Returns:
        IngestResult(records=usable records, errors, duplicates).

    Raises:
        DataError: in strict mode, naming the first unusable file and the reason.
    """
    good: list[ImageRecord] = []
    errors: list[IngestError] = []
    for record in tqdm(records, desc="ingest", unit="img", disable=not progress):
        try:
            good.append(_check(record, min_side, max_pixels))
        except _BadImage as exc:
            if strict:
                raise DataError(
                    f"image {record.path!r}: {exc.reason}; fix or remove the file, or ingest without --strict"
                ) from exc
            errors.append(IngestError(path=record.path, reason=exc.reason))
    return IngestResult(records=good, errors=errors, duplicates=_duplicate_groups(good))


def exclude_conflicting(records: Sequence[ImageRecord], duplicates: Sequence[DuplicateGroup]) -> list[ImageRecord]:
    """Drop every member of a conflicting duplicate group and all but the first of the others.

    Args:
        records: ingested records (matched to groups by `sha256`; records
            without a hash are kept).
        duplicates: `IngestResult.duplicates`.

    Returns:
        The remaining records, in input order.
    """
    conflicting = {g.sha256 for g in duplicates if g.conflicting}
    deduplicate = {g.sha256 for g in duplicates if not g.conflicting}
    seen: set[str] = set()
    kept: list[ImageRecord] = []
    for r in records:
        if r.sha256 in conflicting:
            continue
        if r.sha256 in deduplicate:
            if r.sha256 in seen:
                continue
            seen.add(r.sha256)
        kept.append(r)
    return kept
