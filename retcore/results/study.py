"""The shortcut study's reads: per-image measurements of a fine-tuning run, and a study's results."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pandas as pd

from retcore.errors import RetcoreError
from retcore.results.executor import Source, frame, tables
from retcore.results.explained import explained_target
from retcore.results.runs import run_classes

__all__ = ["StudyResults", "per_image", "study_results"]

_PER_IMAGE = """
WITH p AS (SELECT image_id, label, pred, correct FROM predictions WHERE run_id = ? AND split = ?),
z AS (
    SELECT z.image_id,
        max(CASE WHEN zone_set = 'mask' AND zone = 'marker' THEN mass_share END) AS marker_mass,
        max(CASE WHEN zone_set = 'mask' AND zone = 'marker' THEN area_share END) AS marker_area,
        max(CASE WHEN zone_set = 'mask' AND zone = 'lesion' THEN mass_share END) AS lesion_mass,
        max(CASE WHEN zone_set = 'thirds' AND zone = 'center' THEN score END) AS center_score,
        max(CASE WHEN zone_set = 'anatomy' AND zone = 'optic_disc' THEN score END) AS disc_score
    FROM zone_scores z JOIN p ON p.image_id = z.image_id WHERE z.run_id = ? AND z.method = ? AND {z_target}
    GROUP BY z.image_id
), l AS (
    SELECT l.image_id,
        max(CASE WHEN mask = 'lesion' THEN pointing_game END) AS pointing_game,
        max(CASE WHEN mask = 'lesion' THEN mass_accuracy END) AS mass_accuracy
    FROM localisation l JOIN p ON p.image_id = l.image_id WHERE l.run_id = ? AND l.method = ? AND {l_target}
    GROUP BY l.image_id
)
SELECT p.image_id, p.label, p.correct, z.marker_mass, z.marker_area, z.lesion_mass, z.center_score, z.disc_score,
       l.pointing_game, l.mass_accuracy
FROM p LEFT JOIN z ON z.image_id = p.image_id LEFT JOIN l ON l.image_id = p.image_id
ORDER BY p.image_id
"""


def per_image(q: Source, run: str, method: str, split: str = "test") -> pd.DataFrame:
    """One row per ``split`` image of fine-tuning run ``run`` (image-id order): image_id, label, correct,
    and of ``method``'s explained-class map: marker_mass / marker_area (mask zone set), lesion_mass,
    center_score (thirds), disc_score (anatomy optic_disc), pointing_game and mass_accuracy (lesion
    localisation) — NULL where not measured. The input of ``retcore.study.arm_metrics``."""
    classes = run_classes(q, run)
    z_target, z_params = explained_target(q, run, method, classes, "z.target")
    l_target, l_params = explained_target(q, run, method, classes, "l.target")
    sql = _PER_IMAGE.format(z_target=z_target, l_target=l_target)
    return frame(q, sql, (run, split, run, method, *z_params, run, method, *l_params))


@dataclass(frozen=True)
class StudyResults:
    """A shortcut study's rows: ``study`` (its run id), ``results`` (every ``study_results`` row, by
    arm, seed, metric) and ``config`` (its ``runs.config``)."""

    study: str
    results: pd.DataFrame
    config: dict[str, Any]


def study_results(q: Source, study: str, where: str = "the database") -> StudyResults:
    """The results of study run ``study`` ('latest' = the newest succeeded study); ``RetcoreError``
    when there are none (``where`` names the database in the message)."""
    if "study_results" not in tables(q):
        raise RetcoreError(f"{where} has no study results: run `retcore study shortcut` first")
    if study == "latest":
        row = frame(q, "SELECT run_id FROM runs WHERE job = 'study' AND status = 'succeeded' "
                       "ORDER BY started_at DESC LIMIT 1")
        if row.empty:
            raise RetcoreError(f"{where} has no finished study: run `retcore study shortcut` first")
        study = str(row["run_id"].iloc[0])
    results = frame(q, "SELECT * FROM study_results WHERE study_run_id = ? ORDER BY arm, seed, metric", (study,))
    cfg = frame(q, "SELECT config FROM runs WHERE run_id = ?", (study,))
    if results.empty:
        raise RetcoreError(f"no study results for {study!r} in {where}: pick a study run id from the Jobs page "
                           "or pass --study latest")
    config = cfg["config"].iloc[0] if not cfg.empty else None
    return StudyResults(study, results, json.loads(config) if config else {})
