"""Ordered schema migrations. Only jobs run them (through :func:`migrate`).

Each migration is a list of SQL statements applied in one transaction together
with the ``schema_version`` row that records it, so a database is always at a
whole version. Column names of ``runs``, ``images``, ``predictions``,
``epochs``, ``metrics`` and ``ingest_errors`` are a public interface.
"""
from __future__ import annotations

import duckdb

from retcore.errors import DatabaseError
from retcore.storage.db import transaction

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "current_version", "migrate"]

_V1 = [
    """CREATE TABLE datasets (
        dataset_id VARCHAR PRIMARY KEY,
        root VARCHAR NOT NULL,
        kind VARCHAR NOT NULL,
        classes VARCHAR[] NOT NULL,
        n_images INTEGER,
        registered_at TIMESTAMP DEFAULT current_timestamp
    )""",
    """CREATE TABLE images (
        image_id VARCHAR PRIMARY KEY,
        dataset_id VARCHAR NOT NULL,
        path VARCHAR NOT NULL,
        sha256 VARCHAR,
        label VARCHAR NOT NULL,
        split VARCHAR,
        patient_id VARCHAR,
        eye VARCHAR,
        width INTEGER,
        height INTEGER,
        mask_path VARCHAR,
        duplicate_of VARCHAR,
        conflicting_label BOOLEAN DEFAULT false,
        gt_disc_x DOUBLE,
        gt_disc_y DOUBLE,
        gt_disc_r DOUBLE,
        extra JSON
    )""",
    """CREATE TABLE runs (
        run_id VARCHAR PRIMARY KEY,
        job VARCHAR NOT NULL,
        status VARCHAR NOT NULL,
        started_at TIMESTAMP NOT NULL,
        finished_at TIMESTAMP,
        heartbeat_at TIMESTAMP,
        progress DOUBLE,
        progress_note VARCHAR,
        parent_run_id VARCHAR,
        config JSON,
        command VARCHAR,
        model VARCHAR,
        checkpoint VARCHAR,
        dataset_id VARCHAR,
        code_version VARCHAR,
        package_versions JSON,
        seed INTEGER,
        out_dir VARCHAR,
        error VARCHAR
    )""",
    """CREATE TABLE epochs (
        run_id VARCHAR NOT NULL,
        epoch INTEGER NOT NULL,
        train_loss DOUBLE,
        val_loss DOUBLE,
        lr DOUBLE,
        val_accuracy DOUBLE,
        val_macro_f1 DOUBLE,
        val_macro_auroc DOUBLE,
        val_kappa DOUBLE,
        val_score DOUBLE,
        is_best BOOLEAN,
        seconds DOUBLE,
        PRIMARY KEY (run_id, epoch)
    )""",
    """CREATE TABLE predictions (
        run_id VARCHAR NOT NULL,
        image_id VARCHAR NOT NULL,
        split VARCHAR,
        label VARCHAR,
        probs DOUBLE[] NOT NULL,
        pred VARCHAR NOT NULL,
        confidence DOUBLE NOT NULL,
        correct BOOLEAN,
        predict_run_id VARCHAR,
        PRIMARY KEY (run_id, image_id)
    )""",
    """CREATE TABLE metrics (
        run_id VARCHAR NOT NULL,
        split VARCHAR NOT NULL,
        metric VARCHAR NOT NULL,
        class_name VARCHAR NOT NULL DEFAULT '',
        value DOUBLE,
        PRIMARY KEY (run_id, split, metric, class_name)
    )""",
    """CREATE TABLE confusion (
        run_id VARCHAR NOT NULL,
        split VARCHAR NOT NULL,
        true_label VARCHAR NOT NULL,
        pred_label VARCHAR NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (run_id, split, true_label, pred_label)
    )""",
    """CREATE TABLE ingest_errors (
        path VARCHAR NOT NULL,
        reason VARCHAR NOT NULL,
        run_id VARCHAR,
        dataset_id VARCHAR,
        recorded_at TIMESTAMP DEFAULT current_timestamp
    )""",
]

# v2: explanations, zone scores, per-image quality and landmarks, faithfulness.
_V2 = [
    """CREATE TABLE explanations (
        run_id VARCHAR NOT NULL,
        image_id VARCHAR NOT NULL,
        method VARCHAR NOT NULL,
        target INTEGER NOT NULL,
        target_label VARCHAR,
        target_kind VARCHAR,
        grid_h INTEGER NOT NULL,
        grid_w INTEGER NOT NULL,
        grid FLOAT[] NOT NULL,
        heatmap_path VARCHAR NOT NULL,
        heatmap_sha256 VARCHAR NOT NULL,
        heatmap_h INTEGER NOT NULL,
        heatmap_w INTEGER NOT NULL,
        positive_sum DOUBLE,
        entropy DOUBLE,
        gini DOUBLE,
        peak_zone VARCHAR,
        explain_run_id VARCHAR,
        PRIMARY KEY (run_id, image_id, method, target)
    )""",
    """CREATE TABLE zone_scores (
        run_id VARCHAR NOT NULL,
        image_id VARCHAR NOT NULL,
        method VARCHAR NOT NULL,
        target INTEGER NOT NULL,
        zone_set VARCHAR NOT NULL,
        zone VARCHAR NOT NULL,
        mass_share DOUBLE,
        area_share DOUBLE,
        score DOUBLE,
        PRIMARY KEY (run_id, image_id, method, target, zone_set, zone)
    )""",
    """CREATE TABLE image_quality (
        image_id VARCHAR NOT NULL,
        metric VARCHAR NOT NULL,
        value DOUBLE,
        PRIMARY KEY (image_id, metric)
    )""",
    """CREATE TABLE landmarks (
        image_id VARCHAR PRIMARY KEY,
        fov_cx DOUBLE, fov_cy DOUBLE, fov_r DOUBLE,
        disc_x DOUBLE, disc_y DOUBLE, disc_r DOUBLE,
        fovea_x DOUBLE, fovea_y DOUBLE,
        eye_estimate VARCHAR,
        quality_grade VARCHAR,
        computed_at TIMESTAMP DEFAULT current_timestamp
    )""",
    """CREATE TABLE localisation (
        run_id VARCHAR NOT NULL,
        image_id VARCHAR NOT NULL,
        method VARCHAR NOT NULL,
        target INTEGER NOT NULL,
        mask VARCHAR NOT NULL,
        pointing_game DOUBLE,
        mass_accuracy DOUBLE,
        rank_accuracy DOUBLE,
        PRIMARY KEY (run_id, image_id, method, target, mask)
    )""",
    """CREATE TABLE faithfulness (
        run_id VARCHAR NOT NULL,
        split VARCHAR NOT NULL,
        method VARCHAR NOT NULL,
        test VARCHAR NOT NULL,
        fraction DOUBLE NOT NULL,
        accuracy DOUBLE,
        probability DOUBLE,
        n_images INTEGER,
        PRIMARY KEY (run_id, split, method, test, fraction)
    )""",
]

# v3: guided fine-tuning (penalty per epoch) and the shortcut study's results.
_V3 = [
    "ALTER TABLE epochs ADD COLUMN guide_penalty DOUBLE",
    """CREATE TABLE study_results (
        study VARCHAR NOT NULL,
        study_run_id VARCHAR NOT NULL,
        arm VARCHAR NOT NULL,
        seed INTEGER NOT NULL,
        metric VARCHAR NOT NULL,
        value DOUBLE,
        n INTEGER,
        run_id VARCHAR,
        explain_run_id VARCHAR,
        PRIMARY KEY (study_run_id, arm, seed, metric)
    )""",
]

# v4: where a run's log (header, outcome, full traceback of a failure) lies.
# Runs may now also end ``interrupted`` (killed, Ctrl-C); status is free text.
_V4 = [
    "ALTER TABLE runs ADD COLUMN log_path VARCHAR",
]

# v5: model-parameter randomisation sanity checks (``retcore sanity``), one row per
# (run, method, mode, seed, step, image): similarity of the map on the randomised model
# to the map on the trained one.
_V5 = [
    """CREATE TABLE sanity_checks (
        run_id VARCHAR NOT NULL,
        sanity_run_id VARCHAR,
        method VARCHAR NOT NULL,
        mode VARCHAR NOT NULL,
        seed INTEGER NOT NULL,
        step INTEGER NOT NULL,
        layer VARCHAR NOT NULL,
        image_id VARCHAR NOT NULL,
        target INTEGER,
        spearman DOUBLE,
        ssim DOUBLE,
        PRIMARY KEY (run_id, method, mode, seed, step, image_id)
    )""",
]

# v6: per-image faithfulness (``retcore.faithfulness``): curves of the target's probability in
# long format (one row per image, method, map = 'method' | 'random', baseline, unit, test and
# fraction), per-image AUCs of the method's map and of its random map, and the per-run summary
# with the verdict against random. The v2 ``faithfulness`` table stays (aggregate curves).
_V6 = [
    """CREATE TABLE faithfulness_curves (
        run_id VARCHAR NOT NULL,
        split VARCHAR NOT NULL,
        image_id VARCHAR NOT NULL,
        method VARCHAR NOT NULL,
        map VARCHAR NOT NULL,
        baseline VARCHAR NOT NULL,
        unit VARCHAR NOT NULL,
        test VARCHAR NOT NULL,
        fraction DOUBLE NOT NULL,
        target INTEGER,
        predicted INTEGER,
        probability DOUBLE,
        logit DOUBLE,
        PRIMARY KEY (run_id, split, image_id, method, map, baseline, unit, test, fraction)
    )""",
    """CREATE TABLE faithfulness_aucs (
        run_id VARCHAR NOT NULL,
        split VARCHAR NOT NULL,
        image_id VARCHAR NOT NULL,
        method VARCHAR NOT NULL,
        baseline VARCHAR NOT NULL,
        unit VARCHAR NOT NULL,
        test VARCHAR NOT NULL,
        target INTEGER,
        auc DOUBLE,
        random_auc DOUBLE,
        explain_run_id VARCHAR,
        PRIMARY KEY (run_id, split, image_id, method, baseline, unit, test)
    )""",
    """CREATE TABLE faithfulness_summary (
        run_id VARCHAR NOT NULL,
        split VARCHAR NOT NULL,
        method VARCHAR NOT NULL,
        baseline VARCHAR NOT NULL,
        unit VARCHAR NOT NULL,
        test VARCHAR NOT NULL,
        better VARCHAR,
        n_images INTEGER,
        auc DOUBLE,
        random_auc DOUBLE,
        difference DOUBLE,
        difference_low DOUBLE,
        difference_high DOUBLE,
        wilcoxon_p DOUBLE,
        effect DOUBLE,
        beats_random BOOLEAN,
        verdict VARCHAR,
        seconds_per_image DOUBLE,
        explain_run_id VARCHAR,
        PRIMARY KEY (run_id, split, method, baseline, unit, test)
    )""",
]

# v7: summaries jobs compute once when they write, so pages over a million images read a few rows
# (``retcore.results.summaries`` defines each by its SELECT): per run and split the counts per
# (label, prediction), the cutoffs of the image-id samples and the classification report (Arrow
# streams); per run, split and method the zone-score distribution per zone and class and the first
# rows of every Cases gallery with their maps. Writes that change their inputs delete them; ``retcore summarize``
# fills them in for older databases.
_V7 = [
    """CREATE TABLE class_counts (
        run_id VARCHAR NOT NULL,
        split VARCHAR NOT NULL,
        label VARCHAR,
        pred VARCHAR NOT NULL,
        n INTEGER NOT NULL,
        n_correct INTEGER NOT NULL
    )""",
    """CREATE TABLE sample_cutoffs (
        run_id VARCHAR NOT NULL,
        split VARCHAR NOT NULL,
        grouping VARCHAR NOT NULL,
        class VARCHAR NOT NULL,
        size INTEGER NOT NULL,
        n INTEGER NOT NULL,
        cutoff VARCHAR NOT NULL,
        PRIMARY KEY (run_id, split, grouping, class, size)
    )""",
    """CREATE TABLE zone_summaries (
        run_id VARCHAR NOT NULL,
        split VARCHAR NOT NULL,
        method VARCHAR NOT NULL,
        zone_set VARCHAR NOT NULL,
        zone VARCHAR NOT NULL,
        grouping VARCHAR NOT NULL,
        class VARCHAR NOT NULL,
        n INTEGER NOT NULL,
        mean DOUBLE,
        sd DOUBLE,
        q05 DOUBLE,
        q25 DOUBLE,
        median DOUBLE,
        q75 DOUBLE,
        q95 DOUBLE,
        mass_mean DOUBLE,
        PRIMARY KEY (run_id, split, method, zone_set, zone, grouping, class)
    )""",
    """CREATE TABLE gallery_rows (
        run_id VARCHAR NOT NULL,
        split VARCHAR NOT NULL,
        method VARCHAR NOT NULL,
        class VARCHAR NOT NULL,
        kind VARCHAR NOT NULL,
        ord VARCHAR NOT NULL,
        rank INTEGER NOT NULL,
        image_id VARCHAR NOT NULL,
        label VARCHAR,
        pred VARCHAR,
        confidence DOUBLE,
        probs DOUBLE[],
        correct BOOLEAN,
        center DOUBLE,
        drift DOUBLE,
        target INTEGER,
        target_kind VARCHAR,
        target_label VARCHAR,
        positive_sum DOUBLE,
        grid_h INTEGER,
        grid_w INTEGER,
        grid FLOAT[],
        PRIMARY KEY (run_id, split, method, class, kind, ord, rank)
    )""",
    """CREATE TABLE split_reports (
        run_id VARCHAR NOT NULL,
        split VARCHAR NOT NULL,
        method VARCHAR NOT NULL DEFAULT '',
        report VARCHAR NOT NULL,
        params VARCHAR NOT NULL,
        part VARCHAR NOT NULL,
        frame BLOB NOT NULL,
        source VARCHAR,
        computed_at TIMESTAMP DEFAULT current_timestamp,
        PRIMARY KEY (run_id, split, method, report, params, part)
    )""",
]

MIGRATIONS: list[list[str]] = [_V1, _V2, _V3, _V4, _V5, _V6, _V7]
SCHEMA_VERSION = len(MIGRATIONS)


def current_version(con: duckdb.DuckDBPyConnection) -> int:
    """Schema version of the open database (0 when it has no schema yet)."""
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version'"
    ).fetchone()[0]
    if not exists:
        return 0
    row = con.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def migrate(con: duckdb.DuckDBPyConnection) -> int:
    """Apply the missing migrations in order; return the resulting version.

    A database newer than this code raises ``DatabaseError`` (upgrade retcore).
    """
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
        "applied_at TIMESTAMP DEFAULT current_timestamp)"
    )
    version = current_version(con)
    if version > SCHEMA_VERSION:
        raise DatabaseError(
            f"database schema v{version} is newer than this retcore (v{SCHEMA_VERSION}); upgrade retcore"
        )
    for number in range(version + 1, SCHEMA_VERSION + 1):
        with transaction(con):
            for statement in MIGRATIONS[number - 1]:
                con.execute(statement)
            con.execute("INSERT INTO schema_version (version) VALUES (?)", [number])
    return SCHEMA_VERSION
