"""The sanity checks' reads (``retcore sanity``, table ``sanity_checks``): per-image rows, the
per-step means with bootstrap intervals, and the verdict per method.

Each row of ``sanity_checks`` compares one method's map of one image on a randomised model
(``mode`` cascading / independent, ``step``, ``layer`` = the group that step randomises; or
``mode = 'data'``, ``layer = 'labels'``: the model fine-tuned on shuffled labels) with its map
on the trained model (``spearman``, ``ssim``; see :mod:`retcore.sanity`). Steps are
numbered from the head (0) down to ``patch_embed`` (the last; in cascading mode every weight
is then random). The means, intervals and verdicts are those of
:func:`retcore.sanity.summarize` and :func:`retcore.sanity.verdicts`. A database without the
table (older than schema v5) reads as empty.
"""
from __future__ import annotations

import json

import pandas as pd

from retcore.results.executor import Source, frame, tables
from retcore.sanity.summary import SURVIVAL_THRESHOLD, summarize, verdicts
from retcore.stats import N_BOOT

__all__ = ["ROW_COLUMNS", "sanity_costs", "sanity_rows", "sanity_seeds", "sanity_summary", "sanity_verdicts"]

#: Columns of :func:`sanity_rows`.
ROW_COLUMNS = ["run_id", "sanity_run_id", "method", "mode", "seed", "step", "layer", "image_id", "target",
               "spearman", "ssim"]


def sanity_seeds(q: Source, run: str) -> list[int]:
    """Randomisation seeds with rows for fine-tuning run ``run``, ascending."""
    if "sanity_checks" not in tables(q):
        return []
    return [int(s) for s in frame(q, "SELECT DISTINCT seed FROM sanity_checks WHERE run_id = ? ORDER BY seed",
                                  (run,))["seed"]]


def _seed(q: Source, run: str, seed: int | None) -> int | None:
    if seed is not None:
        return seed
    seeds = sanity_seeds(q, run)
    return seeds[0] if seeds else None


def sanity_rows(q: Source, run: str, *, seed: int | None = None, methods: list[str] | None = None,
                mode: str | None = None) -> pd.DataFrame:
    """Per-image rows of ``run`` (columns :data:`ROW_COLUMNS`), ordered by method, mode, step, image.

    ``seed`` None = the lowest stored seed; ``methods`` / ``mode`` filter when given.
    """
    seed = _seed(q, run, seed)
    if seed is None:
        return pd.DataFrame(columns=ROW_COLUMNS)
    sql = f"SELECT {', '.join(ROW_COLUMNS)} FROM sanity_checks WHERE run_id = ? AND seed = ?"
    params: list = [run, int(seed)]
    if methods is not None:
        sql += " AND list_contains(?::VARCHAR[], method)"
        params.append(list(methods))
    if mode is not None:
        sql += " AND mode = ?"
        params.append(mode)
    return frame(q, sql + " ORDER BY method, mode, step, image_id", params)


def sanity_summary(q: Source, run: str, *, seed: int | None = None, methods: list[str] | None = None,
                   n_boot: int = N_BOOT, level: float = 0.95) -> pd.DataFrame:
    """Per (method, mode, step) of ``run``: layer, n_images and the mean spearman / ssim over the images
    with percentile-bootstrap intervals (``*_low``, ``*_high``); the curves of the Methods page."""
    return summarize(sanity_rows(q, run, seed=seed, methods=methods), n_boot=n_boot, level=level)


def sanity_verdicts(q: Source, run: str, *, seed: int | None = None, methods: list[str] | None = None,
                    threshold: float = SURVIVAL_THRESHOLD, n_boot: int = N_BOOT, test: str = "model") -> pd.DataFrame:
    """One row per method of ``run``: the similarities with intervals at the step ``test`` reads
    (``'model'``: the fully randomised cascading step; ``'data'``: the model fine-tuned on shuffled
    labels), ``flagged`` (True = its maps survive randomisation, False = passes, NA = not run)
    and a one-line ``verdict``."""
    return verdicts(sanity_summary(q, run, seed=seed, methods=methods, n_boot=n_boot), threshold, test=test)


def sanity_costs(q: Source, run: str) -> pd.DataFrame:
    """Seconds per image and method of ``run``'s randomisation checks, as ``retcore sanity`` timed them
    (the randomised maps and their comparison over every step it ran; columns method,
    seconds_per_image, mode). The latest sanity run that timed a method wins; runs recorded before
    the timing was stored (and the study's data test) have none."""
    columns = ["method", "seconds_per_image", "mode"]
    if "runs" not in tables(q):
        return pd.DataFrame(columns=columns)
    runs = frame(q, "SELECT config FROM runs WHERE job = 'sanity' AND parent_run_id = ? AND status = 'succeeded' "
                    "ORDER BY started_at", (run,))
    latest: dict[str, dict] = {}
    for text in runs["config"]:
        try:
            config = json.loads(text) if isinstance(text, str) else dict(text or {})
        except (TypeError, ValueError):
            continue
        for method, seconds in (config.get("seconds_per_image") or {}).items():
            latest[method] = {"method": method, "seconds_per_image": float(seconds), "mode": config.get("mode")}
    return pd.DataFrame(list(latest.values()), columns=columns).sort_values("method", ignore_index=True)
