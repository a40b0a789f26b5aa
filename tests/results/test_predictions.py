"""Per-image predictions, confusion counts, class order and stored metrics."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from retcore.errors import RetcoreError
from retcore.results import predictions


def test_split_predictions_in_id_order_with_probabilities(plain_con, tiny_pipeline):
    run = tiny_pipeline["run_id"]
    meta, probs = predictions.split_predictions(plain_con, run, "test")
    raw = plain_con.execute("SELECT image_id, probs FROM predictions WHERE run_id = ? AND split = 'test' "
                            "ORDER BY image_id", [run]).df()
    assert meta["image_id"].tolist() == raw["image_id"].tolist()
    assert probs.dtype == np.float64 and np.array_equal(probs, np.stack(raw["probs"].to_numpy()))
    assert {"label", "pred", "confidence", "correct", "eye"} <= set(meta.columns)
    assert np.allclose(meta["confidence"], probs.max(axis=1))


def test_confusion_counts_every_pair(plain_con, tiny_pipeline):
    run = tiny_pipeline["run_id"]
    classes = ["cataract", "diabetic_retinopathy", "glaucoma", "normal"]
    table = predictions.confusion(plain_con, run, "test", classes)
    assert len(table) == 16 and table["count"].dtype == np.int64
    raw = plain_con.execute("SELECT label, pred FROM predictions WHERE run_id = ? AND split = 'test' "
                            "AND label IS NOT NULL", [run]).df()
    expected = pd.crosstab(raw["label"], raw["pred"]).reindex(index=classes, columns=classes, fill_value=0)
    assert table["count"].to_numpy().reshape(4, 4).tolist() == expected.to_numpy().tolist()


def test_class_order_and_counts(plain_con, tiny_pipeline):
    run = tiny_pipeline["run_id"]
    meta, probs = predictions.split_predictions(plain_con, run, "test")
    recorded = ["cataract", "diabetic_retinopathy", "glaucoma", "normal"]
    assert predictions.checked_classes(recorded, meta, 4, run) == recorded
    seen = sorted(set(meta["label"]) | set(meta["pred"]))
    if len(seen) == 4:
        assert predictions.checked_classes([], meta, 4, run) == seen
    with pytest.raises(RetcoreError, match="cannot tell the order"):
        predictions.checked_classes([], meta, 7, run)
    counts = predictions.class_counts(plain_con, run, "test")
    assert counts.sum() == meta["label"].notna().sum()
    stored = predictions.stored_metrics(plain_con, run, "test")
    assert {"accuracy", "macro_f1"} <= set(stored.loc[stored["class_name"] == "", "metric"])
