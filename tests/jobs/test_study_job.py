"""The shortcut study on a miniature demo set: both arms per seed, results table, paired tests."""
from __future__ import annotations

import duckdb

from jobs._study_export import run_study_export
from jobs.study import run_shortcut_study
from retcore.study import STUDY_METRICS


def test_shortcut_study_writes_every_arm_seed_and_metric(tmp_path, tiny_study, capsys):
    db, study_id, base, demo = tiny_study["db"], tiny_study["study"], tiny_study["base"], tiny_study["demo"]
    out = tiny_study["printed"]
    assert "marker_relevance_share" in out and "mcnemar" in out
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute("SELECT arm, seed, metric, value, n, run_id FROM study_results WHERE study_run_id = ?",
                       [study_id]).df()
    runs = con.execute("SELECT run_id, config FROM runs WHERE job = 'finetune'").df()
    status = con.execute("SELECT status FROM runs WHERE run_id = ?", [study_id]).fetchone()[0]
    con.close()
    assert status == "succeeded"
    per_arm = rows[rows["seed"] >= 0]
    assert set(map(tuple, per_arm[["arm", "seed"]].drop_duplicates().to_numpy())) == {
        ("baseline", 0), ("baseline", 1), ("guided", 0), ("guided", 1)}
    assert set(per_arm["metric"]) == set(STUDY_METRICS)
    acc = per_arm[per_arm["metric"] == "accuracy"]
    assert acc["value"].between(0, 1).all() and (acc["n"] > 0).all()
    # four distinct trained runs of this study; the guided ones record their guide settings
    runs = runs[runs["run_id"].isin(set(rows["run_id"].dropna()))]
    assert len(runs) == 4
    guided = [c for c in runs["config"] if '"guide": "anatomy"' in c]
    assert len(guided) == 2
    paired = rows[rows["arm"] == "guided_vs_baseline"]
    assert {"mcnemar_correct_p_value", "wilcoxon_marker_mass_p_value"} <= set(paired["metric"])

    # rerunning reuses the finished fine-tuning runs (the study resumes)
    run_shortcut_study(base, demo, seeds=[0], **tiny_study["common"])
    assert "reusing finetune run" in capsys.readouterr().out

    # the markdown + figures summary (retcore export --study)
    files = run_study_export(study_id, tmp_path / "export", db=db)
    names = {f.name for f in files}
    assert {"study_arms.svg", "study_arms.png", "study_arms.pdf", "study_paired.csv", "summary.md"} <= names
    assert (tmp_path / "export" / "study_arms.pdf").read_bytes()[:5] == b"%PDF-"
    assert (tmp_path / "export" / "study_arms.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "export" / "study_arms.svg").read_text().lstrip().startswith("<svg")
    md = (tmp_path / "export" / "summary.md").read_text()
    assert "| accuracy |" in md and "McNemar" in md and "seeds [0, 1]" in md
    # differences keep 3 significant digits (a marker-share difference of ~1e-5 is not printed as 0.000)
    assert "mean difference -0.000," not in md and "mean difference +0.000," not in md


def test_warm_started_study_starts_its_arms_from_the_baseline_checkpoint(tiny_warm_study):
    """``--warm-start 1``: the seed-0 baseline is reused; the guided arm and the ``continued`` control run one
    epoch from its checkpoint; the paired tests cover every pair of arms; the config rebuilds from its options."""
    import json

    from jobs.rerun import JOB_COMMANDS
    from jobs.study import options_run_config

    db, study_id = tiny_warm_study["db"], tiny_warm_study["study"]
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT arm, seed, metric, run_id FROM study_results WHERE study_run_id = ?",
                           [study_id]).df()
        cold = con.execute("SELECT DISTINCT run_id FROM study_results WHERE study_run_id = ? AND arm = 'baseline' "
                           "AND seed = 0", [tiny_warm_study["cold_study"]]).fetchone()[0]
        runs = {r: (json.loads(c), ckpt) for r, c, ckpt in con.execute(
            "SELECT run_id, config, checkpoint FROM runs WHERE job = 'finetune'").fetchall()}
        config = json.loads(con.execute("SELECT config FROM runs WHERE run_id = ?", [study_id]).fetchone()[0])
    arm_runs = rows[rows["seed"] == 0].groupby("arm")["run_id"].first().to_dict()
    assert set(arm_runs) == {"baseline", "guided", "continued"}
    assert arm_runs["baseline"] == cold  # the cold study's baseline, reused
    baseline_ckpt = runs[cold][1]
    for arm in ("guided", "continued"):
        ft = runs[arm_runs[arm]][0]["finetune"]
        assert ft["checkpoint"] == baseline_ckpt and ft["epochs"] == 1 and ft["warmup_epochs"] == 0.5
    assert runs[arm_runs["guided"]][0]["finetune"]["guide"] == "anatomy"
    assert runs[arm_runs["continued"]][0]["finetune"]["guide"] is None
    # the two new models were built from the baseline's checkpoint (and only they were built)
    assert tiny_warm_study["created"] == [("demo", baseline_ckpt), ("demo", baseline_ckpt)]
    pairs = set(rows.loc[rows["seed"] < 0, "arm"])
    assert pairs == {"guided_vs_baseline", "continued_vs_baseline", "guided_vs_continued"}
    assert "guided_vs_continued mcnemar correct" in tiny_warm_study["printed"]
    assert config["warm_start"] == {"epochs": 1, "from": "baseline", "control": True}
    # the rerun command's options rebuild the warm start (the rest of this miniature recipe is not the demo's)
    options = JOB_COMMANDS["study"].options(config)
    assert options["warm_start"] == 1 and options["control"] is True and options["epochs"] == 1
    rebuilt = options_run_config(options)
    assert rebuilt["warm_start"] == config["warm_start"] and set(rebuilt["finetune"]) == set(config["finetune"])
    assert rebuilt["finetune"]["guided"]["epochs"] == rebuilt["finetune"]["continued"]["epochs"] == 1


def test_warm_start_needs_a_positive_number_of_epochs(tiny_study):
    import pytest

    from jobs.study import run_shortcut_study
    from retcore.errors import RetcoreError

    with pytest.raises(RetcoreError, match="--warm-start 0: pass a number of epochs >= 1"):
        run_shortcut_study(tiny_study["base"], tiny_study["demo"], seeds=[0], warm_start=0, **tiny_study["common"])
