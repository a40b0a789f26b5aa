"""Interrupted runs, heartbeats, run logs and the v3 -> v4 migration."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from retcore.errors import RetcoreError
from retcore.storage import connect, current_version, migrate, transaction
from retcore.storage import runs as runs_mod
from retcore.storage.migrations import MIGRATIONS, SCHEMA_VERSION
from retcore.storage.runs import (
    interrupted_error,
    live_status,
    log_dirs,
    log_tail,
    mark_stale_runs,
    record_run,
    resume_hint,
    results_root,
)

ROOT = Path(__file__).resolve().parents[2]


def _row(db, run_id):
    with connect(db, read_only=True) as con:
        return con.execute("SELECT status, error, log_path, heartbeat_at, started_at, finished_at FROM runs "
                           "WHERE run_id = ?", [run_id]).fetchone()


def test_killed_run_is_interrupted_for_readers_then_recorded_by_the_next_job(tmp_path, monkeypatch, start_and_kill):
    db = tmp_path / "r.duckdb"
    start_and_kill(db, "victim", out_dir=str(tmp_path / "results" / "runs" / "victim"))
    status, error, log_path, heartbeat, started, _ = _row(db, "victim")
    assert status == "running" and error is None
    assert live_status(status, heartbeat, started) == "running", "fresh heartbeat: still running"
    monkeypatch.setattr(runs_mod, "STALE_AFTER_S", 0.3)
    time.sleep(0.5)
    assert live_status(status, heartbeat, started) == "interrupted", "readers see it at once, nothing written"
    assert _row(db, "victim")[0] == "running"
    with record_run(db, "predict", config={}, run_id="next"):  # the next job records it
        pass
    status, error, log_path, _, _, finished = _row(db, "victim")
    assert status == "interrupted" and finished is not None
    assert error.startswith("interrupted: no heartbeat since") and "retcore finetune --resume victim" in error
    assert Path(log_path) == tmp_path / "results" / "logs" / "victim.log"
    log = Path(log_path).read_text()
    assert "finetune run victim started" in log and "recorded as interrupted by a later job" in log


def test_resume_accepts_an_interrupted_run_and_refuses_a_live_one(tmp_path, monkeypatch, start_and_kill):
    db = tmp_path / "r.duckdb"
    start_and_kill(db, "victim")
    with pytest.raises(RetcoreError, match="still running"):
        with record_run(db, "finetune", config={}, run_id="victim"):
            pass
    monkeypatch.setattr(runs_mod, "STALE_AFTER_S", 0.3)
    time.sleep(0.5)
    with record_run(db, "finetune", config={}, run_id="victim"):
        assert _row(db, "victim")[0] == "running"
    status, error, log_path, *_ = _row(db, "victim")
    assert status == "succeeded" and error is None
    text = Path(log_path).read_text()
    assert "started" in text and "resumed" in text and text.rstrip().endswith("succeeded")


def test_ctrl_c_records_interrupted_with_how_to_continue(tmp_path):
    db = tmp_path / "r.duckdb"
    with pytest.raises(KeyboardInterrupt) as info:
        with record_run(db, "explain", config={"run": "ft-1", "methods": ["lrp", "gae"], "split": "val"},
                        run_id="ex"):
            raise KeyboardInterrupt
    status, error, log_path, *_ = _row(db, "ex")
    assert status == "interrupted"
    assert error.startswith("interrupted: stopped by Ctrl-C at ")
    assert "retcore explain --run ft-1 --methods lrp,gae --split val" in error and "continues where it" in error
    assert info.value.retcore_status == error and info.value.retcore_log_path == log_path
    assert "KeyboardInterrupt" in Path(log_path).read_text()


def _inner_step_that_breaks():
    raise ZeroDivisionError("the inner step broke\nwith a second line")


def test_failed_run_keeps_the_full_traceback_in_its_log(tmp_path):
    db = tmp_path / "r.duckdb"
    with pytest.raises(ZeroDivisionError):
        with record_run(db, "predict", config={}, run_id="boom"):
            _inner_step_that_breaks()
    status, error, log_path, *_ = _row(db, "boom")
    assert status == "failed" and error == "ZeroDivisionError: the inner step broke"
    assert Path(log_path) == tmp_path / "results" / "logs" / "boom.log", "beside the database by default"
    text = Path(log_path).read_text()
    assert "Traceback (most recent call last)" in text and "_inner_step_that_breaks" in text
    assert "with a second line" in text
    tail = log_tail(log_path, "boom", log_dirs(db))
    assert tail is not None and "_inner_step_that_breaks" in tail


def test_log_goes_to_the_out_dir_or_the_parent_runs_results(tmp_path):
    db = tmp_path / "r.duckdb"
    results = tmp_path / "elsewhere"
    with record_run(db, "finetune", config={}, run_id="ft", out_dir=str(results / "runs" / "ft")):
        pass
    with record_run(db, "explain", config={}, run_id="ex", parent_run_id="ft"):
        pass
    with record_run(db, "predict", config={}, run_id="pr", results=tmp_path / "chosen"):
        pass
    assert Path(_row(db, "ft")[2]) == results / "logs" / "ft.log"
    assert Path(_row(db, "ex")[2]) == results / "logs" / "ex.log"
    assert Path(_row(db, "pr")[2]) == tmp_path / "chosen" / "logs" / "pr.log"
    assert results_root(db) == tmp_path / "results"
    assert results_root(db, str(tmp_path / "free")) == tmp_path / "free"


def test_log_tail_reads_only_the_runs_own_log_inside_its_folders(tmp_path):
    logs = tmp_path / "results" / "logs"
    logs.mkdir(parents=True)
    (logs / "a.log").write_text("\n".join(f"line {i}" for i in range(100)))
    (tmp_path / "a.log").write_text("secret")
    assert log_tail(str(logs / "a.log"), "a", [logs], lines=3) == "line 97\nline 98\nline 99"
    assert log_tail(str(logs / "a.log"), "b", [logs]) is None, "another run's name"
    assert log_tail(str(tmp_path / "a.log"), "a", [logs]) is None, "outside the run's folders"
    assert log_tail(str(logs / ".." / ".." / "a.log"), "a", [logs]) is None
    (logs / "link.log").symlink_to(tmp_path / "a.log")
    assert log_tail(str(logs / "link.log"), "link", [logs]) is None, "a link leaving the folder"
    assert log_tail(None, "a", [logs]) is None and log_tail(str(logs / "none.log"), "none", [logs]) is None


def test_heartbeat_thread_keeps_a_long_step_alive(tmp_path, monkeypatch):
    db = tmp_path / "r.duckdb"
    monkeypatch.setattr(runs_mod, "STALE_AFTER_S", 0.8)  # beats every 0.2 s
    with record_run(db, "finetune", config={}, run_id="slow") as rec:
        first = _row(db, "slow")[3]
        for _ in range(8):  # one long step without progress calls, reading meanwhile (read-only, same process)
            time.sleep(0.25)
            status, _, _, heartbeat, started, _ = _row(db, "slow")
            assert live_status(status, heartbeat, started) == "running"
        assert _row(db, "slow")[3] > first
        mark_stale_runs(db)  # another job starting now must not touch it
        assert _row(db, "slow")[0] == "running"
        rec.progress(0.5, "half", force=True)
    assert _row(db, "slow")[0] == "succeeded"
    alive = [t.name for t in threading.enumerate() if t.name.startswith("heartbeat-")]
    assert not alive, "the heartbeat thread stops with the run"


def _hold_lock(db: Path, seconds: float) -> subprocess.Popen:
    """Another process that opens ``db`` read-write (waiting while this job's own heartbeat holds it),
    prints "ready" and keeps the file locked for ``seconds``."""
    code = textwrap.dedent(f"""
        import duckdb, time
        for _ in range(200):  # the job's own heartbeat may hold the file for a moment
            try:
                c = duckdb.connect({str(db)!r})
                break
            except duckdb.IOException:
                time.sleep(0.05)
        print("ready", flush=True)
        time.sleep({seconds})
    """)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


def test_heartbeat_skips_quietly_while_another_process_holds_the_lock(tmp_path, monkeypatch):
    db = tmp_path / "r.duckdb"
    monkeypatch.setattr(runs_mod, "STALE_AFTER_S", 0.8)
    with record_run(db, "finetune", config={}, run_id="held"):
        holder = _hold_lock(db, 1.0)
        try:
            assert holder.stdout.readline().strip() == "ready"
            beat = runs_mod._Heartbeat(db, "held", 0.2)
            assert beat.beat() is False, "locked: no exception, just no beat"
        finally:
            holder.wait(timeout=30)
        assert beat.beat() is True
    assert _row(db, "held")[0] == "succeeded"


def test_progress_is_skipped_not_fatal_while_another_process_holds_the_lock(tmp_path):
    """A fine-tune died in its first epoch because a progress-bar update met a held database."""
    from retcore.errors import DatabaseLockedError

    db = tmp_path / "r.duckdb"
    with record_run(db, "finetune", config={}, run_id="busy") as rec:
        rec.min_interval_s = 0.3
        holder = _hold_lock(db, 2.0)
        try:
            assert holder.stdout.readline().strip() == "ready"
            start = time.monotonic()
            rec.progress(0.25, "epoch 1/4")  # skipped after about min_interval_s, no exception
            assert time.monotonic() - start < 1.5
            with pytest.raises(DatabaseLockedError, match="locked by another process"):
                with connect(db, timeout_s=0.2):
                    pass
        finally:
            holder.wait(timeout=30)
        rec.progress(0.5, "epoch 2/4", force=True)
        with connect(db, read_only=True) as con:
            assert con.execute("SELECT progress, progress_note FROM runs WHERE run_id = 'busy'").fetchone() == (
                0.5, "epoch 2/4")
    assert _row(db, "busy")[0] == "succeeded"


def test_heartbeat_restores_a_live_run_wrongly_recorded_as_interrupted(tmp_path):
    db = tmp_path / "r.duckdb"
    with record_run(db, "finetune", config={}, run_id="alive"):
        with connect(db) as con:
            con.execute("UPDATE runs SET status = 'interrupted', error = 'interrupted: x' WHERE run_id = 'alive'")
        assert runs_mod._Heartbeat(db, "alive", 1.0).beat()
        assert _row(db, "alive")[:2] == ("running", None)
    assert _row(db, "alive")[0] == "succeeded"


def test_live_status_is_pure():
    now = datetime(2026, 12, 1, 12, 0, 0)
    old = now - timedelta(seconds=300)
    assert live_status("running", old, old, now=now) == "interrupted"
    assert live_status("running", None, old, now=now) == "interrupted"
    assert live_status("running", now, old, now=now) == "running"
    assert live_status("running", old, old, now=now, stale_after_s=600) == "running"
    for status in ("succeeded", "failed", "interrupted"):
        assert live_status(status, old, old, now=now) == status


def test_resume_hints_per_job():
    assert resume_hint("finetune", "ft-1", command="retcore finetune --data d --db=x.duckdb") == \
        "resume with `retcore finetune --resume ft-1 --db x.duckdb`"
    assert resume_hint("predict", "p", {"run": "ft-1", "split": "val"}) == \
        "rerun `retcore predict --run ft-1 --split val` (it continues where it stopped)"
    assert "rerun `retcore study shortcut --seeds 0,1`" in resume_hint("study", "s", {}, "retcore study shortcut --seeds 0,1")
    assert resume_hint("sanity", "s", {"run": "ft-1", "methods": ["gae", "lrp"], "split": "val", "images": 8,
                                       "mode": "both", "seed": 2, "batch_size": 8}) == \
        ("rerun `retcore sanity --run ft-1 --methods gae,lrp --split val --images 8 --mode both --seed 2` "
         "(it continues where it stopped)")
    assert resume_hint("sanity", "s", {"run": "ft-1"}, "retcore sanity --run ft-1 --db x.duckdb") == \
        "rerun `retcore sanity --run ft-1 --db x.duckdb` (it continues where it stopped)"
    assert "study shortcut --shuffled-labels" in resume_hint("sanity", "s", {"run": "ft-1", "mode": "data",
                                                                            "shuffled_run": "ft-2"})
    assert "pipeline --demo" in resume_hint("pipeline", "p")
    assert resume_hint("export", "e") == "rerun the export job"
    text = interrupted_error("finetune", "ft-1", since=datetime(2026, 1, 2, 3, 4, 5))
    assert text == "interrupted: no heartbeat since 2026-01-02 03:04:05 UTC; resume with `retcore finetune --resume ft-1`"


def test_v3_database_migrates_to_v4_keeping_its_runs(tmp_path):
    db = tmp_path / "v3.duckdb"
    with connect(db) as con:  # a database written by the v3 code
        con.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, "
                    "applied_at TIMESTAMP DEFAULT current_timestamp)")
        for number, statements in enumerate(MIGRATIONS[:3], start=1):
            with transaction(con):
                for statement in statements:
                    con.execute(statement)
                con.execute("INSERT INTO schema_version (version) VALUES (?)", [number])
        con.execute("INSERT INTO runs (run_id, job, status, started_at) VALUES ('old', 'finetune', 'failed', "
                    "TIMESTAMP '2026-01-01 00:00:00')")
        assert current_version(con) == 3
        assert migrate(con) == SCHEMA_VERSION >= 4
        columns = {r[0] for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'runs'").fetchall()}
        assert "log_path" in columns
        assert con.execute("SELECT run_id, status, log_path FROM runs").fetchall() == [("old", "failed", None)]
    with record_run(db, "predict", config={}, run_id="new"):  # and jobs run on it
        pass
    assert _row(db, "new")[0] == "succeeded" and _row(db, "new")[2]


def test_cli_names_the_outcome_and_the_log(tmp_path):
    import typer
    from typer.testing import CliRunner

    from jobs._common import friendly_errors

    db = tmp_path / "r.duckdb"

    @friendly_errors
    def stopped() -> None:
        with record_run(db, "finetune", config={}, run_id="ft"):
            raise KeyboardInterrupt

    @friendly_errors
    def broken() -> None:
        with record_run(db, "predict", config={}, run_id="pr"):
            raise RetcoreError("no such split\nmore")

    app = typer.Typer()
    app.command("stopped")(stopped)
    app.command("broken")(broken)
    result = CliRunner().invoke(app, ["stopped"])
    assert result.exit_code == 130
    assert "stopped by Ctrl-C" in result.output and "retcore finetune --resume ft" in result.output
    assert "ft.log" in result.output
    result = CliRunner().invoke(app, ["broken"])
    assert result.exit_code == 2 and "error: no such split" in result.output and "pr.log" in result.output


def test_sigterm_records_the_run_as_interrupted_and_exits_143(tmp_path):
    """`timeout`, `docker stop` and schedulers send SIGTERM: the run must not stay `running` for minutes."""
    db = tmp_path / "r.duckdb"
    code = textwrap.dedent(f"""
        import os, signal, sys, time
        import typer
        from jobs._common import friendly_errors
        from retcore.storage.runs import record_run

        @friendly_errors
        def job():
            with record_run({str(db)!r}, "finetune", config={{}}, run_id="termed"):
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(30)

        try:
            job()
        except typer.Exit as exc:
            sys.exit(exc.exit_code)
    """)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 143, done.stderr
    assert "interrupted: stopped by SIGTERM" in done.stderr and "--resume termed" in done.stderr
    assert "Traceback" not in done.stderr
    status, error = _row(db, "termed")[:2]
    assert status == "interrupted" and "stopped by SIGTERM" in error
