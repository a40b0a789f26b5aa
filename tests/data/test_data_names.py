from __future__ import annotations

import pytest

from retcore.data import DEFAULT_PATIENT_REGEX, parse_eye, parse_patient_id


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("103_left.jpg", "103"),
        ("1144_right.jpg", "1144"),
        ("/data/cataract/2375_right.JPG", "2375"),
        ("7-left.tif", "7"),
        ("12_OD.png", "12"),
        ("12os.png", "12"),
        ("103_left_2.jpg", "103"),
        ("C:\\images\\55_right.jpg", "55"),
        # no patient id: the stem is the group
        ("NL_001.png", "NL_001"),
        ("_0_4015166.jpg", "_0_4015166"),
        ("20051019_38557_0100_PP.tif", "20051019_38557_0100_PP"),
        ("103_leftover.jpg", "103_leftover"),
    ],
)
def test_parse_patient_id_default(filename: str, expected: str) -> None:
    assert parse_patient_id(filename) == expected
    assert parse_patient_id(filename, DEFAULT_PATIENT_REGEX) == expected


def test_parse_patient_id_custom_regex_and_no_fallback() -> None:
    regex = r"^P(?P<patient>\d+)_"
    assert parse_patient_id("P0042_scan3.jpg", regex) == "0042"
    assert parse_patient_id("scan3.jpg", regex) == "scan3"
    assert parse_patient_id("scan3.jpg", regex, fallback_to_stem=False) is None


def test_parse_patient_id_needs_named_group() -> None:
    with pytest.raises(ValueError, match="patient"):
        parse_patient_id("1_left.jpg", r"^(\d+)_")


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("103_left.jpg", "left"),
        ("1144_right.jpg", "right"),
        ("a-left.png", "left"),
        ("left_3.jpg", "left"),
        ("LEFT.JPG", "left"),
        ("scan Right.tif", "right"),
        ("P1_OD.tif", "right"),
        ("p1_os.tif", "left"),
        ("12OD.jpg", "right"),
        ("/x/left/img_1.jpg", None),  # folders are not searched
        ("rose.jpg", None),
        ("ROSE_1.jpg", None),
        ("bright.jpg", None),
        ("leftover.jpg", None),
        ("photos_1.jpg", None),
        ("ODIR_5.jpg", None),
        ("left_right_pair.jpg", None),  # both eyes named: unknown
        ("image_001.jpg", None),
    ],
)
def test_parse_eye(filename: str, expected: str | None) -> None:
    assert parse_eye(filename) == expected
