"""Rerun commands: every recorded run's command, parsed back with the ``retcore`` app, gives its config."""
from __future__ import annotations

import importlib
import json
import shlex
import shutil
from pathlib import Path

import duckdb
import pytest
import typer.main
from typer.testing import CliRunner

from jobs.cli import app
from jobs.finetune import finetune_run_config
from jobs.rerun import rerun
from retcore.train.config import FinetuneConfig

TINY = ["--model", "demo", "--img-size", "64", "--epochs", "1", "--batch-size", "8", "--num-workers", "0",
        "--device", "cpu"]
# the demo recipe at the size of the tests' tiny runs (the study builds its arms from it)
TINY_DEMO_RECIPE = dict(model="demo", img_size=64, epochs=1, warmup_epochs=0, batch_size=8, blr=1e-3,
                        layer_decay=1.0, drop_path=0.0, auto_augment=None, re_prob=0.0, crop_scale=(0.8, 1.0),
                        num_workers=0, device="cpu")
# module that builds each job's runs.config from its command-line options
CONFIG_OF = {"ingest": "jobs.ingest", "finetune": "jobs.finetune", "predict": "jobs.predict",
             "explain": "jobs.explain", "sanity": "jobs.sanity", "study": "jobs.study"}


def _invoke(args: list[str]) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)


def _runs(db: Path):
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("SELECT run_id, job, config, command, status FROM runs ORDER BY started_at").df()


@pytest.fixture(scope="module")
def every_kind(tmp_path_factory, tiny_explained, tiny_demo):
    """A database with runs of every job, started from Python, from their CLI, by the pipeline and by the study."""
    import jobs.pipeline

    root = tmp_path_factory.mktemp("rerun")
    db = root / "results.duckdb"
    shutil.copy(tiny_explained["db"], db)  # finetune, predict val + test, explain: started from Python
    out = ["--db", str(db), "--results", str(root / "results")]
    data = ["--data", str(tiny_demo)]
    _invoke(["ingest", *data, "--val", "0.2", "--split-seed", "1", "--strict", "--db", str(db)])
    # guided runs, with non-default recipe and split values
    _invoke(["finetune", *data, *TINY, *out, "--guide", "center", "--guide-form", "input_gradient",
             "--guide-weight", "0.5", "--guide-radius", "0.5", "--warmup-epochs", "0.5", "--blr", "0.002",
             "--min-lr", "1e-05", "--weight-decay", "0.01", "--layer-decay", "0.9", "--drop-path", "0.05",
             "--smoothing", "0.0", "--auto-augment", "none", "--re-prob", "0.1",
             "--crop-scale-min", "0.5", "--global-pool", "token", "--no-amp", "--seed", "3", "--val", "0.2",
             "--split-seed", "1"])
    _invoke(["finetune", *data, *TINY, *out, "--guide", "anatomy", "--guide-weight", "2.0", "--lr", "0.0005",
             "--eye", "left", "--include-conflicting", "--patient-regex", r"(?P<patient>\d+)_", "--test", "0.2",
             "--auto-augment", "none"])
    _invoke(["finetune", *data, *TINY, *out, "--guide", "mask", "--guide-mask-bits", "3", "--auto-augment", "none"])
    _invoke(["finetune", *data, *TINY, *out, "--freeze-backbone", "--auto-augment", "rand-m5-mstd0.5-inc1"])
    _invoke(["pipeline", *data, *TINY, *out, "--split-seed", "2", "--methods", "gae", "--faithfulness-images", "0",
             "--predict-splits", "test"])
    # a sanity check of the fine-tuned run already there (no new training), with non-default values
    _invoke(["sanity", "--run", tiny_explained["run_id"], "--methods", "gae", "--images", "2", "--mode",
             "independent", "--seed", "1", "--batch-size", "2", "--num-workers", "0", "--device", "cpu", *out])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(jobs.pipeline, "DEMO_FINETUNE", TINY_DEMO_RECIPE)
        # warm-started, without the control arm: a baseline and a guided run, options with and without "--no-"
        _invoke(["study", "shortcut", "--seeds", "0", "--guide", "anatomy", "--guide-weight", "0.5",
                 "--warm-start", "1", "--no-control", "--method", "gae", "--n-images", "48", "--data-dir",
                 str(root / "demo-study"), *out])
        yield {"db": db, "root": root}


def _parse(argv: list[str]) -> tuple[str, dict]:
    """Parse a ``retcore`` command with the typer app (nothing runs): ``(subcommand, options)``."""
    assert argv[0] == "retcore"
    command, args = typer.main.get_command(app), argv[1:]
    names = []
    while hasattr(command, "commands"):
        names.append(args[0])
        command = command.commands[args.pop(0)]
    return " ".join(names), command.make_context(names[-1], args).params


def test_every_recorded_run_parses_back_to_its_config(every_kind):
    db = every_kind["db"]
    runs = _runs(db)
    assert set(runs["status"]) == {"succeeded"}
    assert set(runs["job"]) == set(CONFIG_OF)
    assert (runs["job"] == "finetune").sum() == 8 and (runs["job"] == "ingest").sum() == 2
    for row in runs.itertuples():
        again = rerun(row.job, row.config, row.command, db=str(db))
        assert again.source == "config" and again.differences == (), (row.job, again)
        subcommand, options = _parse(shlex.split(again.command))
        assert subcommand == ("study shortcut" if row.job == "study" else row.job)
        assert options["db"] == db
        stored = json.loads(row.config)
        stored.pop("summary", None)  # the study's results, added when it finished
        stored.pop("seconds_per_image", None)  # the sanity job's timing, added when it finished
        rebuilt = importlib.import_module(CONFIG_OF[row.job]).options_run_config(options)
        assert json.loads(json.dumps(rebuilt)) == stored, row.job


def test_guided_runs_keep_their_guide(every_kind):
    runs = _runs(every_kind["db"])
    commands = [rerun(r.job, r.config, r.command).command for r in runs.itertuples() if r.job == "finetune"]
    center = next(c for c in commands if "--guide center" in c)
    for part in ("--guide-form input_gradient", "--guide-weight 0.5", "--guide-radius 0.5", "--no-amp",
                 "--global-pool token", "--auto-augment none", "--crop-scale-min 0.5",
                 "--warmup-epochs 0.5", "--min-lr 1e-05", "--seed 3", "--val 0.2", "--split-seed 1"):
        assert part in center, part
    anatomy = next(c for c in commands if "--guide anatomy" in c)
    for part in ("--guide-weight 2.0", "--lr 0.0005", "--eye left", "--include-conflicting", "--test 0.2",
                 r"--patient-regex '(?P<patient>\d+)_'"):
        assert part in anatomy, part
    assert "--guide-form" not in anatomy  # relevance is the default
    assert any("--guide mask" in c and "--guide-mask-bits 3" in c for c in commands)
    assert any("--freeze-backbone" in c and "--auto-augment rand-m5-mstd0.5-inc1" in c for c in commands)
    study = rerun("study", runs.loc[runs["job"] == "study", "config"].item()).command
    assert "--guide-weight 0.5" in study and "--n-images 48" in study and "--seeds 0" in study
    assert "--warm-start 1" in study and "--no-control" in study


def test_running_a_guided_rerun_command_records_the_same_config(every_kind):
    db = every_kind["db"]
    runs = _runs(db)
    row = next(r for r in runs.itertuples() if r.job == "finetune" and '"guide": "center"' in r.config)
    argv = shlex.split(rerun(row.job, row.config, row.command, db=str(db)).command)
    _invoke([*argv[1:], "--results", str(every_kind["root"] / "results")])
    new = _runs(db).iloc[-1]
    assert new["job"] == "finetune" and new["run_id"] != row.run_id and new["status"] == "succeeded"
    assert json.loads(new["config"]) == json.loads(row.config)


def test_only_values_that_differ_from_the_defaults_are_written():
    config = finetune_run_config(FinetuneConfig(), Path("/data/set"))
    assert rerun("finetune", config).command == "retcore finetune --data /data/set"
    again = rerun("finetune", json.dumps(finetune_run_config(FinetuneConfig(model="demo", blr=1e-3, auto_augment=None,
                                                                              crop_scale=(0.8, 1.0)),
                                                             Path("/data/my set/manifest.csv"), test=0.2)),
                  "", db="/tmp/r.duckdb")
    assert again.command == ("retcore finetune --data '/data/my set/manifest.csv' --model demo --blr 0.001 "
                             "--auto-augment none --crop-scale-min 0.8 --test 0.2 --db /tmp/r.duckdb")
    explain = {"run": "f1", "methods": ["lrp", "gae"], "split": "test", "target": "label", "start_layer": 0,
               "batch_size": 8, "faithfulness_images": 4}
    assert rerun("explain", explain).command == \
        "retcore explain --run f1 --methods lrp,gae --split test --target label --faithfulness-images 4"
    # the faithfulness baseline and steps are recorded and come back on the command line
    explain.update(faithfulness_baseline="mean", faithfulness_units="token")
    again = rerun("explain", explain)
    assert again.command == ("retcore explain --run f1 --methods lrp,gae --split test --target label "
                             "--faithfulness-images 4 --faithfulness-baseline mean --faithfulness-units token")
    assert again.differences == ()


def test_settings_the_command_line_cannot_express_are_reported():
    config = finetune_run_config(FinetuneConfig(accum_iter=2, crop_scale=(0.5, 0.9)), Path("/d"))
    again = rerun("finetune", config)
    assert again.source == "config"
    assert any(line.startswith("finetune.accum_iter: 2 recorded, 1") for line in again.differences)
    assert any(line.startswith("finetune.crop_scale: [0.5, 0.9] recorded") for line in again.differences)
    # a study recorded before its demo settings were: the command says which defaults it assumes
    old = rerun("study", {"study": "shortcut", "seeds": [0], "method": "gae", "data": "/x/demo/manifest.csv",
                          "shortcut": "glaucoma", "finetune": {"guided": {"guide": "anatomy"}}})
    assert any(line.startswith("not recorded with the run") and "demo.n_images" in line for line in old.differences)


def test_sanity_runs_rerun_with_their_settings(every_kind):
    from jobs.sanity import sanity_run_config

    runs = _runs(every_kind["db"])
    command = rerun("sanity", runs.loc[runs["job"] == "sanity", "config"].item()).command
    for part in ("--methods gae", "--split test", "--images 2", "--mode independent", "--seed 1",
                 "--batch-size 2"):
        assert part in command, part
    config = sanity_run_config("f1", ["lrp", "gae"], "val", images=32, mode="both", seed=0, batch_size=8)
    assert rerun("sanity", config).command == "retcore sanity --run f1 --methods lrp,gae --split val"
    # the data randomisation test is run by the study: its recorded command line, and why
    data = {**sanity_run_config("f1", ["gae"], "test", images=32, mode="data", seed=0, batch_size=8),
            "shuffled_run": "f2"}
    again = rerun("sanity", data, "retcore study shortcut --seeds 0 --shuffled-labels")
    assert again.source == "recorded" and again.command == "retcore study shortcut --seeds 0 --shuffled-labels"
    assert "--shuffled-labels" in again.differences[0]


def test_without_a_builder_the_recorded_command_or_help():
    assert rerun("predict", "{}", "retcore predict --run r1 --split val").command == \
        "retcore predict --run r1 --split val"
    assert rerun("predict", "{}", "retcore predict --run r1 --split val").source == "recorded"
    none = rerun("pipeline", None, "")
    assert none.source == "none" and "--help" in none.command


def test_jobs_page_shows_the_guided_command_and_the_recorded_line(every_kind, monkeypatch):
    from streamlit.testing.v1 import AppTest

    db = every_kind["db"]
    runs = _runs(db)
    guided = next(r.run_id for r in runs.itertuples() if r.job == "finetune" and '"guide": "mask"' in r.config)
    monkeypatch.setenv("RETCORE_DB", str(db))
    at = AppTest.from_file(str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("app_pages/jobs.py").run()
    at.selectbox(key="jobs-pick").set_value(guided).run()
    assert not at.exception, [e.value for e in at.exception]
    command = at.code[0].value
    assert command.startswith("retcore finetune --data ") and "--guide mask" in command and f"--db {db}" in command
    assert not at.warning  # the command reproduces the run
    assert len(at.code) == 2  # and the command line recorded with the run
