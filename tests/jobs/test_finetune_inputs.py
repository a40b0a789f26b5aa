"""finetune on other inputs: a fake RETFound checkpoint + linear probe, class folders with bad files."""
from pathlib import Path

import duckdb
import numpy as np
import pytest
import torch
from PIL import Image

from retcore.errors import RetcoreError


def _fake_mae_for_demo(path):
    """A MAE-pretraining file in RETFound's key layout for the `demo` architecture at 224 px."""
    from retcore.models import create_model

    encoder = create_model("demo", 4, img_size=224, global_pool="token").state_dict()
    state = {k: v for k, v in encoder.items() if not k.startswith(("head.", "fc_norm."))}
    state.update({"mask_token": torch.zeros(1, 1, 32), "decoder_embed.weight": torch.zeros(32, 192),
                  "decoder_embed.bias": torch.zeros(32), "decoder_pos_embed": torch.zeros(1, 197, 32),
                  "decoder_norm.weight": torch.ones(32), "decoder_norm.bias": torch.zeros(32),
                  "decoder_pred.weight": torch.zeros(768, 32), "decoder_pred.bias": torch.zeros(768)})
    torch.save({"model": state}, path)
    return encoder


def test_linear_probe_from_fake_retfound_checkpoint(tmp_path, tiny_demo, tiny_config):
    from jobs._runs import load_trained_model
    from jobs.finetune import run_finetune

    ckpt = tmp_path / "RETFound_fake.pth"
    encoder = _fake_mae_for_demo(ckpt)
    cfg = tiny_config(checkpoint=str(ckpt), freeze_backbone=True, epochs=2, blr=5e-2)
    db = tmp_path / "r.duckdb"
    run_id = run_finetune(cfg, tiny_demo, db=db, results=tmp_path)
    with duckdb.connect(str(db), read_only=True) as con:
        status, best = con.execute("SELECT status, checkpoint FROM runs WHERE run_id = ?", [run_id]).fetchone()
    assert status == "succeeded"
    model, meta = load_trained_model(__import__("pathlib").Path(best))
    trained = model.state_dict()
    # the backbone is exactly the pretrained one (frozen); the pos_embed was resized 14x14 -> 4x4
    assert torch.equal(trained["blocks.3.mlp.fc2.weight"], encoder["blocks.3.mlp.fc2.weight"])
    assert trained["pos_embed"].shape == (1, 17, 192)
    assert not torch.equal(trained["head.weight"], torch.zeros_like(trained["head.weight"]))
    assert meta["class_names"] == sorted(meta["class_names"])
    # the last checkpoint of a probe holds the head, not a copy of the frozen backbone
    last = torch.load(Path(best).with_name("checkpoint-last.pth"), weights_only=True)
    assert "model" not in last and {k.split(".")[0] for k in last["head"]} == {"fc_norm", "head"}


def test_killed_linear_probe_resumes_to_the_best_head(tmp_path, tiny_demo, tiny_config, monkeypatch):
    import retcore.train.finetune as ft
    from jobs._runs import load_trained_model
    from jobs.finetune import run_finetune

    ckpt = tmp_path / "RETFound_fake.pth"
    encoder = _fake_mae_for_demo(ckpt)
    cfg = tiny_config(checkpoint=str(ckpt), freeze_backbone=True, epochs=3, blr=5e-2)
    real_save = ft._atomic_save
    saves = []

    def killed_after_first_epoch(obj, path):
        real_save(obj, path)
        saves.append(path)
        raise KeyboardInterrupt

    monkeypatch.setattr(ft, "_atomic_save", killed_after_first_epoch)
    db = tmp_path / "r.duckdb"
    with pytest.raises(KeyboardInterrupt):
        run_finetune(cfg, tiny_demo, db=db, results=tmp_path, run_id="probe")
    assert not (tmp_path / "runs" / "probe" / "checkpoint-best.pth").exists() and len(saves) == 1
    monkeypatch.setattr(ft, "_atomic_save", real_save)
    run_finetune(cfg, tiny_demo, db=db, results=tmp_path, run_id="probe", resume=True)
    with duckdb.connect(str(db), read_only=True) as con:
        status, best = con.execute("SELECT status, checkpoint FROM runs WHERE run_id = 'probe'").fetchone()
        epochs = [r[0] for r in con.execute("SELECT epoch FROM epochs WHERE run_id = 'probe' ORDER BY epoch").fetchall()]
    assert status == "succeeded" and epochs == [0, 1, 2]
    model, meta = load_trained_model(Path(best))
    last = torch.load(Path(best).with_name("checkpoint-last.pth"), weights_only=True)
    assert meta["epoch"] == last["train_state"]["best_epoch"]
    assert all(torch.equal(model.state_dict()[k], v) for k, v in last["best_head"].items())
    assert torch.equal(model.state_dict()["blocks.3.mlp.fc2.weight"], encoder["blocks.3.mlp.fc2.weight"])


def test_wrong_architecture_checkpoint_is_a_clear_error(tmp_path, tiny_demo, tiny_config):
    from jobs.finetune import run_finetune

    ckpt = tmp_path / "vit_tiny.pth"
    from retcore.models import create_model

    torch.save({"model": create_model("vit_tiny", 4).state_dict()}, ckpt)
    with pytest.raises(RetcoreError, match="vit_tiny.pth"):
        run_finetune(tiny_config(checkpoint=str(ckpt)), tiny_demo, db=tmp_path / "r.duckdb", results=tmp_path)
    with duckdb.connect(str(tmp_path / "r.duckdb"), read_only=True) as con:
        assert con.execute("SELECT status FROM runs").fetchone()[0] == "failed"


def _fundus(rng, size=64):
    yy, xx = np.mgrid[:size, :size]
    disk = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size * 0.45) ** 2
    img = np.zeros((size, size, 3), np.uint8)
    img[disk] = rng.integers(60, 200, size=3)
    return img


def test_class_folders_with_bad_files_are_recorded_and_skipped(tmp_path, tiny_config):
    from jobs.finetune import run_finetune

    rng = np.random.default_rng(0)
    root = tmp_path / "kaggle"
    for c in ("cataract", "normal"):
        (root / c).mkdir(parents=True)
        for pid in range(10):
            for eye in ("left", "right"):
                Image.fromarray(_fundus(rng)).save(root / c / f"{pid}{c[0]}_{eye}.jpg")
    (root / "normal" / "99_left.jpg").write_bytes(b"")
    (root / "normal" / "98_left.jpg").write_text("not an image")
    (root / "cataract" / "97_left.png").write_bytes((root / "cataract" / "0c_left.jpg").read_bytes()[:200])
    db = tmp_path / "r.duckdb"
    run_finetune(tiny_config(epochs=1), root, db=db, results=tmp_path)
    with duckdb.connect(str(db), read_only=True) as con:
        errors = con.execute("SELECT path, reason FROM ingest_errors ORDER BY path").fetchall()
        n_images = con.execute("SELECT count(*) FROM images").fetchone()[0]
    assert [p.rsplit("/", 1)[1] for p, _ in errors] == ["97_left.png", "98_left.jpg", "99_left.jpg"]
    assert all(reason for _, reason in errors)
    assert n_images == 40


def test_strict_stops_at_the_first_bad_file(tmp_path, tiny_config):
    from jobs.finetune import run_finetune

    root = tmp_path / "d"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(_fundus(np.random.default_rng(i))).save(root / c / f"{i}{c}_left.png")
    (root / "a" / "bad_left.png").write_bytes(b"")
    with pytest.raises(RetcoreError, match="bad_left.png"):
        run_finetune(tiny_config(epochs=1), root, db=tmp_path / "r.duckdb", results=tmp_path, strict=True)
