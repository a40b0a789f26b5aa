"""Small synthetic frames for the chart builders."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

CLASSES = ["normal", "cataract", "diabetic_retinopathy", "glaucoma"]


@pytest.fixture(scope="session")
def predictions() -> pd.DataFrame:
    """60 fake predictions: label, probs, pred, confidence, correct."""
    rng = np.random.default_rng(0)
    labels = rng.choice(CLASSES, 60)
    logits = rng.normal(size=(60, 4)) + 2.0 * (np.array(CLASSES)[None, :] == labels[:, None])
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    pred = np.array(CLASSES)[probs.argmax(axis=1)]
    return pd.DataFrame({"image_id": [f"img{i:03d}" for i in range(60)], "label": labels,
                         "probs": list(probs), "pred": pred, "confidence": probs.max(axis=1),
                         "correct": pred == labels})


@pytest.fixture(scope="session")
def zones(predictions) -> pd.DataFrame:
    """Long zone scores (3 zones per image) joined to the predictions."""
    rng = np.random.default_rng(1)
    rows = []
    for row in predictions.itertuples():
        for zone in ("center", "left", "right"):
            rows.append({"image_id": row.image_id, "class_name": row.label, "zone": zone,
                         "score": float(rng.gamma(2.0, 0.5)), "confidence": row.confidence, "correct": row.correct})
    return pd.DataFrame(rows)
