import numpy as np
import pytest

from retcore.metrics import classification_report, expected_calibration_error, selection_score


def test_hand_worked_three_class_case():
    y = np.array([0, 0, 1, 1, 2, 2])
    probs = np.array([
        [0.8, 0.1, 0.1],
        [0.3, 0.6, 0.1],  # 0 predicted as 1
        [0.1, 0.7, 0.2],
        [0.2, 0.7, 0.1],
        [0.1, 0.2, 0.7],
        [0.5, 0.1, 0.4],  # 2 predicted as 0
    ])
    r = classification_report(y, probs, ["a", "b", "c"])
    assert r.overall["accuracy"] == pytest.approx(4 / 6)
    np.testing.assert_array_equal(r.confusion, [[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    # class a: tp=1 fp=1 fn=1 -> p=r=f1=0.5; specificity = tn/(tn+fp) = 3/4
    assert r.per_class["precision"]["a"] == pytest.approx(0.5)
    assert r.per_class["specificity"]["a"] == pytest.approx(0.75)
    assert r.per_class["recall"]["b"] == pytest.approx(1.0)
    assert r.per_class["precision"]["b"] == pytest.approx(2 / 3)
    # kappa: po = 4/6, pe = sum(row_i * col_i)/36 = (2*2 + 2*3 + 2*1)/36 = 12/36
    assert r.overall["kappa"] == pytest.approx((4 / 6 - 1 / 3) / (1 - 1 / 3))
    assert r.overall["balanced_accuracy"] == pytest.approx((0.5 + 1 + 0.5) / 3)
    assert selection_score(r) == pytest.approx(
        np.mean([r.overall["macro_f1"], r.overall["macro_auroc"], r.overall["kappa"]]))
    rows = r.rows()
    assert ("accuracy", "", pytest.approx(4 / 6)) in rows and ("f1", "b", pytest.approx(0.8)) in rows


def test_ece_hand_worked():
    y = np.array([0, 1, 0, 1])
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
    # bins (15): conf 0.9 x2 -> acc 0.5, gap 0.4 weight 0.5; 0.6 x2 -> acc 1.0, gap 0.4 weight 0.5
    assert expected_calibration_error(y, probs) == pytest.approx(0.4)


def test_absent_class_gives_nan_auroc_not_a_crash():
    y = np.array([0, 0, 1, 1])
    probs = np.array([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.3, 0.6, 0.1]])
    r = classification_report(y, probs, ["a", "b", "c"])
    assert np.isnan(r.per_class["auroc"]["c"])
    assert r.overall["macro_auroc"] == pytest.approx(1.0)
    assert r.overall["accuracy"] == 1.0
