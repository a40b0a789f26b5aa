"""Pure statistics of the shortcut study (``retcore.study``)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from retcore.study import STUDY_METRICS, arm_metrics, paired_tests, seed_summary


def _frame(correct, marker_mass, marker_area, labels=None) -> pd.DataFrame:
    n = len(correct)
    return pd.DataFrame({
        "image_id": [f"i{k}" for k in range(n)], "label": labels or ["glaucoma", "normal"] * (n // 2),
        "correct": correct, "marker_mass": marker_mass, "marker_area": marker_area,
        "center_score": np.linspace(0.5, 1.5, n), "disc_score": np.ones(n) * 2.0, "lesion_mass": np.ones(n) * 0.3,
        "pointing_game": np.ones(n), "mass_accuracy": np.ones(n) * 0.4,
    })


def test_arm_metrics_by_hand() -> None:
    f = _frame([True, False, True, True], [0.2, np.nan, 0.4, np.nan], [0.01, np.nan, 0.01, 0.0])
    m = arm_metrics(f, "glaucoma")
    assert set(m) == set(STUDY_METRICS)
    assert m["accuracy"] == (0.75, 4)
    assert m["shortcut_class_accuracy"] == (1.0, 2)
    assert m["accuracy_with_marker"] == (1.0, 2) and m["accuracy_without_marker"] == (0.5, 2)
    assert m["marker_relevance_share"][0] == pytest.approx(0.3)
    assert m["marker_ratio"][0] == pytest.approx(30.0)
    assert m["disc_score_shortcut_class"] == (2.0, 2)


def test_seed_summary_t_interval() -> None:
    values = [0.7, 0.8, 0.9]
    res = pd.DataFrame({"arm": "guided", "seed": [0, 1, 2], "metric": "accuracy", "value": values})
    s = seed_summary(res).iloc[0]
    half = sps.t.ppf(0.975, 2) * np.std(values, ddof=1) / math.sqrt(3)
    assert s["mean"] == pytest.approx(0.8) and s["low"] == pytest.approx(0.8 - half) and s["seeds"] == 3
    one = seed_summary(res.iloc[:1]).iloc[0]
    assert math.isnan(one["low"])


def test_paired_tests_match_scipy() -> None:
    rng = np.random.default_rng(0)
    base = _frame([True, False] * 10, rng.uniform(0.1, 0.5, 20), np.full(20, 0.01)).assign(arm="baseline", seed=0)
    guided = base.assign(arm="guided", marker_mass=base["marker_mass"] * 0.3,
                         correct=[True] * 18 + [False, False])
    out = paired_tests(pd.concat([base, guided])).set_index("quantity")
    w = sps.wilcoxon(guided["marker_mass"], base["marker_mass"])
    assert out.loc["marker_mass", "p_value"] == pytest.approx(w.pvalue)
    assert out.loc["marker_mass", "mean_diff"] < 0
    # discordant pairs: baseline right / guided wrong = 1 (image 18), baseline wrong / guided right = 9
    assert out.loc["correct", "p_value"] == pytest.approx(sps.binomtest(1, 10, 0.5).pvalue)


def test_seed_interval_of_a_proportion_stays_in_its_range() -> None:
    res = pd.DataFrame({"arm": "baseline", "seed": [0, 1, 2] * 2,
                        "metric": ["shortcut_class_accuracy"] * 3 + ["marker_ratio"] * 3,
                        "value": [0.2, 0.9, 0.85, 0.2, 0.9, 0.85]})
    s = seed_summary(res).set_index("metric")
    assert s.loc["shortcut_class_accuracy", "low"] == 0.0 and s.loc["shortcut_class_accuracy", "high"] == 1.0
    assert s.loc["marker_ratio", "low"] < 0 < 1 < s.loc["marker_ratio", "high"], "a ratio is not clipped"
