"""save_checkpoint: atomic, weights_only-loadable, round trip with identical logits."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from retcore.errors import CheckpointError
from retcore.models import create_model, model_from_checkpoint, read_checkpoint, save_checkpoint


def _trained_like(model: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        model.fc_norm.weight.uniform_(0.5, 1.5)
        model.fc_norm.bias.uniform_(-0.5, 0.5)
        model.head.weight.normal_(0, 0.1)
    return model.eval()


def test_round_trip_gives_identical_logits(tiny_registered: str, images: torch.Tensor, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = _trained_like(create_model(tiny_registered, 4, img_size=64))
    path = save_checkpoint(tmp_path / "runs" / "best.pth", model,
                           {"class_names": ["a", "b", "c", "d"], "epoch": 12, "metrics": {"f1": 0.5}})
    assert path.exists() and sorted(p.name for p in path.parent.iterdir()) == ["best.pth"]

    raw = torch.load(path, map_location="cpu", weights_only=True)  # no allow-list needed
    assert set(raw) == {"model", "retcore"}
    assert raw["retcore"]["model_name"] == "tiny" and raw["retcore"]["num_classes"] == 4

    state, meta = read_checkpoint(path)
    assert meta["kind"] == "retcore" and meta["epoch"] == 12 and meta["class_names"] == ["a", "b", "c", "d"]
    assert meta["img_size"] == 64 and meta["global_pool"] == "avg" and meta["double_fc_norm"] is False

    restored, meta2 = model_from_checkpoint(path)
    assert meta2["metrics"] == {"f1": 0.5} and not restored.training
    again = create_model(tiny_registered, 4, img_size=64, checkpoint=path).eval()
    with torch.no_grad():
        expected = model(images)
        torch.testing.assert_close(restored(images), expected, rtol=0, atol=0)
        torch.testing.assert_close(again(images), expected, rtol=0, atol=0)


def test_double_fc_norm_round_trip(tiny_registered: str, images: torch.Tensor, tmp_path: Path) -> None:
    model = _trained_like(create_model(tiny_registered, 2, img_size=64, double_fc_norm=True))
    path = save_checkpoint(tmp_path / "d.pth", model, {"class_names": ["x", "y"]})
    restored, meta = model_from_checkpoint(path)
    assert meta["double_fc_norm"] is True
    with torch.no_grad():
        torch.testing.assert_close(restored(images), model(images), rtol=0, atol=0)
    with pytest.raises(CheckpointError, match="double_fc_norm=True"):
        create_model(tiny_registered, 2, img_size=64, checkpoint=path)


def test_global_pool_mismatch_is_refused(tiny_registered: str, tmp_path: Path) -> None:
    model = create_model(tiny_registered, 2, img_size=64, global_pool="token")
    path = save_checkpoint(tmp_path / "t.pth", model, {})
    with pytest.raises(CheckpointError, match="global_pool='token'"):
        create_model(tiny_registered, 2, img_size=64, checkpoint=path)  # avg model: norm/fc_norm keys differ
    restored, _ = model_from_checkpoint(path)
    assert restored.global_pool == "token"


def test_overwrite_and_non_json_meta(make_tiny: Callable[..., torch.nn.Module], tmp_path: Path) -> None:
    model = make_tiny()
    path = tmp_path / "c.pth"
    save_checkpoint(path, model, {"epoch": 1})
    save_checkpoint(path, model, {"epoch": 2})
    assert read_checkpoint(path)[1]["epoch"] == 2
    with pytest.raises(ValueError, match="JSON"):
        save_checkpoint(path, model, {"epoch": object()})
    assert [p.name for p in tmp_path.iterdir()] == ["c.pth"]
    assert read_checkpoint(path)[1]["epoch"] == 2


def test_model_from_checkpoint_needs_retcore_file(make_tiny: Callable[..., torch.nn.Module], tmp_path: Path) -> None:
    path = tmp_path / "bare.pth"
    torch.save(make_tiny().state_dict(), path)
    assert read_checkpoint(path)[1]["kind"] == "state_dict"
    with pytest.raises(CheckpointError, match="not a retcore checkpoint"):
        model_from_checkpoint(path)


def test_saved_checkpoint_has_the_permissions_of_any_new_file(tiny_registered: str, tmp_path: Path) -> None:
    """The temporary file behind the atomic save is 0600; the checkpoint must be readable by the team."""
    import os

    old = os.umask(0o022)
    try:
        path = save_checkpoint(tmp_path / "best.pth", create_model(tiny_registered, 4, img_size=64), {})
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == plain.stat().st_mode & 0o666 == 0o644
