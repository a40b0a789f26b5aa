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

__all__ = ["StudyResults", "arm_label", "arm_labels", "paired_arms", "per_image", "study_examples", "study_results", "study_runs"]

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


def study_runs(q: Source) -> pd.DataFrame:
    """Finished studies with results, newest first: run_id, started_at, config (parsed dict), arms
    (the guided arm's label, :func:`arm_label`)."""
    if "study_results" not in tables(q):
        return pd.DataFrame(columns=["run_id", "started_at", "config", "arm"])
    rows = frame(q, "SELECT r.run_id, r.started_at, r.config FROM runs r WHERE r.job = 'study' AND r.status = "
                    "'succeeded' AND EXISTS (SELECT 1 FROM study_results s WHERE s.study_run_id = r.run_id) "
                    "ORDER BY r.started_at DESC")
    rows["config"] = [json.loads(c) if c else {} for c in rows["config"]]
    rows["arm"] = [arm_label(c) for c in rows["config"]]
    return rows


def arm_label(config: dict[str, Any]) -> str:
    """A study's guided arm named by its guide: ``guided: <guide>/<form> x<weight>`` (e.g.
    ``guided: anatomy/relevance x1``), from the study's ``runs.config``."""
    ft = config.get("finetune", {}).get("guided", {})
    guide, form, weight = ft.get("guide"), ft.get("guide_form", "relevance"), ft.get("guide_weight")
    if not guide:
        return "guided"
    label = f"guided: {guide}/{form}" + (f" x{weight:g}" if isinstance(weight, int | float) else "")
    warm = _warm_epochs(config)
    return label + (f", +{warm} ep from baseline" if warm else "")


def _warm_epochs(config: dict[str, Any]) -> int | None:
    warm = config.get("warm_start") or {}
    return int(warm["epochs"]) if warm.get("epochs") else None


def arm_labels(config: dict[str, Any]) -> dict[str, str]:
    """Display names of a study's arms other than ``baseline``, by ``study_results.arm``: ``guided`` ->
    :func:`arm_label`; ``continued`` (a ``--warm-start`` study's control: the same epochs from the
    baseline checkpoint without a guide) -> ``continued: +<E> ep from baseline, no guide``."""
    labels = {"guided": arm_label(config)}
    warm = _warm_epochs(config)
    if warm:
        labels["continued"] = f"continued: +{warm} ep from baseline, no guide"
    return labels


def paired_arms(results: pd.DataFrame) -> list[tuple[str, str, str]]:
    """``(pair, b, a)`` for each paired-test arm ``'<b>_vs_<a>'`` of a study's ``study_results`` rows, in
    order of appearance (``jobs.study.ARM_PAIRS`` writes them)."""
    pairs = [a for a in dict.fromkeys(results["arm"]) if "_vs_" in a]
    return [(pair, *pair.split("_vs_", 1)) for pair in pairs]  # type: ignore[misc]


_EXAMPLES = """
WITH marked AS (
    SELECT image_id, max(area_share) AS marker_area FROM zone_scores
    WHERE run_id = ? AND method = ? AND zone_set = 'mask' AND zone = 'marker' AND area_share > 0
    GROUP BY image_id
), chosen AS (
    SELECT m.image_id, m.marker_area FROM marked m JOIN images i ON i.image_id = m.image_id
    WHERE i.label = ? ORDER BY m.image_id LIMIT ?
)
SELECT e.run_id, e.image_id, {image_path} AS path, i.label, e.target_label, e.target_kind, e.grid, e.grid_h, e.grid_w,
       e.heatmap_path, e.heatmap_sha256, e.positive_sum, c.marker_area, z.mass_share AS marker_mass
FROM explanations e JOIN chosen c ON c.image_id = e.image_id JOIN images i ON i.image_id = e.image_id
LEFT JOIN datasets d ON d.dataset_id = i.dataset_id
LEFT JOIN zone_scores z ON z.run_id = e.run_id AND z.image_id = e.image_id AND z.method = e.method
     AND z.target = e.target AND z.zone_set = 'mask' AND z.zone = 'marker'
WHERE e.method = ? AND list_contains(?::VARCHAR[], e.run_id) AND e.target_kind = 'pred'
ORDER BY e.image_id, e.run_id
"""


def study_examples(q: Source, reference_run: str, run_ids: list[str], method: str, shortcut_class: str,
                   limit: int = 6) -> pd.DataFrame:
    """Maps of ``method`` (explaining the prediction) of each run in ``run_ids`` on the first ``limit``
    test images of ``shortcut_class`` that carry the planted marker (by ``reference_run``'s mask
    zones): one row per (image, run) with the image path (resolved against its dataset root) and
    label, the map (grid and heatmap file), the marker's area share and its share of the map's
    positive relevance (marker_mass)."""
    from retcore.results.cases import IMAGE_PATH

    return frame(q, _EXAMPLES.format(image_path=IMAGE_PATH),
                 (reference_run, method, shortcut_class, int(limit), method, list(run_ids)))
