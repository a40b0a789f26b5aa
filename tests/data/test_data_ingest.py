from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from retcore.data import (
    ERROR_KINDS,
    DuplicateGroup,
    ImageRecord,
    IngestError,
    exclude_conflicting,
    ingest,
    load_rgb,
)
from retcore.errors import DataError

WriteImage = Callable[..., Path]


def rec(path: Path, label: str = "normal") -> ImageRecord:
    return ImageRecord(path=str(path), label=label)


def truncate(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def noise(width: int = 64, height: int = 48, seed: int = 0) -> Image.Image:
    """Random RGB pixels: compresses badly, so truncation cuts real pixel data."""
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.fixture
def bad_files(tmp_path: Path, write_image: WriteImage) -> dict[str, Path]:
    """One file per failure kind, keyed by the expected ERROR_KINDS entry."""
    (tmp_path / "folder.jpg").mkdir()  # a directory where a file should be: unreadable even as root
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not an image at all\n")
    return {
        "unreadable": tmp_path / "folder.jpg",
        "missing": tmp_path / "missing.jpg",
        "empty file": tmp_path / "empty.jpg",
        "not an image": tmp_path / "text.jpg",
        "truncated jpeg": truncate(write_image("trunc.jpg", noise(), quality=95)),
        "truncated png": truncate(write_image("trunc.png", noise())),
        "too small": write_image("small.png", Image.new("RGB", (20, 40), (10, 20, 30))),
        "unsupported mode": write_image("float.tif", Image.new("F", (40, 40), 0.5)),
    }


EXPECTED_KIND = {
    "unreadable": "unreadable",
    "missing": "unreadable",
    "empty file": "empty file",
    "not an image": "not an image",
    "truncated jpeg": "truncated or corrupt",
    "truncated png": "truncated or corrupt",
    "too small": "too small",
    "unsupported mode": "unsupported mode",
}


def test_good_images_get_hash_and_size(write_image: WriteImage) -> None:
    a = write_image("a/1_left.jpg")
    b = write_image("b/2_left.png", noise(80, 50))
    result = ingest([rec(a), rec(b, "glaucoma")], progress=True)
    assert result.errors == [] and result.duplicates == []
    ra, rb = result.records
    assert ra.sha256 == hashlib.sha256(a.read_bytes()).hexdigest()
    assert (ra.width, ra.height, rb.width, rb.height) == (64, 48, 80, 50)
    assert rb.label == "glaucoma" and rb.path == str(b)


def test_every_bad_file_is_recorded_not_raised(bad_files: dict[str, Path], write_image: WriteImage) -> None:
    good = write_image("good.png")
    records = [rec(p) for p in bad_files.values()] + [rec(good)]
    result = ingest(records)
    assert [r.path for r in result.records] == [str(good)]
    kinds = {e.path: e.kind for e in result.errors}
    assert kinds == {str(p): EXPECTED_KIND[name] for name, p in bad_files.items()}
    assert all(isinstance(e, IngestError) and e.kind in ERROR_KINDS and ": " in e.reason for e in result.errors)


def test_truncated_reason_mentions_truncation(write_image: WriteImage) -> None:
    path = truncate(write_image("t.jpg", noise(), quality=95))
    (error,) = ingest([rec(path)]).errors
    assert "truncated" in error.reason


def test_decompression_bomb(write_image: WriteImage) -> None:
    path = write_image("big.png", Image.new("RGB", (100, 100)))
    (error,) = ingest([rec(path)], max_pixels=5_000).errors
    assert error.kind == "decompression bomb" and "10000" in error.reason
    assert ingest([rec(path)], max_pixels=10_000).errors == []


def test_pillow_bomb_warning_is_an_error(write_image: WriteImage, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_image("big.png", Image.new("RGB", (100, 100)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 6_000)  # 10000 px > limit: warning; > 2x limit: error
    (error,) = ingest([rec(path)], max_pixels=10**9).errors
    assert error.kind == "decompression bomb"
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 4_000)
    (error,) = ingest([rec(path)], max_pixels=10**9).errors
    assert error.kind == "decompression bomb"


def test_min_side_is_configurable(write_image: WriteImage) -> None:
    path = write_image("small.png", Image.new("RGB", (20, 40)))
    assert ingest([rec(path)], min_side=16).errors == []
    (error,) = ingest([rec(path)], min_side=32).errors
    assert error.reason.startswith("too small: 20x40")


def test_strict_mode_raises_on_first_bad_file(bad_files: dict[str, Path], write_image: WriteImage) -> None:
    good = write_image("good.png")
    with pytest.raises(DataError, match=r"text\.jpg.*not an image"):
        ingest([rec(good), rec(bad_files["not an image"]), rec(bad_files["empty file"])], strict=True)


def rgb_of(path: Path) -> np.ndarray:
    img = load_rgb(path)
    assert img.mode == "RGB"
    return np.asarray(img)


def test_grayscale_converted(write_image: WriteImage) -> None:
    path = write_image("l.png", Image.new("L", (40, 40), 77))
    assert (rgb_of(path) == 77).all()
    (record,) = ingest([rec(path)]).records
    assert (record.width, record.height) == (40, 40)


def test_sixteen_bit_scaled_not_clipped(write_image: WriteImage) -> None:
    values = np.full((40, 40), 65535, np.uint16)
    values[0, :3] = [0, 257 * 100, 30000]
    path = write_image("g16.png", Image.fromarray(values))
    assert Image.open(path).mode == "I;16"
    rgb = rgb_of(path)
    assert rgb[0, :3, 0].tolist() == [0, 100, round(30000 / 257)]
    assert (rgb[1:] == 255).all() and (rgb[..., 0] == rgb[..., 2]).all()


def test_thirty_two_bit_int_mode(write_image: WriteImage) -> None:
    values = np.full((40, 40), 257 * 20, np.int32)
    path = write_image("i32.tif", Image.fromarray(values, "I"))
    assert Image.open(path).mode == "I"
    assert (rgb_of(path) == 20).all()


def test_cmyk_converted(write_image: WriteImage) -> None:
    path = write_image("cmyk.tif", Image.new("CMYK", (40, 40), (0, 255, 255, 0)))
    assert Image.open(path).mode == "CMYK"
    assert (rgb_of(path) == [255, 0, 0]).all()


def test_rgba_composited_on_black(write_image: WriteImage) -> None:
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[...] = [200, 100, 50, 255]
    rgba[0, 0, 3] = 0
    rgba[0, 1, 3] = 128
    path = write_image("rgba.png", Image.fromarray(rgba, "RGBA"))
    rgb = rgb_of(path).astype(int)
    assert rgb[5, 5].tolist() == [200, 100, 50]
    assert rgb[0, 0].tolist() == [0, 0, 0]
    assert np.abs(rgb[0, 1] - [100, 50, 25]).max() <= 1


def test_gray_alpha_converted(write_image: WriteImage) -> None:
    path = write_image("la.png", Image.new("LA", (40, 40), (90, 255)))
    assert (rgb_of(path) == 90).all()


def test_palette_converted(write_image: WriteImage) -> None:
    pal = Image.new("P", (40, 40), 1)
    pal.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    pal.putpixel((0, 0), 0)
    path = write_image("p.png", pal)
    rgb = rgb_of(path)
    assert rgb[5, 5].tolist() == [10, 200, 30] and rgb[0, 0].tolist() == [0, 0, 0]
    transparent = write_image("pt.png", pal, transparency=1)  # palette index 1 fully transparent
    assert (rgb_of(transparent) == 0).all()


def test_load_rgb_raises_data_error(bad_files: dict[str, Path]) -> None:
    with pytest.raises(DataError, match=r"trunc\.png.*truncated or corrupt"):
        load_rgb(bad_files["truncated png"])
    with pytest.raises(DataError, match="folder.jpg.*unreadable"):
        load_rgb(bad_files["unreadable"])


def test_duplicates_grouped_and_excluded(tmp_path: Path, write_image: WriteImage) -> None:
    a = write_image("normal/1_left.png", noise(seed=1))
    a_copy = tmp_path / "normal" / "copy_of_1.png"
    shutil.copy(a, a_copy)
    b = write_image("normal/2_left.png", noise(seed=2))
    b_conflict = tmp_path / "glaucoma" / "2_left.png"
    b_conflict.parent.mkdir()
    shutil.copy(b, b_conflict)
    c = write_image("normal/3_left.png", noise(seed=3))
    records = [rec(a), rec(b), rec(a_copy), rec(c), rec(b_conflict, "glaucoma")]

    result = ingest(records)

    digest = {p: hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in map(str, (a, b))}
    assert result.duplicates == [
        DuplicateGroup(sha256=digest[str(a)], paths=[str(a), str(a_copy)], labels=["normal", "normal"],
                       conflicting=False),
        DuplicateGroup(sha256=digest[str(b)], paths=[str(b), str(b_conflict)], labels=["normal", "glaucoma"],
                       conflicting=True),
    ]
    kept = exclude_conflicting(result.records, result.duplicates)
    assert [r.path for r in kept] == [str(a), str(c)]


def test_permission_denied(write_image: WriteImage) -> None:
    path = write_image("locked.png")
    path.chmod(0)
    try:
        if _readable(path):
            pytest.skip("running as root: chmod does not block reading (see the folder.jpg case instead)")
        (error,) = ingest([rec(path)]).errors
        assert error.kind == "unreadable" and "ermission" in error.reason
    finally:
        path.chmod(0o644)


def _readable(path: Path) -> bool:
    try:
        path.read_bytes()
    except PermissionError:
        return False
    return True
