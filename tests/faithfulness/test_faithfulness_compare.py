"""Method vs random map: paired difference, Wilcoxon test and the verdict line."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from retcore.faithfulness import SUMMARY_COLUMNS, compare_with_random, verdict


def _aucs(method: str, test: str, auc: np.ndarray, random_auc: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"method": method, "baseline": "blur", "unit": "token", "test": test,
                         "image_id": [f"i{k}" for k in range(len(auc))], "auc": auc, "random_auc": random_auc})


def test_verdicts_follow_the_better_side():
    rng = np.random.default_rng(0)
    r = rng.uniform(0.4, 0.6, 40)
    frame = pd.concat([
        _aucs("good", "deletion_morf", r - 0.1 + rng.normal(0, 0.01, 40), r),
        _aucs("bad", "deletion_morf", r + 0.1 + rng.normal(0, 0.01, 40), r),
        _aucs("same", "deletion_morf", r + rng.normal(0, 0.05, 40), r),
        _aucs("good", "insertion", r + 0.1 + rng.normal(0, 0.01, 40), r),
    ])
    summary = compare_with_random(frame, n_boot=200)
    assert list(summary.columns) == SUMMARY_COLUMNS
    out = summary.set_index(["method", "test"])
    good = out.loc[("good", "deletion_morf")]
    assert good["beats_random"] and good["difference"] == pytest.approx(-0.1, abs=0.01)
    assert good["difference_high"] < 0 and good["wilcoxon_p"] < 0.001 and good["n_images"] == 40
    assert good["verdict"].startswith("beats random on deletion_morf (lower AUC is better)")
    assert out.loc[("bad", "deletion_morf"), "verdict"].startswith("worse than random")
    assert not out.loc[("bad", "deletion_morf"), "beats_random"]
    assert out.loc[("same", "deletion_morf"), "verdict"].startswith("does not beat random")
    assert out.loc[("good", "insertion"), "beats_random"]
    assert out.loc[("good", "insertion"), "better"] == "higher"


def test_verdict_line():
    line = verdict("deletion_morf", -0.05, -0.07, -0.03, 0.0004, 12)
    assert line == ("beats random on deletion_morf (lower AUC is better): difference to random -0.050 "
                    "[-0.070, -0.030], Wilcoxon p <0.001, n=12")
    assert verdict("insertion", -0.05, -0.07, -0.03, 0.01, 12).startswith("worse than random")
    assert verdict("insertion", 0.05, 0.01, 0.09, 0.2, 12).startswith("does not beat random")  # p too large
    assert verdict("insertion", float("nan"), float("nan"), float("nan"), float("nan"), 0) == "insertion: not measured"


def test_float_rounding_differences_are_not_an_effect():
    """A model whose output ignores the input: AUCs equal up to ~1e-7, yet a consistent sign makes p small."""
    r = np.full(24, 0.25)
    frame = _aucs("rollout", "insertion", r + 3e-7, r)
    row = compare_with_random(frame, n_boot=200).iloc[0]
    assert row["wilcoxon_p"] < 0.05 and row["difference_low"] > 0, "the test alone would call it significant"
    assert not row["beats_random"]
    assert row["verdict"].startswith("does not beat random") and "below the 0.001 counted as an effect" in row["verdict"]
    assert verdict("insertion", 0.0012, 0.0011, 0.0013, 0.001, 24).startswith("beats random")
