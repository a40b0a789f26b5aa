from __future__ import annotations

import os
from pathlib import Path

import pytest

from retcore.data import DatasetSpec, discover
from retcore.errors import DataError


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_class_folders(tmp_path: Path) -> None:
    root = tmp_path / "eye_diseases"
    for name in ["cataract/1_left.jpg", "cataract/1_right.JPG", "cataract/NL_001.png", "normal/2_left.Jpeg",
                 "normal/3_OD.tif", "normal/4.bmp", "normal/5.TIFF"]:
        touch(root / name)
    touch(root / "normal" / "notes.txt")  # not an image extension
    touch(root / "normal" / "._2_left.jpg")  # hidden (macOS resource fork)
    touch(root / "README.md")  # stray file at the root
    (root / ".cache").mkdir()  # hidden folder is not a class

    spec = discover(root)

    assert isinstance(spec, DatasetSpec)
    assert spec.kind == "class_folders"
    assert spec.root == str(root)
    assert spec.classes == ["cataract", "normal"]
    assert len(spec) == 7
    names = [(Path(r.path).name, r.label) for r in spec.records]
    assert names == [("1_left.jpg", "cataract"), ("1_right.JPG", "cataract"), ("NL_001.png", "cataract"),
                     ("2_left.Jpeg", "normal"), ("3_OD.tif", "normal"), ("4.bmp", "normal"), ("5.TIFF", "normal")]
    by_name = {Path(r.path).name: r for r in spec.records}
    assert by_name["1_left.jpg"].patient_id == by_name["1_right.JPG"].patient_id == "1"
    assert by_name["1_left.jpg"].eye == "left" and by_name["1_right.JPG"].eye == "right"
    assert by_name["3_OD.tif"].eye == "right"
    assert by_name["NL_001.png"].patient_id == "NL_001" and by_name["NL_001.png"].eye is None
    assert all(os.path.isabs(r.path) and r.split is None and r.mask_path is None for r in spec.records)


def test_class_folders_with_expected_classes(tmp_path: Path) -> None:
    for name in ["glaucoma/1_left.jpg", "normal/2_left.jpg"]:
        touch(tmp_path / name)
    spec = discover(tmp_path, classes=["normal", "glaucoma"])
    assert spec.classes == ["glaucoma", "normal"]


def test_unknown_class_folder(tmp_path: Path) -> None:
    for name in ["normal/1_left.jpg", "catarct/2_left.jpg"]:
        touch(tmp_path / name)
    with pytest.raises(DataError, match="unknown class folder .*catarct.*rename or remove"):
        discover(tmp_path, classes=["cataract", "normal"])


def test_expected_class_without_images(tmp_path: Path) -> None:
    touch(tmp_path / "normal" / "1_left.jpg")
    with pytest.raises(DataError, match=r"\['cataract'\] have no images"):
        discover(tmp_path, classes=["cataract", "normal"])


def test_empty_class_folder(tmp_path: Path) -> None:
    touch(tmp_path / "normal" / "1_left.jpg")
    touch(tmp_path / "glaucoma" / "readme.txt")
    with pytest.raises(DataError, match="glaucoma.*has no images.*add images or remove the folder"):
        discover(tmp_path)


def test_missing_source(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        discover(tmp_path / "nope")


def test_folder_without_class_folders(tmp_path: Path) -> None:
    touch(tmp_path / "1_left.jpg")
    with pytest.raises(DataError, match="no class folders"):
        discover(tmp_path)


def test_non_csv_file_source(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a .csv manifest"):
        discover(touch(tmp_path / "list.txt"))


def test_split_folders(tmp_path: Path) -> None:
    for name in ["train/a/1_left.jpg", "train/b/2_left.jpg", "valid/a/3_left.jpg", "test/b/4_right.png",
                 "test/a/5_left.jpg"]:
        touch(tmp_path / name)
    spec = discover(tmp_path)
    assert spec.kind == "split_folders"
    assert spec.classes == ["a", "b"]
    assert [(r.split, r.label, Path(r.path).name) for r in spec.records] == [
        ("train", "a", "1_left.jpg"), ("train", "b", "2_left.jpg"), ("val", "a", "3_left.jpg"),
        ("test", "a", "5_left.jpg"), ("test", "b", "4_right.png"),
    ]


@pytest.mark.parametrize("val_name", ["val", "valid", "validation", "Validation"])
def test_split_folder_val_aliases(tmp_path: Path, val_name: str) -> None:
    touch(tmp_path / "train" / "a" / "1.jpg")
    touch(tmp_path / val_name / "a" / "2.jpg")
    assert [r.split for r in discover(tmp_path).records] == ["train", "val"]


def test_split_folders_reject_stray_folder_and_unknown_class(tmp_path: Path) -> None:
    touch(tmp_path / "train" / "a" / "1.jpg")
    touch(tmp_path / "extra" / "a" / "2.jpg")
    with pytest.raises(DataError, match="extra.*is not a split"):
        discover(tmp_path)
    (tmp_path / "extra" / "a" / "2.jpg").unlink()
    (tmp_path / "extra" / "a").rmdir()
    (tmp_path / "extra").rmdir()
    touch(tmp_path / "test" / "z" / "3.jpg")
    with pytest.raises(DataError, match="unknown class folder .*test.*z"):
        discover(tmp_path, classes=["a"])


def test_split_folders_with_two_val_aliases(tmp_path: Path) -> None:
    touch(tmp_path / "val" / "a" / "1.jpg")
    touch(tmp_path / "valid" / "a" / "2.jpg")
    with pytest.raises(DataError, match="both mean 'val'"):
        discover(tmp_path)


def write_manifest(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_manifest_relative_paths_and_extras(tmp_path: Path) -> None:
    absolute = touch(tmp_path / "elsewhere" / "9_left.jpg")
    csv = write_manifest(
        tmp_path / "ds" / "manifest.csv",
        "path,label,split,patient_id,eye,mask_path,disc_x,blur_sigma,note,code\n"
        "img/1_left.png,glaucoma,train,,,masks/1_left.png,120,0.5,ok,007\n"
        f"{absolute},normal,Validation,P9,OD,,,0,,012\n"
        "img/sub/../2_right.png , normal ,, , os ,,7,1.25,blurry,3\n",
    )
    spec = discover(csv)
    assert spec.kind == "manifest"
    assert spec.root == str(csv)
    assert spec.classes == ["glaucoma", "normal"]
    r1, r2, r3 = spec.records
    base = tmp_path / "ds"
    assert r1.path == str(base / "img" / "1_left.png")
    assert r1.mask_path == str(base / "masks" / "1_left.png")
    assert (r1.label, r1.split, r1.patient_id, r1.eye) == ("glaucoma", "train", "1", "left")  # parsed from name
    assert r2.path == str(absolute)
    assert (r2.split, r2.patient_id, r2.eye, r2.mask_path) == ("val", "P9", "right", None)
    assert r3.path == str(base / "img" / "2_right.png")
    assert (r3.label, r3.split, r3.patient_id, r3.eye) == ("normal", None, "2", "left")  # column beats file name
    assert r1.extra == {"disc_x": 120, "blur_sigma": 0.5, "note": "ok", "code": "007"}
    assert r2.extra == {"disc_x": None, "blur_sigma": 0.0, "note": None, "code": "012"}
    assert r3.extra == {"disc_x": 7, "blur_sigma": 1.25, "note": "blurry", "code": "3"}
    assert type(r1.extra["disc_x"]) is int and type(r2.extra["blur_sigma"]) is float


def test_manifest_minimal_columns_with_bom(tmp_path: Path) -> None:
    csv = tmp_path / "m.csv"
    csv.write_bytes("\ufeffpath,label\na/1_left.jpg,x\n".encode())
    (record,) = discover(csv).records
    assert (record.path, record.label, record.split, record.patient_id, record.extra) == (
        str(tmp_path / "a" / "1_left.jpg"), "x", None, "1", {})


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("path,label\na.jpg,x\n,y\n", "line 3: missing path"),
        ("path,label\na.jpg,x\nb.jpg,x\nc.jpg,\n", "line 4: missing label"),
        ("path,label,split\na.jpg,x,holdout\n", "line 2: unknown split 'holdout'"),
        ("path,label,eye\na.jpg,x,both\n", "line 2: unknown eye 'both'"),
        ("path,label\na.jpg,z\n", "line 2: unknown label 'z'"),
        ("file,label\na.jpg,x\n", "no 'path' column"),
        ("path,label\n", "no rows"),
        ("", "not a readable CSV"),
    ],
)
def test_manifest_errors(tmp_path: Path, body: str, message: str) -> None:
    csv = write_manifest(tmp_path / "m.csv", body)
    with pytest.raises(DataError, match=message):
        discover(csv, classes=["x", "y"])
