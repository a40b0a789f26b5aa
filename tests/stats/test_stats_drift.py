"""Jensen-Shannon / Wasserstein drift with permutation p-values, and the drift matrix."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon

from retcore.stats.drift import (
    drift_matrix,
    heatmap_drift,
    js_distance,
    mean_heatmap,
    normalise_heatmaps,
    score_drift,
    wasserstein,
)


def _maps(n, hot, seed):
    """n noisy 6x6 maps with extra mass in column ``hot``, normalised."""
    rng = np.random.default_rng(seed)
    maps = rng.random((n, 6, 6))
    maps[:, :, hot] += 2.0
    return normalise_heatmaps(maps)


def test_js_distance_known_values_and_scipy():
    p, q = np.array([1.0, 0.0]), np.array([0.5, 0.5])
    # M = (0.75, 0.25): KL(p||M) = log2(4/3), KL(q||M) = (log2(2/3) + 1) / 2
    js = 0.5 * (math.log2(4 / 3) + 0.5 * (math.log2(2 / 3) + 1))
    assert js_distance(p, q) == pytest.approx(math.sqrt(js))
    rng = np.random.default_rng(0)
    a, b = rng.random((14, 14)), rng.random((14, 14))
    assert js_distance(a, b) == pytest.approx(jensenshannon(a.ravel(), b.ravel(), base=2))
    assert js_distance(a, a * 3) == pytest.approx(0.0, abs=1e-7)
    assert js_distance([[1, 0], [0, 0]], [[0, 0], [0, 1]]) == pytest.approx(1.0)
    assert math.isnan(js_distance(np.zeros(4), np.ones(4)))
    with pytest.raises(ValueError):
        js_distance(np.ones(4), np.ones(5))


def test_normalise_and_mean_heatmap():
    maps = np.array([[[1.0, -1.0], [1.0, 2.0]], [[0.0, 0.0], [-1.0, 0.0]]])
    norm = normalise_heatmaps(maps)
    np.testing.assert_allclose(norm[0], [[0.25, 0.0], [0.25, 0.5]])
    assert np.isnan(norm[1]).all()  # no positive mass
    np.testing.assert_allclose(mean_heatmap(norm), norm[0])
    assert np.isnan(mean_heatmap(norm[1:])).all()


def test_heatmap_drift_identical_and_shifted():
    a = _maps(30, hot=1, seed=1)
    same = heatmap_drift(a, a, n_permutations=200, seed=0)
    assert same.distance == pytest.approx(0.0, abs=1e-7) and same.p_value == 1.0
    assert (same.n_a, same.n_b, same.metric) == (30, 30, "jensen-shannon")
    null = heatmap_drift(a, _maps(40, hot=1, seed=2), n_permutations=200, seed=0)
    assert null.p_value > 0.05
    shifted = heatmap_drift(a, _maps(40, hot=4, seed=2), n_permutations=200, seed=0)
    assert shifted.p_value == pytest.approx(1 / 201)
    b = _maps(40, hot=4, seed=2)
    assert shifted.distance == pytest.approx(js_distance(mean_heatmap(a), mean_heatmap(b)))
    assert shifted == heatmap_drift(a, _maps(40, hot=4, seed=2), n_permutations=200, seed=0)


def test_heatmap_drift_edge_cases():
    a = _maps(5, hot=1, seed=1)
    empty = heatmap_drift(a, a[:0], n_permutations=10)
    assert math.isnan(empty.distance) and math.isnan(empty.p_value) and empty.n_b == 0
    no_perm = heatmap_drift(a, _maps(5, hot=2, seed=3), n_permutations=0)
    assert no_perm.distance > 0 and math.isnan(no_perm.p_value)
    with_nan = heatmap_drift(np.concatenate([a, np.full((1, 6, 6), np.nan)]), a, n_permutations=10)
    assert with_nan.n_a == 5


def test_score_drift_matches_scipy_and_permutation_sanity():
    rng = np.random.default_rng(3)
    a = np.round(rng.normal(1.0, 0.5, 60), 1)  # ties
    b = np.round(rng.normal(1.0, 0.5, 45), 1)
    res = score_drift(a, b, n_permutations=300, seed=1)
    assert res.distance == pytest.approx(sps.wasserstein_distance(a, b))
    assert res.distance == pytest.approx(wasserstein(a, b))
    assert res.p_value > 0.05
    assert score_drift(a, a, n_permutations=100).p_value == 1.0
    shifted = score_drift(a, b + 1.0, n_permutations=300, seed=1)
    assert shifted.p_value < 0.05 and shifted.distance == pytest.approx(sps.wasserstein_distance(a, b + 1.0))
    assert math.isnan(score_drift([], b).distance) and math.isnan(wasserstein([np.nan], b))


def test_drift_matrix_reference_and_pairwise():
    rng = np.random.default_rng(4)
    groups = np.repeat(["good", "usable", "poor"], 40)
    scores = rng.normal(0, 1, 120) + (groups == "poor") * 2.0
    vs_ref = drift_matrix(scores, groups, reference="good", n_permutations=200, seed=0)
    assert list(vs_ref.columns) == ["group_a", "group_b", "metric", "distance", "p_value", "p_holm",
                                    "n_a", "n_b"]
    assert list(zip(vs_ref["group_a"], vs_ref["group_b"])) == [("poor", "good"), ("usable", "good")]
    poor = vs_ref.iloc[0]
    assert poor["p_value"] < 0.01 and poor["metric"] == "wasserstein" and (poor["n_a"], poor["n_b"]) == (40, 40)
    assert poor["distance"] == pytest.approx(wasserstein(scores[groups == "poor"], scores[groups == "good"]))
    assert vs_ref.iloc[1]["p_value"] > 0.05
    assert (vs_ref["p_holm"] >= vs_ref["p_value"]).all()
    pairwise = drift_matrix(scores, groups, n_permutations=50, seed=0)
    assert len(pairwise) == 3
    assert drift_matrix(scores, groups, reference="good", n_permutations=200, seed=0).equals(vs_ref)
    with pytest.raises(ValueError):
        drift_matrix(scores, groups, reference="missing")


def test_drift_matrix_heatmaps_and_missing_groups():
    maps = np.concatenate([_maps(20, hot=1, seed=5), _maps(20, hot=1, seed=6), _maps(20, hot=4, seed=7)])
    groups = np.array(["a"] * 20 + ["b"] * 20 + ["c"] * 19 + [None])
    table = drift_matrix(maps, groups, reference="a", n_permutations=100, seed=0).set_index("group_a")
    assert (table["metric"] == "jensen-shannon").all() and table.loc["c", "n_a"] == 19
    assert table.loc["c", "p_value"] < 0.05 < table.loc["b", "p_value"]
