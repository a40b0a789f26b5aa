"""Shared fixtures: a tiny demo dataset and a tiny trained pipeline, built once per session."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="module")
def single_thread():
    """Run a module's tests single-threaded, then restore: tiny models gain nothing from intra-op
    threads, and on a shared CPU every parallel kernel may wait for a time slice."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory) -> Path:
    """A 48-image, 64-px demo dataset with the shortcut planted on glaucoma; returns the manifest."""
    from retcore.demo import DemoConfig, make_demo_dataset

    out = tmp_path_factory.mktemp("demo")
    return make_demo_dataset(out, DemoConfig(n_images=48, img_size=64, shortcut="glaucoma", seed=3, workers=1))


def _tiny_finetune_config(**overrides):
    from retcore.train.config import FinetuneConfig

    params = dict(model="demo", img_size=64, epochs=2, warmup_epochs=1, batch_size=8, blr=1e-3,
                  layer_decay=1.0, drop_path=0.0, auto_augment=None, re_prob=0.0, crop_scale=(0.8, 1.0),
                  num_workers=0, device="cpu", seed=0)
    params.update(overrides)
    return FinetuneConfig(**params)


@pytest.fixture(scope="session")
def tiny_config():
    """Factory of a CPU-fast FinetuneConfig for the ``demo`` model at 64 px."""
    return _tiny_finetune_config


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory) -> dict:
    """A miniature shortcut study (anatomy guide, relevance penalty, seeds 0 and 1, ``gae`` maps, 1 epoch,
    48 images of 64 px): its database, run id, inputs and what it printed."""
    import contextlib
    import io

    from jobs.study import run_shortcut_study
    from retcore.demo import DemoConfig

    root = tmp_path_factory.mktemp("study")
    demo = DemoConfig(n_images=48, img_size=64, shortcut="glaucoma", seed=3, workers=1)
    base = _tiny_finetune_config(epochs=1, warmup_epochs=0, guide="anatomy", guide_form="relevance", guide_weight=1.0)
    common = dict(method="gae", data_dir=root / "demo", db=root / "results.duckdb", results=root / "results",
                  batch_size=16)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        study = run_shortcut_study(base, demo, seeds=[0, 1], **common)
    return {"db": root / "results.duckdb", "study": study, "base": base, "demo": demo, "common": common,
            "root": root, "printed": printed.getvalue()}


@pytest.fixture(scope="session")
def tiny_warm_study(tiny_study) -> dict:
    """``tiny_study``'s guide warm-started (``warm_start=1``, seed 0): the guided and ``continued`` arms
    start from ``tiny_study``'s seed-0 baseline checkpoint. Records the checkpoint every model was
    created from (``created``: (model name, checkpoint) per ``create_model`` call)."""
    import contextlib
    import io

    import retcore.models
    from jobs.study import run_shortcut_study

    created: list[tuple[str, str | None]] = []
    original = retcore.models.create_model

    def recording(name, num_classes, **kwargs):
        created.append((name, None if kwargs.get("checkpoint") is None else str(kwargs["checkpoint"])))
        return original(name, num_classes, **kwargs)

    printed = io.StringIO()
    retcore.models.create_model = recording
    try:
        with contextlib.redirect_stdout(printed):
            study = run_shortcut_study(tiny_study["base"], tiny_study["demo"], seeds=[0], warm_start=1,
                                       **tiny_study["common"])
    finally:
        retcore.models.create_model = original
    return {**tiny_study, "study": study, "cold_study": tiny_study["study"], "created": created,
            "printed": printed.getvalue()}


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory, tiny_demo) -> dict:
    """demo data -> finetune (2 epochs) -> predict val/test into a fresh database."""
    from jobs.finetune import run_finetune
    from jobs.predict import run_predict

    root = tmp_path_factory.mktemp("pipeline")
    db = root / "results.duckdb"
    run_id = run_finetune(_tiny_finetune_config(), tiny_demo, db=db, results=root / "results")
    for split in ("val", "test"):
        run_predict(run_id, split, db=db, batch_size=16, device="cpu", num_workers=0)
    return {"db": db, "run_id": run_id, "root": root, "manifest": tiny_demo}


@pytest.fixture(scope="session")
def tiny_explained(tmp_path_factory, tiny_pipeline) -> dict:
    """``tiny_pipeline`` copied, then explained on test with two methods: explanations,
    zone scores, landmarks, quality, localisation and faithfulness rows for the dashboard."""
    import shutil

    from jobs.explain import run_explain

    root = tmp_path_factory.mktemp("explained-pipeline")
    db = root / "results.duckdb"
    shutil.copy(tiny_pipeline["db"], db)
    methods = ["lrp", "gae"]
    run_explain(tiny_pipeline["run_id"], methods, "test", db=db, results=root / "results", batch_size=8,
                device="cpu", faithfulness_images=4)
    return {**tiny_pipeline, "db": db, "root": root, "methods": methods}


def _start_and_kill(db: Path, run_id: str, job: str = "finetune", out_dir: str | None = None,
                    progress: float = 0.3) -> None:
    """A real process records a run, reports progress, then dies by SIGKILL mid-run."""
    import signal
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(f"""
        import time
        from retcore.storage.runs import record_run
        with record_run({str(db)!r}, {job!r}, config={{"split": "test", "run": "ft"}}, run_id={run_id!r},
                        out_dir={out_dir!r}, command="retcore {job} --db {db}") as rec:
            rec.progress({progress!r}, "epoch 3/10", force=True)
            print("ready", flush=True)
            time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    try:
        assert proc.stdout.readline().strip() == "ready"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL


@pytest.fixture(scope="session")
def start_and_kill():
    """``start_and_kill(db, run_id, job='finetune', out_dir=None)``: a run whose process was SIGKILLed."""
    return _start_and_kill
