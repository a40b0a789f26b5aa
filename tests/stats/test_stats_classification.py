"""Confusion matrix, per-class / overall metrics with intervals, ROC and calibration."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from retcore.metrics import classification_report
from retcore.metrics import expected_calibration_error as metrics_ece
from retcore.stats.classification import (
    _auroc_w,
    auroc_table,
    cohen_kappa,
    confusion_matrix,
    confusion_metrics,
    confusion_table,
    expected_calibration_error,
    overall_metrics,
    per_class_metrics,
    reliability_curve,
    roc_curves,
)
from retcore.stats.intervals import SortedRanks, resample_counts, wilson_interval

LABELS = ["a", "b", "c"]
Y = np.array(["a", "a", "b", "b", "c", "c"])
PRED = np.array(["a", "b", "b", "b", "c", "a"])
PROBS = np.array([[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.1, 0.7, 0.2],
                  [0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.5, 0.1, 0.4]])


def _random_case(n=300, c=4, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    probs = rng.dirichlet(np.ones(c), n)
    probs[np.arange(n), y] += rng.random(n)  # better than chance
    probs /= probs.sum(axis=1, keepdims=True)
    return y, probs


def test_confusion_counts_and_row_normalised():
    np.testing.assert_array_equal(confusion_matrix(Y, PRED, LABELS), [[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    shares = confusion_matrix(Y, PRED, ["a", "b", "c", "d"], normalize=True)
    np.testing.assert_allclose(shares[:3, :3], [[0.5, 0.5, 0], [0, 1, 0], [0.5, 0, 0.5]])
    assert np.isnan(shares[3]).all()  # class without samples


def test_confusion_table_tidy_and_unknown_labels_dropped():
    table = confusion_table(["a", "b", None, "x"], ["a", "a", "b", "a"], ["a", "b"])
    assert list(table.columns) == ["true", "pred", "count", "row_share"]
    assert table["count"].tolist() == [1, 0, 1, 0]
    assert table["row_share"].tolist() == [1.0, 0.0, 1.0, 0.0]


def test_per_class_hand_worked_with_wilson():
    table = per_class_metrics(Y, PRED, LABELS, n_boot=200).set_index("class")
    # class a: tp=1 fp=1 fn=1 tn=3 -> precision = recall = F1 = 0.5, specificity 3/4
    assert table.loc["a", ["tp", "fp", "fn", "tn", "support"]].tolist() == [1, 1, 1, 3, 2]
    assert table.loc["a", "precision"] == pytest.approx(0.5)
    assert table.loc["a", "specificity"] == pytest.approx(0.75)
    assert table.loc["b", "f1"] == pytest.approx(0.8)
    assert table.loc["b", "precision"] == pytest.approx(2 / 3)
    w = wilson_interval(2, 3)
    assert (table.loc["b", "precision_low"], table.loc["b", "precision_high"]) == pytest.approx((w.low, w.high))
    w = wilson_interval(3, 4)
    assert tuple(table.loc["a", ["specificity_low", "specificity_high"]]) == pytest.approx((w.low, w.high))
    assert (table["f1_low"] <= table["f1"]).all() and (table["f1"] <= table["f1_high"]).all()


def test_overall_matches_retcore_metrics_and_hand_values():
    table = overall_metrics(Y, PRED, LABELS, n_boot=300, seed=1).set_index("metric")
    report = classification_report(np.array([0, 0, 1, 1, 2, 2]), PROBS, LABELS)
    for name in ("accuracy", "balanced_accuracy", "macro_precision", "macro_recall", "macro_f1", "kappa"):
        assert table.loc[name, "value"] == pytest.approx(report.overall[name]), name
    # kappa: po = 4/6, pe = (2*2 + 2*3 + 2*1) / 36 = 1/3
    assert table.loc["kappa", "value"] == pytest.approx((4 / 6 - 1 / 3) / (1 - 1 / 3))
    assert (table["n"] == 6).all()
    assert (table["low"] <= table["value"]).all() and (table["value"] <= table["high"]).all()


def test_confusion_metrics_stack_matches_sklearn():
    rng = np.random.default_rng(4)
    stacks = []
    for _ in range(5):
        y, p = rng.integers(0, 4, 80), rng.integers(0, 4, 80)
        stacks.append(skm.confusion_matrix(y, p, labels=range(4)))
        one = confusion_metrics(stacks[-1])
        assert one["macro_f1"] == pytest.approx(skm.f1_score(y, p, average="macro", labels=range(4)))
        assert one["kappa"] == pytest.approx(skm.cohen_kappa_score(y, p))
        assert one["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, p))
        np.testing.assert_allclose(one["recall"], skm.recall_score(y, p, average=None, labels=range(4)))
    batch = confusion_metrics(np.stack(stacks))
    assert batch["accuracy"].shape == (5,) and batch["f1"].shape == (5, 4)
    np.testing.assert_allclose(batch["kappa"], [confusion_metrics(m)["kappa"] for m in stacks])


def test_bootstrap_width_matches_binomial_theory_and_is_seeded():
    y, probs = _random_case(n=1000)
    pred = probs.argmax(axis=1)
    labels = list(range(4))
    table = overall_metrics(y, pred, labels, n_boot=2000, seed=3).set_index("metric")
    acc = table.loc["accuracy", "value"]
    width = table.loc["accuracy", "high"] - table.loc["accuracy", "low"]
    assert width == pytest.approx(2 * 1.96 * math.sqrt(acc * (1 - acc) / 1000), rel=0.15)
    again = overall_metrics(y, pred, labels, n_boot=2000, seed=3).set_index("metric")
    pd.testing.assert_frame_equal(again, table)
    kappa = cohen_kappa(y, pred, labels, n_boot=2000, seed=3)
    assert kappa.value == pytest.approx(skm.cohen_kappa_score(y, pred))
    assert (kappa.low, kappa.high) == pytest.approx((table.loc["kappa", "low"], table.loc["kappa", "high"]))


def test_class_without_samples_and_empty_input():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = per_class_metrics(Y, PRED, LABELS + ["d"], n_boot=50).set_index("class")
        assert table.loc["d", "support"] == 0 and np.isnan(table.loc["d", "recall"])
        assert np.isnan(table.loc["d", "recall_low"]) and table.loc["d", "specificity"] == 1.0
        overall = overall_metrics(Y, PRED, LABELS + ["d"], n_boot=50).set_index("metric")
        assert overall.loc["balanced_accuracy", "value"] == pytest.approx(2 / 3)  # mean over present classes
        empty = overall_metrics([], [], LABELS, n_boot=50)
        assert empty["value"].isna().all() and (empty["n"] == 0).all()
        assert per_class_metrics([], [], LABELS, n_boot=50)["support"].tolist() == [0, 0, 0]


def test_roc_and_auroc_match_sklearn():
    y, probs = _random_case()
    labels = ["n", "d", "g", "c"]
    names = np.array(labels)[y]
    table = auroc_table(names, probs, labels).set_index("class")
    for c, name in enumerate(labels):
        assert table.loc[name, "auroc"] == pytest.approx(skm.roc_auc_score(y == c, probs[:, c]))
    assert table.loc["macro", "auroc"] == pytest.approx(table.loc[labels, "auroc"].mean())
    assert table.loc[labels, "n_pos"].sum() == len(y)
    assert table["low"].isna().all()  # no bootstrap by default
    curves = roc_curves(names, probs, labels)
    assert set(curves["class"]) == set(labels)
    first = curves[curves["class"] == "n"]
    fpr, tpr, _ = skm.roc_curve(y == 0, probs[:, 0])
    np.testing.assert_allclose(first["fpr"], fpr)
    np.testing.assert_allclose(first["tpr"], tpr)


def test_auroc_bootstrap_is_exact_and_brackets_value():
    y, probs = _random_case(n=60, seed=2)
    score = np.round(probs[:, 1], 1)  # ties
    positive = y == 1
    w = next(resample_counts(60, 5, np.random.default_rng(0)))
    boot = _auroc_w(w.astype(float), SortedRanks.of(score), positive)
    for i in range(5):
        yy, ss = np.repeat(positive, w[i]), np.repeat(score, w[i])
        assert boot[i] == pytest.approx(skm.roc_auc_score(yy, ss))
    table = auroc_table(y, probs, [0, 1, 2, 3], n_boot=300, seed=1)
    assert (table["low"] <= table["auroc"]).all() and (table["auroc"] <= table["high"]).all()


def test_auroc_class_without_positives():
    y, probs = _random_case(n=50)
    y[y == 3] = 0
    table = auroc_table(y, probs, [0, 1, 2, 3], n_boot=20).set_index("class")
    assert np.isnan(table.loc[3, "auroc"]) and np.isnan(table.loc[3, "low"])
    assert table.loc["macro", "auroc"] == pytest.approx(table.loc[[0, 1, 2], "auroc"].mean())
    assert 3 not in set(roc_curves(y, probs, [0, 1, 2, 3])["class"])


def test_reliability_and_ece():
    # bins (15): conf 0.9 x2 -> acc 0.5, gap 0.4; 0.6 x2 -> acc 1.0, gap 0.4
    conf, correct = np.array([0.9, 0.9, 0.6, 0.6]), np.array([True, False, True, True])
    assert expected_calibration_error(conf, correct) == pytest.approx(0.4)
    curve = reliability_curve(conf, correct)
    assert len(curve) == 15 and curve["count"].sum() == 4
    row = curve[curve["count"] > 0].iloc[1]
    assert (row["mean_confidence"], row["accuracy"]) == pytest.approx((0.9, 0.5))
    w = wilson_interval(1, 2)
    assert (row["accuracy_low"], row["accuracy_high"]) == pytest.approx((w.low, w.high))
    assert curve.loc[curve["count"] == 0, "accuracy"].isna().all()
    y, probs = _random_case(n=500)
    ece = expected_calibration_error(probs.max(1), probs.argmax(1) == y)
    assert ece == pytest.approx(metrics_ece(y, probs))
    assert math.isnan(expected_calibration_error(np.empty(0), np.empty(0)))
