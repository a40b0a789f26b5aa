"""Patient id and eye parsed from image file names.

Public fundus datasets encode the patient and the eye in the file name, e.g.
ODIR / Kaggle "Eye Diseases Classification": ``103_left.jpg``, ``1144_right.jpg``.
Both eyes of a patient must stay in one split, so the patient id is the
grouping key of `retcore.data.split.assign_splits`.
"""
from __future__ import annotations

import re
from pathlib import PurePath

__all__ = ["DEFAULT_PATIENT_REGEX", "parse_eye", "parse_patient_id"]

DEFAULT_PATIENT_REGEX = r"(?i)^(?P<patient>\d+)[_\-\s]*(?:left|right|od|os)(?![a-z])"
"""Leading digits followed by an eye token: ``103_left`` -> ``103``, ``12-OD`` -> ``12``.

Names without an eye token (``20051019_38557_0100_PP``) do not match on purpose:
a leading number alone is often a date or a running index, not a patient.
"""

# An eye token must not touch a letter on either side ('OS' in 'rOSe' is not one);
# digits, '_', '-', spaces and the string ends are boundaries.
_EYE_TOKEN = re.compile(r"(?i)(?<![a-z])(left|right|od|os)(?![a-z])")
_EYE_OF_TOKEN = {"left": "left", "os": "left", "right": "right", "od": "right"}


def _stem(filename: str) -> str:
    """File name without folders and without its last extension."""
    return PurePath(filename.replace("\\", "/")).stem


def parse_patient_id(
    filename: str, regex: str | re.Pattern[str] = DEFAULT_PATIENT_REGEX, *, fallback_to_stem: bool = True
) -> str | None:
    """Patient id of an image from its file name.

    Args:
        filename: a file name or path; only the stem (name without folders and
            extension) is searched, with `re.search`.
        regex: pattern with a named group ``patient``.
        fallback_to_stem: when the pattern does not match, return the stem so
            that the image forms its own group.

    Returns:
        The ``patient`` group (stripped), else the stem when `fallback_to_stem`,
        else None.

    Raises:
        ValueError: `regex` has no group named ``patient``.
    """
    pattern = re.compile(regex) if isinstance(regex, str) else regex
    if "patient" not in pattern.groupindex:
        raise ValueError(f"patient regex {pattern.pattern!r} needs a named group (?P<patient>...)")
    stem = _stem(filename)
    match = pattern.search(stem)
    if match is not None and match.group("patient"):
        return match.group("patient").strip()
    return stem if fallback_to_stem and stem else None


def parse_eye(filename: str) -> str | None:
    """Eye of an image from its file name.

    Recognises the whole tokens ``left``/``right`` and ``OD`` (right) /
    ``OS`` (left), case-insensitively, separated by anything but letters:
    ``103_left.jpg``, ``a-left.png``, ``left_3.jpg``, ``P1_OD.tif``.

    Args:
        filename: a file name or path; only the stem is searched.

    Returns:
        'left', 'right', or None when no token or both eyes are named.
    """
    eyes = {_EYE_OF_TOKEN[m.group(1).lower()] for m in _EYE_TOKEN.finditer(_stem(filename))}
    return eyes.pop() if len(eyes) == 1 else None
