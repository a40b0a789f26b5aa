"""Reads of the per-image faithfulness (``retcore explain``, schema v6; :mod:`retcore.faithfulness`).

Tables: ``faithfulness_curves`` (long format: one row per run, split, image, method, ``map``
= 'method' | 'random', baseline, unit, test and fraction, with the target's probability and
logit and the class predicted), ``faithfulness_aucs`` (per image: the AUC of the method's
map and of the random map of the same resolution) and ``faithfulness_summary`` (per method,
baseline, unit and test: mean AUCs, the mean difference to random with its bootstrap
interval, the Wilcoxon p-value and the verdict line). The v2 ``faithfulness`` table (curves
averaged over images) is not read here. A database older than v6 reads as empty.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from retcore.results.executor import Source, frame, tables
from retcore.stats import N_BOOT, bootstrap_mean

__all__ = ["AUC_COLUMNS", "CURVE_COLUMNS", "SUMMARY_COLUMNS", "faithfulness_aucs", "faithfulness_curves",
           "faithfulness_mean_curves", "faithfulness_summary"]

#: Columns of :func:`faithfulness_aucs`.
AUC_COLUMNS = ["run_id", "split", "image_id", "method", "baseline", "unit", "test", "target", "auc", "random_auc"]
#: Columns of :func:`faithfulness_curves`.
CURVE_COLUMNS = ["run_id", "split", "image_id", "method", "map", "baseline", "unit", "test", "fraction", "target",
                 "predicted", "probability", "logit"]
#: Columns of :func:`faithfulness_summary`.
SUMMARY_COLUMNS = ["run_id", "split", "method", "baseline", "unit", "test", "better", "n_images", "auc", "random_auc",
                   "difference", "difference_low", "difference_high", "wilcoxon_p", "effect", "beats_random",
                   "verdict", "seconds_per_image"]


def _where(run: str, split: str, methods: list[str] | None, baseline: str | None, unit: str | None,
           test: str | None) -> tuple[str, list]:
    sql, params = " WHERE run_id = ? AND split = ?", [run, split]
    if methods is not None:
        sql += " AND list_contains(?::VARCHAR[], method)"
        params.append(list(methods))
    for name, value in (("baseline", baseline), ("unit", unit), ("test", test)):
        if value is not None:
            sql += f" AND {name} = ?"
            params.append(value)
    return sql, params


def _read(q: Source, table: str, cols: list[str], order: str, run: str, split: str, methods, baseline, unit,
          test) -> pd.DataFrame:
    if table not in tables(q):
        return pd.DataFrame(columns=cols)
    where, params = _where(run, split, methods, baseline, unit, test)
    return frame(q, f"SELECT {', '.join(cols)} FROM {table}{where} ORDER BY {order}", params)


def faithfulness_aucs(q: Source, run: str, split: str = "test", *, methods: list[str] | None = None,
                      baseline: str | None = None, unit: str | None = None, test: str | None = None) -> pd.DataFrame:
    """Per-image AUCs of fine-tuning run ``run`` on ``split`` (columns :data:`AUC_COLUMNS`: the
    method's map ``auc`` and its random map's ``random_auc``), ordered by method, baseline, unit, test,
    image; the filters apply when given."""
    return _read(q, "faithfulness_aucs", AUC_COLUMNS, "method, baseline, unit, test, image_id", run, split,
                 methods, baseline, unit, test)


def faithfulness_curves(q: Source, run: str, split: str = "test", *, methods: list[str] | None = None,
                        baseline: str | None = None, unit: str | None = None, test: str | None = None
                        ) -> pd.DataFrame:
    """Per-image curves (columns :data:`CURVE_COLUMNS`), ordered by method, map, baseline, unit, test,
    image, fraction."""
    return _read(q, "faithfulness_curves", CURVE_COLUMNS,
                 "method, map, baseline, unit, test, image_id, fraction", run, split, methods, baseline, unit, test)


def faithfulness_mean_curves(q: Source, run: str, split: str = "test", *, methods: list[str] | None = None,
                             baseline: str | None = None, unit: str | None = None, n_boot: int = N_BOOT,
                             seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Mean probability over images per (method, map, baseline, unit, test, fraction) with a
    percentile-bootstrap interval over images: columns those keys, ``n_images``, ``probability``,
    ``low``, ``high`` (the curves of the Methods page; ``map`` 'random' is the method's random map)."""
    curves = faithfulness_curves(q, run, split, methods=methods, baseline=baseline, unit=unit)
    keys = ["method", "map", "baseline", "unit", "test", "fraction"]
    rows = []
    for key, g in curves.groupby(keys, sort=True):
        est = bootstrap_mean(g["probability"].to_numpy(np.float64), n_boot=n_boot, seed=seed, level=level)
        rows.append({**dict(zip(keys, key)), "n_images": len(g), "probability": est.value, "low": est.low,
                     "high": est.high})
    return pd.DataFrame(rows, columns=[*keys, "n_images", "probability", "low", "high"])


def faithfulness_summary(q: Source, run: str, split: str = "test", *, methods: list[str] | None = None,
                         baseline: str | None = None, unit: str | None = None, test: str | None = None
                         ) -> pd.DataFrame:
    """The stored summary per (method, baseline, unit, test) (columns :data:`SUMMARY_COLUMNS`): mean
    AUC of the map and of the random map, the mean difference (method - random) with its bootstrap
    interval, the Wilcoxon p-value, ``beats_random`` and the ``verdict`` line."""
    return _read(q, "faithfulness_summary", SUMMARY_COLUMNS, "method, baseline, unit, test", run, split, methods,
                 baseline, unit, test)
