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
