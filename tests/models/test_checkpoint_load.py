"""Loading official RETFound layouts (MAE, DINOv2, fine-tuned) and refusing bad files."""
from __future__ import annotations

import argparse
import pickle
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from retcore.errors import CheckpointError
from retcore.models import (
    create_model,
    load_checkpoint_into,
    load_retfound,
    read_checkpoint,
    resize_pos_embed,
)
from retcore.models.vit import ViTSpec

TINY_DINO = ViTSpec(patch_size=14, embed_dim=64, depth=2, num_heads=4, init_values=1e-5, drop_path=0.0)

HEAD_FC_NORM = {"head.weight", "head.bias", "fc_norm.weight", "fc_norm.bias"}


def _save(obj: object, path: Path) -> Path:
    torch.save(obj, path)
    return path


# --------------------------------------------------------------------------- MAE


def test_mae_layout_loads_backbone(make_tiny: Callable[..., torch.nn.Module], fake_mae: Callable[..., dict],
                                   tmp_path: Path) -> None:
    state = fake_mae()
    path = _save({"model": state}, tmp_path / "RETFound_mae_fake.pth")
    model = make_tiny()
    report = load_retfound(model, path)
    assert set(report.missing) == HEAD_FC_NORM
    assert report.unexpected == []
    assert {"mask_token", "decoder_embed.weight", "decoder_pos_embed", "decoder_blocks.1.mlp.fc2.bias",
            "decoder_norm.weight", "decoder_pred.weight", "norm.weight", "norm.bias"} <= set(report.dropped)
    assert not report.interpolated_pos_embed and report.head_initialised and report.kind == "mae_pretrain"
    loaded = model.state_dict()
    for key in ("cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.0.attn.qkv.weight",
                "blocks.1.mlp.fc2.bias", "blocks.1.norm2.weight"):
        assert torch.equal(loaded[key], state[key]), key
    assert torch.equal(model.fc_norm.weight, torch.ones(64)) and torch.equal(model.fc_norm.bias, torch.zeros(64))
    assert model.head.bias.abs().max() == 0 and model.head.weight.abs().max() < 1e-3


def test_mae_into_token_pool_model_keeps_norm(make_tiny: Callable[..., torch.nn.Module],
                                              fake_mae: Callable[..., dict], tmp_path: Path) -> None:
    state = fake_mae()
    model = make_tiny(global_pool="token")
    report = load_retfound(model, _save({"model": state}, tmp_path / "m.pth"))
    assert set(report.missing) == {"head.weight", "head.bias"}
    assert "norm.weight" not in report.dropped
    assert torch.equal(model.norm.weight, state["norm.weight"])


def test_create_model_with_pretrained_checkpoint(tiny_registered: str, fake_mae: Callable[..., dict],
                                                 tmp_path: Path) -> None:
    state = fake_mae()
    path = _save({"model": state}, tmp_path / "pre.pth")
    model = create_model(tiny_registered, 3, img_size=64, checkpoint=path)
    assert torch.equal(model.blocks[1].attn.proj.weight, state["blocks.1.attn.proj.weight"])


def test_head_of_matching_shape_is_kept_and_mismatching_dropped(make_tiny: Callable[..., torch.nn.Module],
                                                                fake_mae: Callable[..., dict]) -> None:
    state = fake_mae()
    state["head.weight"] = torch.full((3, 64), 0.5)
    state["head.bias"] = torch.full((3,), 0.25)
    model = make_tiny(num_classes=3)
    report = load_retfound(model, dict(state))
    assert set(report.missing) == {"fc_norm.weight", "fc_norm.bias"} and not report.head_initialised
    assert torch.equal(model.head.weight, state["head.weight"])
    model5 = make_tiny(num_classes=5)
    report5 = load_retfound(model5, dict(state))
    assert {"head.weight", "head.bias"} <= set(report5.dropped) and report5.head_initialised


# --------------------------------------------------------------------------- DINOv2


@pytest.mark.parametrize("chunks", [0, 2])
def test_dinov2_teacher_layout(make_tiny: Callable[..., torch.nn.Module],
                               fake_dinov2_teacher: Callable[..., dict], tmp_path: Path, chunks: int) -> None:
    teacher = fake_dinov2_teacher(chunks=chunks)
    path = _save({"teacher": teacher}, tmp_path / "RETFound_dinov2_fake.pth")
    state, meta = read_checkpoint(path)
    assert meta["kind"] == "dinov2_pretrain"
    assert all(not k.startswith(("backbone.", "dino_head", "ibot_head")) for k in state)
    assert any(k.startswith("dino_head.") for k in meta["dropped_keys"])
    assert "blocks.1.ls2.gamma" in state

    model = make_tiny(spec=TINY_DINO, img_size=56)  # grid 4, checkpoint grid 6
    report = load_retfound(model, path)
    assert set(report.missing) == HEAD_FC_NORM and report.unexpected == []
    assert report.interpolated_pos_embed
    assert {"mask_token", "norm.weight"} <= set(report.dropped)
    src = "backbone.blocks.{c}.1.ls1.gamma".format(c=1) if chunks else "backbone.blocks.1.ls1.gamma"
    assert torch.equal(model.blocks[1].ls1.gamma, teacher[src])
    expected = resize_pos_embed(teacher["backbone.pos_embed"], (4, 4), 1)
    assert torch.equal(model.pos_embed, expected)


# --------------------------------------------------------------------------- input size


@pytest.mark.parametrize(("img_size", "grid"), [(80, 5), (32, 2)])
def test_other_input_size_interpolates_pos_embed(make_tiny: Callable[..., torch.nn.Module],
                                                 fake_mae: Callable[..., dict], img_size: int, grid: int) -> None:
    state = fake_mae(grid=4)  # pretrained at 64 px
    model = make_tiny(img_size=img_size)
    report = load_retfound(model, dict(state))
    assert report.interpolated_pos_embed
    assert model.pos_embed.shape == (1, 1 + grid * grid, 64)
    assert torch.equal(model.pos_embed[:, :1], state["pos_embed"][:, :1])
    assert torch.equal(model.pos_embed, resize_pos_embed(state["pos_embed"], (grid, grid), 1))
    with torch.no_grad():
        assert model(torch.randn(1, 3, img_size, img_size)).shape == (1, 3)


def test_same_input_size_keeps_pos_embed_identical(make_tiny: Callable[..., torch.nn.Module],
                                                   fake_mae: Callable[..., dict]) -> None:
    state = fake_mae(grid=4)
    model = make_tiny(img_size=64)
    assert not load_retfound(model, dict(state)).interpolated_pos_embed
    assert torch.equal(model.pos_embed, state["pos_embed"])


# --------------------------------------------------------------------------- wrong files


def test_wrong_depth_lists_the_mismatches(make_tiny: Callable[..., torch.nn.Module], fake_mae: Callable[..., dict],
                                          tmp_path: Path) -> None:
    path = _save({"model": fake_mae(depth=3)}, tmp_path / "deep.pth")
    model = make_tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError) as info:
        load_retfound(model, path)
    message = str(info.value)
    assert str(path) in message and "unexpected" in message and "blocks.2." in message
    assert "+7 more" in message  # 12 unexpected keys, first 5 listed
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # untouched


def test_wrong_dim_lists_shape_mismatches(make_tiny: Callable[..., torch.nn.Module],
                                          fake_mae: Callable[..., dict]) -> None:
    with pytest.raises(CheckpointError, match=r"shape: cls_token \(1, 1, 96\) vs model \(1, 1, 64\)"):
        load_retfound(make_tiny(), fake_mae(dim=96))


def test_missing_backbone_key_is_an_error(make_tiny: Callable[..., torch.nn.Module],
                                          fake_mae: Callable[..., dict]) -> None:
    state = fake_mae()
    del state["blocks.0.attn.qkv.weight"]
    with pytest.raises(CheckpointError, match=r"missing: blocks\.0\.attn\.qkv\.weight"):
        load_retfound(make_tiny(), state)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.pth"
    with pytest.raises(CheckpointError, match="not found") as info:
        read_checkpoint(path)
    assert str(path) in str(info.value)


def test_repo_id_like_missing_path_hints_hub() -> None:
    with pytest.raises(CheckpointError, match="hub:YukunZhou/RETFound_mae_meh"):
        read_checkpoint("YukunZhou/RETFound_mae_meh")


def test_directory_and_text_file_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not a file"):
        read_checkpoint(tmp_path)
    text = tmp_path / "notes.pth"
    text.write_text("these are not weights\n")
    with pytest.raises(CheckpointError, match="notes.pth") as info:
        read_checkpoint(text)
    assert "torch.save" in str(info.value) and "\n" not in str(info.value)
    assert "weights_only" not in str(info.value), "torch's advice to turn the safe loading off is not passed on"
    raw = tmp_path / "raw.pkl"  # a plain pickle (protocol 4), not a torch.save archive
    raw.write_bytes(pickle.dumps({"weights": [1.0, 2.0]}, protocol=4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's "pickle protocol" warning must not reach the user
        with pytest.raises(CheckpointError, match="raw.pkl is not a torch.save file") as info:
            read_checkpoint(raw)
    assert "weights_only" not in str(info.value)
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty.pth is empty or cut off"):
        read_checkpoint(empty)


def test_non_dict_and_weightless_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="list"):
        read_checkpoint(_save([torch.zeros(2)], tmp_path / "list.pth"))
    with pytest.raises(CheckpointError, match="no model weights"):
        read_checkpoint(_save({"epoch": 3, "lr": 0.1}, tmp_path / "meta_only.pth"))


class Payload:
    """A pickled object that would write a marker file if it were ever unpickled."""

    marker: Path

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (Path.write_text, (self.marker, "pwned"))  # type: ignore[return-value]


def test_other_pickled_class_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "marker.txt"
    path = _save({"model": {"w": torch.zeros(1)}, "extra": Payload(marker)}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="refuses to unpickle") as info:
        read_checkpoint(path)
    assert "getattr" in str(info.value)  # pickle reaches Path.write_text through builtins.getattr
    assert not marker.exists()


class TrainingState:
    """An ordinary (harmless) class: still not on the allow-list."""

    def __init__(self) -> None:
        self.step = 3


def test_plain_custom_class_is_refused_by_name(tmp_path: Path) -> None:
    path = _save({"model": {"w": torch.zeros(1)}, "state": TrainingState()}, tmp_path / "custom.pth")
    with pytest.raises(CheckpointError, match=r"TrainingState.*re-save only its tensors"):
        read_checkpoint(path)


# --------------------------------------------------------------------------- official fine-tuned


def _official_finetuned(model: torch.nn.Module, path: Path) -> Path:
    args = argparse.Namespace(model="RETFound_mae", nb_classes=3, input_size=64, global_pool=True, blr=5e-3,
                              layer_decay=0.65, data_path="/data/x", finetune="RETFound_mae_natureCFP")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    return _save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 7,
                  "scaler": {"scale": 65536.0, "growth_factor": 2.0}, "args": args}, path)


def test_official_finetuned_checkpoint_loads_strictly(make_tiny: Callable[..., torch.nn.Module],
                                                      tiny_registered: str, images: torch.Tensor,
                                                      tmp_path: Path) -> None:
    source = make_tiny(seed=3)
    with torch.no_grad():
        source.fc_norm.weight.uniform_(0.5, 1.5)
        source.head.weight.normal_(0, 0.1)
    path = _official_finetuned(source, tmp_path / "checkpoint-best.pth")

    state, meta = read_checkpoint(path)
    assert meta["kind"] == "retfound_finetuned" and meta["epoch"] == 7
    assert meta["args"]["nb_classes"] == 3 and meta["args"]["global_pool"] is True

    model = create_model(tiny_registered, 3, img_size=64).eval()
    report = load_checkpoint_into(model, path)
    assert report.strict and report.missing == [] and not report.head_initialised
    with torch.no_grad():
        torch.testing.assert_close(model(images), source(images), rtol=0, atol=0)


def test_official_finetuned_double_fc_norm(make_tiny: Callable[..., torch.nn.Module], tiny_registered: str,
                                           images: torch.Tensor, tmp_path: Path) -> None:
    source = make_tiny(seed=4, double_fc_norm=True)  # as trained by the official code on timm 0.9
    with torch.no_grad():
        source.fc_norm.weight.uniform_(0.5, 1.5)
        source.fc_norm.bias.uniform_(-0.5, 0.5)
        source.head.weight.normal_(0, 0.1)
    path = _official_finetuned(source, tmp_path / "official.pth")
    double = create_model(tiny_registered, 3, img_size=64, double_fc_norm=True, checkpoint=path).eval()
    single = create_model(tiny_registered, 3, img_size=64, checkpoint=path).eval()
    with torch.no_grad():
        torch.testing.assert_close(double(images), source(images), rtol=0, atol=0)
        assert not torch.allclose(single(images), source(images), atol=1e-4)


def test_finetuned_with_other_class_count_loads_backbone(make_tiny: Callable[..., torch.nn.Module],
                                                         tiny_registered: str, tmp_path: Path) -> None:
    source = make_tiny(num_classes=5, seed=5)
    path = _official_finetuned(source, tmp_path / "five.pth")
    model = create_model(tiny_registered, 3, img_size=64)
    report = load_checkpoint_into(model, path)
    assert not report.strict and report.head_initialised
    assert set(report.missing) == {"head.weight", "head.bias"}  # fc_norm comes from the fine-tuned model
    assert torch.equal(model.fc_norm.weight, source.fc_norm.weight)


# --------------------------------------------------------------------------- hub


def test_hub_failure_tells_user_to_download(monkeypatch: pytest.MonkeyPatch, make_tiny: Callable[..., torch.nn.Module]
                                            ) -> None:
    import huggingface_hub

    def offline(**kwargs: object) -> str:
        raise OSError("We couldn't connect to 'https://huggingface.co' (gated repo, 401)")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint_into(make_tiny(), "hub:YukunZhou/RETFound_mae_natureCFP")
    message = str(info.value)
    assert "RETFound_mae_natureCFP.pth" in message
    assert "huggingface.co/YukunZhou/RETFound_mae_natureCFP" in message
    assert "licence" in message and "token" in message and "local path" in message
    assert "\n" not in message


def test_hub_download_is_used(monkeypatch: pytest.MonkeyPatch, make_tiny: Callable[..., torch.nn.Module],
                              fake_mae: Callable[..., dict], tmp_path: Path) -> None:
    import huggingface_hub

    local = _save({"model": fake_mae()}, tmp_path / "RETFound_mae_meh.pth")
    calls: list[dict[str, object]] = []

    def download(**kwargs: object) -> str:
        calls.append(kwargs)
        return str(local)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    report = load_checkpoint_into(make_tiny(), "hub:YukunZhou/RETFound_mae_meh")
    assert calls == [{"repo_id": "YukunZhou/RETFound_mae_meh", "filename": "RETFound_mae_meh.pth"}]
    assert report.kind == "mae_pretrain"


def test_bad_hub_spec(make_tiny: Callable[..., torch.nn.Module]) -> None:
    with pytest.raises(CheckpointError, match="hub:<owner>/<name>"):
        load_checkpoint_into(make_tiny(), "hub:RETFound_mae_meh")
