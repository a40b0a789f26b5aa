"""The database after a tiny demo pipeline: every table the spine promises."""
import json
from pathlib import Path

import duckdb
import pandas as pd
import pytest



def _q(db, sql, params=()):
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql, list(params)).df()


def test_runs_are_recorded_with_config_and_versions(tiny_pipeline):
    runs = _q(tiny_pipeline["db"], "SELECT * FROM runs ORDER BY started_at")
    assert list(runs["job"]) == ["finetune", "predict", "predict"]
    assert set(runs["status"]) == {"succeeded"}
    ft = runs.iloc[0]
    config = json.loads(ft["config"])
    assert config["finetune"]["model"] == "demo" and config["finetune"]["epochs"] == 2
    assert "torch" in json.loads(ft["package_versions"]) and ft["code_version"]
    assert Path(ft["checkpoint"]).is_file() and ft["dataset_id"] and ft["seed"] == 0
    assert (runs.iloc[1:]["parent_run_id"] == ft["run_id"]).all()


def test_images_registered_once_with_ground_truth(tiny_pipeline):
    images = _q(tiny_pipeline["db"], "SELECT * FROM images")
    manifest = pd.read_csv(tiny_pipeline["manifest"])
    assert len(images) == len(manifest) and images["image_id"].is_unique
    assert images["sha256"].str.len().eq(64).all()
    assert set(images["split"]) == {"train", "val", "test"}
    assert images["gt_disc_x"].notna().all() and set(images["eye"]) == {"left", "right"}
    assert images.groupby("patient_id")["split"].nunique().max() == 1
    extra = json.loads(images["extra"].iloc[0])
    assert {"blur_sigma", "shortcut", "marker_x"} <= set(extra)


def test_epochs_predictions_metrics_and_confusion(tiny_pipeline):
    db, run_id = tiny_pipeline["db"], tiny_pipeline["run_id"]
    epochs = _q(db, "SELECT * FROM epochs WHERE run_id = ? ORDER BY epoch", [run_id])
    assert list(epochs["epoch"]) == [0, 1] and epochs["train_loss"].notna().all()
    assert epochs["is_best"].any()
    preds = _q(db, "SELECT p.*, i.split AS image_split FROM predictions p JOIN images i USING (image_id) "
                   "WHERE run_id = ?", [run_id])
    n_test = (pd.read_csv(tiny_pipeline["manifest"])["split"] == "test").sum()
    assert (preds["split"] == "test").sum() == n_test
    assert (preds["split"] == preds["image_split"]).all()
    assert preds["probs"].map(lambda p: abs(sum(p) - 1) < 1e-6).all()
    assert (preds["confidence"] == preds["probs"].map(max)).all()
    assert (preds["correct"] == (preds["pred"] == preds["label"])).all()
    metrics = _q(db, "SELECT * FROM metrics WHERE run_id = ? AND split = 'test'", [run_id])
    names = set(metrics["metric"])
    assert {"accuracy", "balanced_accuracy", "macro_f1", "macro_auroc", "macro_aupr", "kappa", "ece",
            "precision", "recall", "f1", "specificity"} <= names
    acc = metrics.query("metric == 'accuracy'")["value"].item()
    test = preds[preds["split"] == "test"]
    assert acc == pytest.approx(test["correct"].mean())
    confusion = _q(db, "SELECT * FROM confusion WHERE run_id = ? AND split = 'test'", [run_id])
    assert confusion["count"].sum() == n_test and len(confusion) == 16


def test_resume_continues_a_killed_run(tmp_path, tiny_demo, tiny_config, monkeypatch):
    from jobs.finetune import run_finetune
    from retcore.train import finetune as ft

    db = tmp_path / "r.duckdb"
    real_fit = ft.fit

    def killed_after_first_epoch(*args, on_epoch=None, **kwargs):
        def stop(result):
            on_epoch(result)
            raise KeyboardInterrupt

        return real_fit(*args, on_epoch=stop, **kwargs)

    monkeypatch.setattr(ft, "fit", killed_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        run_finetune(tiny_config(epochs=3), tiny_demo, db=db, results=tmp_path, run_id="r1")
    runs = _q(db, "SELECT status, error FROM runs")
    assert runs["status"].item() == "interrupted" and "Ctrl-C" in runs["error"].item()
    monkeypatch.setattr(ft, "fit", real_fit)
    run_finetune(tiny_config(epochs=3), tiny_demo, db=db, results=tmp_path, run_id="r1", resume=True)
    runs = _q(db, "SELECT status FROM runs")
    epochs = _q(db, "SELECT epoch FROM epochs ORDER BY epoch")
    assert runs["status"].item() == "succeeded" and list(epochs["epoch"]) == [0, 1, 2]


def test_predict_unknown_run_is_a_clear_error(tiny_pipeline):
    from jobs.predict import run_predict
    from retcore.errors import RetcoreError

    with pytest.raises(RetcoreError, match="no finetune run 'nope'"):
        run_predict("nope", "test", db=tiny_pipeline["db"])
