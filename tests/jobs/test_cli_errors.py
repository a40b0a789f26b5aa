"""One-line errors, exit code 2, no traceback, for output paths that cannot be created."""
from __future__ import annotations

import errno

import pytest
from typer.testing import CliRunner

from jobs._common import path_error
from jobs.cli import app


@pytest.fixture
def a_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("a file where a folder was asked for\n")
    return path


def _run(*args: str):
    result = CliRunner().invoke(app, list(args))
    text = result.output + (result.stderr if result.stderr_bytes is not None else "")
    return result, text


def test_demo_data_into_an_existing_file(a_file):
    result, text = _run("demo-data", "--out", str(a_file))
    assert result.exit_code == 2, text
    assert f"error: {a_file} exists and is not a folder" in text
    assert "Traceback" not in text
    assert a_file.read_text().startswith("a file where"), "nothing the user had is touched"


def test_database_under_a_file(a_file):
    result, text = _run("predict", "--run", "latest", "--db", str(a_file / "r.duckdb"))
    assert result.exit_code == 2, text
    assert str(a_file) in text and "Traceback" not in text
    assert text.count("\n") <= 2


@pytest.mark.parametrize("exc, words", [
    (FileExistsError(errno.EEXIST, "File exists", "/x/out"), "/x/out exists and is not a folder"),
    (NotADirectoryError(errno.ENOTDIR, "Not a directory", "/x/f/db"), "part of this path is a file"),
    (PermissionError(errno.EACCES, "Permission denied", "/root/x"), "no permission to write /root/x"),
    (FileNotFoundError(errno.ENOENT, "No such file", "/proc/nope"), "/proc/nope cannot be created"),
    (OSError(errno.ENOSPC, "No space left on device", "/big"), "/big: No space left on device"),
])
def test_path_error_names_the_path_and_a_fix(exc, words):
    line = path_error(exc)
    assert words in line
    assert "pass another path" in line or "pass a path in a folder you can write" in line
    assert "\n" not in line


@pytest.mark.parametrize("job", [["predict", "--run", "latest"], ["explain", "--run", "latest"], ["summarize"],
                                 ["sanity", "--run", "latest"]])
def test_jobs_that_read_earlier_runs_do_not_create_a_missing_database(tmp_path, job):
    db = tmp_path / "typo.duckdb"
    result, text = _run(*job, "--db", str(db))
    assert result.exit_code == 2, text
    assert f"error: database {db} does not exist" in text
    assert not db.exists(), "no empty database is left behind"


def test_zero_epochs_is_refused_before_any_work(tmp_path):
    db = tmp_path / "r.duckdb"
    result, text = _run("finetune", "--data", str(tmp_path), "--epochs", "0", "--db", str(db))
    assert result.exit_code == 2 and "--epochs" in text and "greater than or equal to 1" in text
    assert not db.exists()


@pytest.mark.parametrize("extra, words", [(["--checkpoint", "missing/RETFound_mae.pth"], "not found"),
                                          (["--model", "vit_gigantic_typo"], "vit_gigantic_typo")])
def test_model_and_checkpoint_typos_are_reported_before_the_dataset_is_read(tmp_path, extra, words):
    import duckdb

    (tmp_path / "data" / "normal").mkdir(parents=True)
    (tmp_path / "data" / "normal" / "1_left.jpg").write_bytes(b"never decoded")
    db = tmp_path / "r.duckdb"
    result, text = _run("finetune", "--data", str(tmp_path / "data"), "--db", str(db), *extra)
    assert result.exit_code == 2 and words in text, text
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM images").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM ingest_errors").fetchone()[0] == 0


def test_an_error_during_a_progress_bar_starts_on_its_own_line(capsys):
    import typer
    from tqdm.auto import tqdm

    from jobs._common import friendly_errors
    from retcore.errors import DataError

    @friendly_errors
    def job():
        bar = tqdm(total=4, desc="predict test", unit="batch")
        bar.update(1)
        raise DataError("image 'x.jpg': not an image")

    with pytest.raises(typer.Exit):
        job()
    err = capsys.readouterr().err
    assert "\nerror: image 'x.jpg': not an image" in err or err.startswith("error:")
    assert not any("predict test" in line and "error:" in line for line in err.split("\n"))
