"""Stored paths relative to a root: round trip, absolute fallbacks, rebasing whole components."""
from pathlib import Path

from retcore.data.roots import is_absolute, rebase, resolve_stored, root_folder, to_stored


def test_paths_inside_the_root_are_stored_relative_and_resolve_back(tmp_path):
    image = tmp_path / "glaucoma" / "103_left.jpg"
    stored = to_stored(image, tmp_path)
    assert stored == "glaucoma/103_left.jpg"
    assert resolve_stored(stored, tmp_path) == str(image)
    assert resolve_stored(stored, tmp_path / "moved") == str(tmp_path / "moved" / "glaucoma" / "103_left.jpg")


def test_outside_paths_and_empty_values_are_kept(tmp_path):
    outside = "/elsewhere/x.png"
    assert to_stored(outside, tmp_path) == outside and resolve_stored(outside, tmp_path) == outside
    assert to_stored(None, tmp_path) is None and to_stored("", tmp_path) == ""
    assert resolve_stored(None, tmp_path) is None and resolve_stored("a.jpg", None) == "a.jpg"


def test_absolute_forms_of_both_platforms():
    assert is_absolute("/a") and is_absolute("C:\\a") and is_absolute("C:/a") and is_absolute("\\\\srv\\s\\a")
    assert not is_absolute("a/b") and not is_absolute("a\\b")


def test_rebase_replaces_whole_leading_folders_only():
    assert rebase("/data/eyes/x.jpg", "/data", "/mnt/d") == "/mnt/d/eyes/x.jpg"
    assert rebase("/data/eyes/x.jpg", "/data/", "/mnt/d/") == "/mnt/d/eyes/x.jpg"
    assert rebase("/database/x.jpg", "/data", "/mnt/d") == "/database/x.jpg"
    assert rebase("/data", "/data", "/mnt/d") == "/mnt/d"
    assert rebase("eyes/x.jpg", "/data", "/mnt/d") == "eyes/x.jpg" and rebase(None, "/a", "/b") is None


def test_root_folder_of_a_manifest_is_its_folder(tmp_path):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,label\n")
    assert root_folder(manifest) == tmp_path and root_folder(tmp_path) == tmp_path
    assert root_folder(Path("/not/there/m.CSV")) == Path("/not/there")
