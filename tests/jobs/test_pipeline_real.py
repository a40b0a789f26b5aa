"""``retcore pipeline --data``: a Kaggle-layout folder with bad files, a checkpoint in RETFound's
MAE layout, the linear probe; reruns reuse every stage, an interrupted run resumes."""
from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

CLASSES = ("cataract", "diabetic_retinopathy", "glaucoma", "normal")
METHODS = ("lrp", "lrp_pixels", "gradcam")


def _tiny_mae_spec():
    from retcore.models import ViTSpec

    return ViTSpec(patch_size=16, embed_dim=64, depth=2, num_heads=4, drop_path=0.0)


TINY_MAE = _tiny_mae_spec()


def _q(db, sql, params=()):
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql, list(params)).df()


def _kaggle_folder(root: Path, per_class: int = 10, side: int = 96) -> list[Path]:
    """``root/<class>/<patient>_<eye>.jpg`` from skimage's fundus photo with a class tint; plus 3 bad files."""
    from skimage.data import retina

    base = Image.fromarray(retina()).resize((side, side), Image.Resampling.BILINEAR)
    rng = np.random.default_rng(0)
    tint = {"cataract": (1.2, 1.15, 0.9), "diabetic_retinopathy": (1.0, 0.7, 0.7), "glaucoma": (0.8, 1.0, 1.2),
            "normal": (1.0, 1.0, 1.0)}
    patient = 100
    for cls in CLASSES:
        folder = root / cls
        folder.mkdir(parents=True)
        for k in range(per_class):
            arr = np.asarray(base, np.float32) * np.array(tint[cls]) * rng.uniform(0.85, 1.15)
            eye = "left" if k % 2 == 0 else "right"
            if eye == "right":
                arr = arr[:, ::-1]
            Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(folder / f"{patient}_{eye}.jpg", quality=92)
            patient += k % 2
    bad = [root / "normal" / "9001_left.jpg", root / "glaucoma" / "9002_right.jpg", root / "cataract" / "9003_left.jpg"]
    good = (root / "normal").glob("*.jpg").__next__().read_bytes()
    bad[0].write_bytes(good[: len(good) // 3])  # truncated JPEG
    bad[1].write_bytes(b"")  # empty file
    bad[2].write_text("not an image")  # text with a .jpg name
    return bad


@pytest.fixture(scope="module")
def tiny_mae_model():
    """Register ``tiny_mae`` (ViT dim 64, depth 2, patch 16; RETFound's avg-pool head) for this module."""
    from retcore.models import MODEL_REGISTRY, build_vit

    def tiny_mae(num_classes: int, **options: object):
        return build_vit(TINY_MAE, num_classes, **options)  # type: ignore[arg-type]

    MODEL_REGISTRY.register("tiny_mae")(tiny_mae)
    yield "tiny_mae"
    MODEL_REGISTRY.unregister("tiny_mae")


@pytest.fixture(scope="module")
def real_run(tmp_path_factory, tiny_mae_model):
    from jobs.cli import app

    root = tmp_path_factory.mktemp("kaggle")
    data = root / "dataset"
    bad = _kaggle_folder(data)
    from retcore.models.layout import save_mae_pretrain_checkpoint

    # RETFound's MAE file layout (encoder + decoder keys, 14x14 position grid), at a tiny width and depth
    ckpt = save_mae_pretrain_checkpoint(root / "RETFound_mae_fake.pth", TINY_MAE, decoder=(32, 1), seed=1)
    args = ["pipeline", "--data", str(data), "--model", tiny_mae_model, "--checkpoint", str(ckpt),
            "--freeze-backbone", "--epochs", "2", "--batch-size", "8", "--img-size", "64",
            "--methods", ",".join(METHODS), "--faithfulness-images", "4", "--num-workers", "2",
            "--device", "cpu", "--db", str(root / "results.duckdb"), "--results", str(root / "results")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return {"root": root, "data": data, "db": root / "results.duckdb", "args": args, "bad": bad,
            "output": result.output}


def test_every_stage_runs_and_bad_files_are_recorded(real_run):
    db = real_run["db"]
    runs = _q(db, "SELECT job, status FROM runs ORDER BY started_at")
    assert list(runs["job"]) == ["ingest", "finetune", "predict", "predict", "explain"]
    assert set(runs["status"]) == {"succeeded"}
    errors = _q(db, "SELECT path, reason FROM ingest_errors")
    assert {Path(p).name for p in errors["path"]} == {p.name for p in real_run["bad"]}
    images = _q(db, "SELECT path, split FROM images")
    assert len(images) == 40 and not images["path"].map(lambda p: Path(p).is_absolute()).any()
    assert images["path"].str.match(r"^(cataract|diabetic_retinopathy|glaucoma|normal)/\d+_(left|right)\.jpg$").all()
    config = json.loads(_q(db, "SELECT config FROM runs WHERE job = 'finetune'")["config"].item())
    assert config["finetune"]["freeze_backbone"] and config["finetune"]["checkpoint"].endswith("fake.pth")


def test_every_test_image_has_nonblank_stored_maps(real_run):
    db = real_run["db"]
    test_ids = set(_q(db, "SELECT image_id FROM images WHERE split = 'test'")["image_id"])
    ex = _q(db, "SELECT e.*, r.out_dir FROM explanations e JOIN runs r ON r.run_id = e.run_id")
    preds = _q(db, "SELECT image_id, pred FROM predictions WHERE split = 'test'").set_index("image_id")["pred"]
    assert test_ids and len(ex) == len(test_ids) * len(METHODS)
    assert (ex["target_label"] == ex["image_id"].map(preds)).all()  # the stored prediction is explained
    for row in ex.itertuples():
        assert not Path(row.heatmap_path).is_absolute()
        heat = np.load(Path(row.out_dir).parents[1] / row.heatmap_path)
        assert heat.dtype == np.float32 and np.isfinite(heat).all() and heat.std() > 0, (row.method, row.image_id)


def test_rerun_reuses_every_stage(real_run):
    from jobs.cli import app

    before = _q(real_run["db"], "SELECT count(*) AS n FROM runs")["n"].item()
    result = CliRunner().invoke(app, real_run["args"])
    assert result.exit_code == 0, result.output
    assert "ingest: reusing dataset" in result.output and "reusing finetune run" in result.output
    assert "already has" in result.output
    jobs = _q(real_run["db"], "SELECT job FROM runs ORDER BY started_at")["job"].tolist()
    assert len(jobs) == before + 1 and jobs[-1] == "explain"  # explain only checks what is missing


def test_interrupted_finetune_resumes_under_the_same_run(real_run):
    from jobs.cli import app

    db = real_run["db"]
    run_id = _q(db, "SELECT run_id FROM runs WHERE job = 'finetune'")["run_id"].item()
    with duckdb.connect(str(db)) as con:
        con.execute("UPDATE runs SET status = 'interrupted' WHERE run_id = ?", [run_id])
    result = CliRunner().invoke(app, [*real_run["args"], "--methods", ""])
    assert result.exit_code == 0, result.output
    assert f"resuming interrupted finetune run {run_id}" in result.output
    runs = _q(db, "SELECT run_id, status FROM runs WHERE job = 'finetune'")
    assert list(runs["run_id"]) == [run_id] and runs["status"].item() == "succeeded"


def test_pipeline_needs_data_or_demo(tmp_path):
    from jobs.cli import app

    result = CliRunner().invoke(app, ["pipeline", "--db", str(tmp_path / "r.duckdb")])
    assert result.exit_code == 2 and "exactly one of --data" in result.output
    result = CliRunner().invoke(app, ["pipeline", "--data", str(tmp_path / "nope"), "--db", str(tmp_path / "r.duckdb")])
    assert result.exit_code == 2 and "does not exist" in result.output
    result = CliRunner().invoke(app, ["pipeline", "--demo", "--force", "train", "--db", str(tmp_path / "r.duckdb")])
    assert result.exit_code == 2 and "stages are ingest" in result.output


def test_copied_database_moves_to_new_roots(real_run, tmp_path):
    """Copy data, results and database elsewhere, relocate the copy: it predicts and finds every file."""
    import shutil

    from dashboard.queries import IMAGE_PATH
    from jobs._runs import find_trained_run, run_images
    from jobs.cli import app

    old = real_run["root"]
    new = tmp_path / "moved"
    shutil.copytree(old, new)
    db = new / "results.duckdb"
    args = ["relocate", "--db", str(db), "--data-root", f"{old / 'dataset'}={new / 'dataset'}",
            "--results-root", f"{old / 'results'}={new / 'results'}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "datasets.root: 1 rows" in result.output and "runs.checkpoint: 1 rows" in result.output
    trained = find_trained_run(db, "latest")
    assert trained.checkpoint.is_relative_to(new) and trained.checkpoint.is_file()
    images = run_images(db, trained.dataset_id, "test")
    assert images["path"].map(lambda p: Path(p).is_relative_to(new) and Path(p).is_file()).all()
    with duckdb.connect(str(db), read_only=True) as con:
        shown = con.execute(f"SELECT {IMAGE_PATH} FROM images i JOIN datasets d USING (dataset_id)").fetchall()
        maps = con.execute("SELECT heatmap_path FROM explanations").fetchall()
    assert all(Path(p).is_relative_to(new) and Path(p).is_file() for (p,) in shown)
    assert all((trained.results_root / p).is_file() for (p,) in maps)
    result = CliRunner().invoke(app, ["predict", "--run", "latest", "--split", "test", "--db", str(db),
                                      "--num-workers", "0", "--device", "cpu"])
    assert result.exit_code == 0, result.output


def test_predict_skips_and_records_images_broken_since_ingest(real_run, tmp_path, capsys):
    """A test image corrupted and another deleted after ingest: predict skips both, records them, goes on."""
    import shutil

    from jobs._runs import find_trained_run, run_images
    from jobs.cli import app

    old, new = real_run["root"], tmp_path / "moved"
    shutil.copytree(old, new)
    db = new / "results.duckdb"
    result = CliRunner().invoke(app, ["relocate", "--db", str(db), "--data-root", f"{old / 'dataset'}={new / 'dataset'}",
                                      "--results-root", f"{old / 'results'}={new / 'results'}"])
    assert result.exit_code == 0, result.output
    trained = find_trained_run(db, "latest")
    paths = sorted(run_images(db, trained.dataset_id, "test")["path"])
    Path(paths[0]).write_bytes(b"not a jpeg at all")
    Path(paths[1]).unlink()
    result = CliRunner().invoke(app, ["predict", "--run", "latest", "--split", "test", "--db", str(db),
                                      "--num-workers", "0", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert f"skipped {paths[0]}: " in result.output and f"skipped {paths[1]}: " in result.output
    predict_run = _q(db, "SELECT run_id FROM runs WHERE job = 'predict' ORDER BY started_at DESC LIMIT 1").iat[0, 0]
    recorded = _q(db, "SELECT path FROM ingest_errors WHERE run_id = ? ORDER BY path", [predict_run])
    assert recorded["path"].tolist() == paths[:2]
    n = _q(db, "SELECT count(*) FROM predictions WHERE run_id = ? AND split = 'test'", [trained.run_id]).iat[0, 0]
    assert n == len(paths) - 2
    from jobs.pipeline import predict_stage

    predict_stage(trained.run_id, ["test"], db, results=None, device="cpu", num_workers=0)
    said = capsys.readouterr().out
    assert f"already has {len(paths) - 2} test predictions, 2 unreadable file(s) skipped" in said, said


def test_relocate_errors_are_one_line(tmp_path):
    from jobs.cli import app
    from retcore.storage.runs import open_db

    db = str(tmp_path / "r.duckdb")
    result = CliRunner().invoke(app, ["relocate", "--db", db, "--data-root", "/nowhere=/else"])
    assert result.exit_code == 2 and "does not exist" in result.output
    open_db(db)
    result = CliRunner().invoke(app, ["relocate", "--db", db])
    assert result.exit_code == 2 and "nothing to relocate" in result.output
    result = CliRunner().invoke(app, ["relocate", "--db", db, "--data-root", "/only-old"])
    assert result.exit_code == 2 and "must be OLD=NEW" in result.output
    result = CliRunner().invoke(app, ["relocate", "--db", db, "--data-root", "/nowhere=/else"])
    assert result.exit_code == 2 and "no recorded path" in result.output
