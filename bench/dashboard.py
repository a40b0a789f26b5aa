"""Benchmark: the dashboard's queries and page renders on a large synthetic results database.

Run by hand: ``.venv/bin/python bench/dashboard.py [--images 100000] [--db PATH] [--repeats 3]
[--no-summaries]``.

It builds (or reuses, with ``--db`` pointing at an existing file) a results
database with ``--images`` test images, two fine-tuning runs with predictions,
and for the first run explanations (14 x 14 token grids) and zone scores of
two methods (``lrp``, ``gae``), per-image quality metrics and landmarks; the
second run has ``lrp`` zone scores (for the Compare page). Image files do not
exist, so galleries show placeholders, as for moved files. The rows are written
directly, not by the jobs, so it then stores the summaries the jobs would have
stored with ``retcore summarize`` (timed; ``--no-summaries`` skips it, to time the
pages computing them on read).

Then it prints, per page, each of its reads (``dashboard.queries`` and the
``retcore.results`` functions the pages call): how many SQL statements it ran, the
slowest statement (read-only connection opened, query run, result fetched, closed,
inside ``dashboard.data.held`` as on a page: the database is opened once per page
run, and that cost is printed once) and the function's total, with every cache
cleared before each call (median of ``--repeats``); and the AppTest render time of
each page (cold: every cache cleared, so queries and statistics included; warm: cached).
Targets on a 2-core machine: every SQL statement <= 300 ms, every page <= 2 s cold.
"""
from __future__ import annotations

import argparse
import importlib
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CLASSES = ["cataract", "diabetic_retinopathy", "glaucoma", "normal"]
METHODS = ["lrp", "gae"]
GRID = 14
QUERY_TARGET_MS = 300.0
PAGE_TARGET_S = 2.0


# ------------------------------------------------------------------------ database


def _probs(rng, pred: np.ndarray, conf: np.ndarray) -> np.ndarray:
    n, c = len(pred), len(CLASSES)
    rest = rng.dirichlet(np.ones(c - 1), size=n) * (1 - conf)[:, None]
    probs = np.empty((n, c))
    for k in range(c):
        others = [j for j in range(c) if j != k]
        rows = pred == k
        probs[np.ix_(rows, others)] = rest[rows]
        probs[rows, k] = conf[rows]
    return probs


def _predictions(rng, label: np.ndarray, accuracy: float, base_correct: np.ndarray | None = None):
    n = len(label)
    if base_correct is None:
        correct = rng.random(n) < accuracy
    else:
        flip = rng.random(n) < 0.1
        correct = np.where(flip, rng.random(n) < accuracy, base_correct)
    other = (label + rng.integers(1, len(CLASSES), n)) % len(CLASSES)
    pred = np.where(correct, label, other)
    conf = np.where(correct, 0.25 + 0.75 * rng.beta(6, 2, n), 0.25 + 0.75 * rng.beta(3, 3, n))
    conf = np.maximum(conf, 0.26)
    return pred, conf, correct, _probs(rng, pred, conf)


def _zone_rows(rng, run_id: str, ids: np.ndarray, label: np.ndarray, pred: np.ndarray, eye: np.ndarray,
               method: str, sets: tuple[str, ...]) -> pd.DataFrame:
    n = len(ids)
    alpha = np.full((n, 3), 3.0)
    alpha[label == 0, 0] += 3.0            # cataract: centre
    alpha[label == 2, 2] += 3.0            # glaucoma: the disc side
    alpha[label == 1, 0] += 1.5            # DR: posterior pole
    if method != "lrp":
        alpha = 0.6 * alpha + 0.5
    mass = np.vstack([rng.dirichlet(a) for a in alpha]) if n < 2000 else _dirichlet_rows(rng, alpha)
    area = np.clip(1 / 3 + rng.normal(0, 0.01, (n, 3)), 0.3, 0.37)
    frames = []
    names = ["center", "left", "right"]
    if "thirds" in sets:
        for j, z in enumerate(names):
            frames.append(pd.DataFrame({"image_id": ids, "zone_set": "thirds", "zone": z, "mass_share": mass[:, j],
                                        "area_share": area[:, j]}))
        nasal = np.where(eye == "right", 2, 1)
        temporal = 3 - nasal
        for z, col in (("nasal", nasal), ("temporal", temporal)):
            frames.append(pd.DataFrame({"image_id": ids, "zone_set": "thirds", "zone": z,
                                        "mass_share": mass[np.arange(n), col], "area_share": area[np.arange(n), col]}))
    if "anatomy" in sets:
        for z, a, b, share in (("optic_disc", 2, 20, 0.05), ("macula", 2, 15, 0.06), ("central", 5, 12, 0.25),
                               ("periphery", 3, 10, 0.36)):
            boost = np.where(label == 2, 1.8, 1.0) if z == "optic_disc" else 1.0
            frames.append(pd.DataFrame({"image_id": ids, "zone_set": "anatomy", "zone": z,
                                        "mass_share": np.clip(rng.beta(a, b, n) * boost, 0, 1),
                                        "area_share": np.full(n, share)}))
    out = pd.concat(frames, ignore_index=True)
    out["score"] = out["mass_share"] / out["area_share"]
    out.insert(0, "run_id", run_id)
    out.insert(2, "method", method)
    out.insert(3, "target", np.tile(pred, len(frames)).astype(np.int32))
    return out


def _dirichlet_rows(rng, alpha: np.ndarray) -> np.ndarray:
    g = rng.gamma(alpha)
    return g / g.sum(axis=1, keepdims=True)


def _grids(rng, label: np.ndarray, method: str) -> np.ndarray:
    n = len(label)
    yy, xx = np.mgrid[0:GRID, 0:GRID].astype(np.float32) + 0.5
    centres = np.array([[7, 7], [7.5, 8], [7, 11], [7, 7]], np.float32)  # (y, x) per class
    spread = np.array([3.5, 4.0, 2.0, 5.0], np.float32)
    cy = centres[label, 0] + rng.normal(0, 1.0, n).astype(np.float32)
    cx = centres[label, 1] + rng.normal(0, 1.0, n).astype(np.float32)
    s = spread[label][:, None, None]
    d2 = (yy[None] - cy[:, None, None]) ** 2 + (xx[None] - cx[:, None, None]) ** 2
    g = np.exp(-d2 / (2 * s * s)) + (0.3 if method == "gae" else 0.1) * rng.random((n, GRID, GRID), np.float32)
    return (g / g.reshape(n, -1).sum(1)[:, None, None]).reshape(n, -1).astype(np.float32)


def build_database(path: Path, n: int, seed: int = 0) -> None:
    """Write the synthetic results database (see the module docstring) to ``path``."""
    import pyarrow as pa

    from retcore.quality import quality_grade
    from retcore.storage.runs import open_db
    from retcore.storage.writes import append_frames

    rng = np.random.default_rng(seed)
    open_db(path)
    root = path.parent / "bench-images"
    ids = np.array([f"{i:016x}" for i in range(n)])
    label = rng.integers(0, len(CLASSES), n)
    eye = np.where(rng.random(n) < 0.5, "left", "right")
    names = np.array(CLASSES)[label]
    images = pd.DataFrame({
        "image_id": ids, "dataset_id": "bench", "path": [f"{root}/{c}/{i}.png" for c, i in zip(names, ids)],
        "sha256": None, "label": names, "split": "test", "patient_id": [f"p{i // 2}" for i in range(n)],
        "eye": eye, "width": 1024, "height": 1024, "mask_path": None, "duplicate_of": None,
        "conflicting_label": False, "gt_disc_x": None, "gt_disc_y": None, "gt_disc_r": None, "extra": "{}"})
    now = pd.Timestamp("2026-01-01 12:00:00")
    runs = []
    for k, run in enumerate(("finetune-bench-b", "finetune-bench-a")):  # a is the newest: the default run
        runs.append({"run_id": run, "job": "finetune", "status": "succeeded", "started_at": now + pd.Timedelta(hours=k),
                     "finished_at": now + pd.Timedelta(hours=k, minutes=30), "progress": 1.0,
                     "config": '{"finetune": {"model": "retfound_mae", "img_size": 224, "epochs": 50}, '
                               f'"data": "{root}", "val": 0.15, "test": 0.15, "split_seed": 0}}',
                     "command": "", "model": "retfound_mae", "dataset_id": "bench", "seed": k,
                     "out_dir": str(path.parent / "results" / "runs" / run)})
        runs.append({"run_id": f"predict-bench-{k}", "job": "predict", "status": "succeeded",
                     "started_at": now + pd.Timedelta(hours=k, minutes=31), "progress": 1.0, "parent_run_id": run,
                     "config": f'{{"run": "{run}", "split": "test"}}', "command": f"retcore predict --run {run}"})
    runs.append({"run_id": "explain-bench", "job": "explain", "status": "succeeded",
                 "started_at": now + pd.Timedelta(hours=3), "progress": 1.0, "parent_run_id": "finetune-bench-a",
                 "config": '{"run": "finetune-bench-a", "methods": ["lrp", "gae"], "split": "test"}', "command": ""})
    runs = pd.DataFrame(runs)

    pred_a, conf_a, ok_a, probs_a = _predictions(rng, label, 0.8)
    pred_b, conf_b, ok_b, probs_b = _predictions(rng, label, 0.82, ok_a)
    preds = []
    for run, pred, conf, ok, probs in (("finetune-bench-a", pred_a, conf_a, ok_a, probs_a),
                                       ("finetune-bench-b", pred_b, conf_b, ok_b, probs_b)):
        preds.append(pa.table({
            "run_id": pa.array([run] * n), "image_id": pa.array(ids), "split": pa.array(["test"] * n),
            "label": pa.array(names), "probs": pa.array(list(probs)), "pred": pa.array(np.array(CLASSES)[pred]),
            "confidence": pa.array(conf), "correct": pa.array(ok), "predict_run_id": pa.array([f"predict-{run}"] * n)}))
    metrics, confusion = [], []
    for run, pred in (("finetune-bench-a", pred_a), ("finetune-bench-b", pred_b)):
        acc = float((pred == label).mean())
        metrics += [{"run_id": run, "split": "test", "metric": m, "class_name": "", "value": v}
                    for m, v in (("n", n), ("accuracy", acc), ("macro_f1", acc), ("kappa", acc - 0.2), ("ece", 0.05))]
        cm = pd.crosstab(names, np.array(CLASSES)[pred])
        confusion += [{"run_id": run, "split": "test", "true_label": t, "pred_label": p, "count": int(cm.loc[t, p])}
                      for t in cm.index for p in cm.columns]
    epochs = pd.DataFrame({"run_id": "finetune-bench-a", "epoch": np.arange(50),
                           "train_loss": np.linspace(1.4, 0.3, 50), "val_loss": np.linspace(1.3, 0.5, 50),
                           "val_accuracy": np.linspace(0.3, 0.8, 50), "val_score": np.linspace(0.2, 0.75, 50),
                           "is_best": np.arange(50) == 47})

    quality = pd.DataFrame({
        "blur": rng.lognormal(5.0, 1.0, n), "glare": rng.beta(1, 300, n),
        "illumination_mean": rng.normal(130, 25, n), "illumination_contrast": rng.normal(25, 5, n),
        "off_centre": np.abs(rng.normal(0, 0.04, n)), "fov_cutoff": rng.beta(1, 30, n),
        "fov_coverage": rng.uniform(0.6, 0.8, n)})
    grades = [quality_grade(row) for row in quality.to_dict("records")]
    quality_long = quality.assign(image_id=ids).melt("image_id", var_name="metric", value_name="value")
    landmarks = pd.DataFrame({"image_id": ids, "fov_cx": 512.0, "fov_cy": 512.0, "fov_r": 480.0,
                              "disc_x": np.where(eye == "right", 760.0, 264.0), "disc_y": 500.0, "disc_r": 60.0,
                              "fovea_x": 512.0, "fovea_y": 512.0, "eye_estimate": eye, "quality_grade": grades})

    def frames():
        yield "datasets", pd.DataFrame({"dataset_id": ["bench"], "root": [str(root)], "kind": ["folders"],
                                        "classes": [list(CLASSES)], "n_images": [n]})
        yield "images", images
        yield "runs", runs
        for table in preds:
            yield "predictions", table
        yield from (("metrics", pd.DataFrame(metrics)), ("confusion", pd.DataFrame(confusion)),
                    ("epochs", epochs), ("image_quality", quality_long), ("landmarks", landmarks))
        for method in METHODS:
            yield "zone_scores", _zone_rows(rng, "finetune-bench-a", ids, label, pred_a, eye, method,
                                            ("thirds", "anatomy"))
            for start in range(0, n, 25_000):
                sl = slice(start, min(start + 25_000, n))
                m = len(ids[sl])
                grid = _grids(rng, label[sl], method)
                yield "explanations", pa.table({
                    "run_id": pa.array(["finetune-bench-a"] * m), "image_id": pa.array(ids[sl]),
                    "method": pa.array([method] * m), "target": pa.array(pred_a[sl].astype(np.int32)),
                    "target_label": pa.array(np.array(CLASSES)[pred_a[sl]]), "target_kind": pa.array(["pred"] * m),
                    "grid_h": pa.array(np.full(m, GRID, np.int32)), "grid_w": pa.array(np.full(m, GRID, np.int32)),
                    "grid": pa.FixedSizeListArray.from_arrays(pa.array(grid.ravel()), GRID * GRID).cast(
                        pa.list_(pa.float32())),
                    "heatmap_path": pa.array([f"/nonexistent/{method}/{i}.npy" for i in ids[sl]]),
                    "heatmap_sha256": pa.array([""] * m), "heatmap_h": pa.array(np.full(m, 224, np.int32)),
                    "heatmap_w": pa.array(np.full(m, 224, np.int32)), "positive_sum": pa.array(np.ones(m)),
                    "entropy": pa.array(rng.uniform(0.7, 0.95, m)), "gini": pa.array(rng.uniform(0.2, 0.5, m)),
                    "peak_zone": pa.array(["center"] * m), "explain_run_id": pa.array(["explain-bench"] * m)})
        yield "zone_scores", _zone_rows(rng, "finetune-bench-b", ids, label, pred_b, eye, "lrp", ("thirds",))

    append_frames(path, frames())


# ------------------------------------------------------------------------- timing


def page_queries(n: int) -> dict[str, list[tuple[str, object]]]:
    """The reads each page makes, as (name, zero-argument call) per page (as the pages call them)."""
    from dashboard import queries as q
    from dashboard.data import DB
    from retcore.results import cases, headline, sample, summaries

    a, b, split, m = "finetune-bench-a", "finetune-bench-b", "test", "lrp"
    cls = list(CLASSES)

    def cutoff(size=sample.SAMPLE_IMAGES):
        s = sample.split_sample(DB, a, split, size)
        return s.cutoff if s.sampled else None

    def gallery_ids():  # the Cases page's map lookups: the 24 images of its three default galleries
        import duckdb

        with duckdb.connect(os.environ["RETCORE_DB"], read_only=True) as con:
            return [i for k in q.KINDS for i in cases.case_list(con, a, split, m, "glaucoma", k, "most confident",
                                                                 cls)["image_id"]]

    gallery = gallery_ids()

    def quality_sample():
        first = min(n, sample.SAMPLE_IMAGES)  # the page's 4,000 images come from the split's sample
        ids = [f"{i:016x}" for i in range(0, first, max(first // 4000, 1))]
        return q.zone_values(a, split, m, "thirds", cls, image_ids=ids, zones=["center", "left", "right"])

    return {
        "shared (sidebar)": [("trained_runs", q.trained_runs), ("run_splits", lambda: q.run_splits(a)),
                             ("run_methods", lambda: q.run_methods(a)), ("run_classes", lambda: q.run_classes(a))],
        "overview": [("runs", q.runs), ("metrics", lambda: q.metrics(a, split)),
                     ("headline report", lambda: headline.classification(DB, a, split, cls,
                                                                         **headline.STORED_SETTINGS)),
                     ("epochs", lambda: q.epochs(a))],
        "confidence": [("zone_list", lambda: q.zone_list(a, m)),
                       ("zone_summaries (n)", lambda: summaries.zone_summaries(DB, a, split, m, cls, "thirds")),
                       ("split_sample", cutoff),
                       ("zone_scores (one zone, sample)",
                        lambda: q.zone_scores(a, split, m, "thirds", cls, zone="center", sample=cutoff()))],
        "drift": [("zone_values (1000/class)", lambda: q.zone_values(a, split, m, "thirds", cls, per_class=1000)),
                  ("zone_summary", lambda: q.zone_summary(a, split, m, "thirds", cls)),
                  ("class_grids (1000/class)", lambda: q.class_grids(a, split, m, cls, per_class=1000)),
                  ("class_counts", lambda: q.class_counts(a, split)),
                  ("reference_images", lambda: q.reference_images(a, split, "normal"))],
        "quality": [("quality_frame (sample)", lambda: q.quality_frame(a, split, m, "thirds", "center", cls,
                                                                      metric="blur", sample=cutoff())),
                    ("zone_values (4000 ids)", quality_sample)],
        "cases": [(f"case_list {k}", (lambda k=k: q.case_list(a, split, m, "glaucoma", k, "lowest center score", cls)))
                  for k in q.KINDS]
        + [("case_list TP (most confident)", lambda: q.case_list(a, split, m, "glaucoma", "TP", "most confident", cls)),
           ("image_grids (24 gallery images)", lambda: q.image_grids(a, gallery, m, cls)),
           ("landmarks_for (24)", lambda: q.landmarks_for(gallery)),
           ("case_detail (6 queries)", lambda: q.case_detail(a, f"{0:016x}"))],
        "compare": [("compare_predictions (sample)", lambda: q.compare_predictions(a, b, split, cutoff())),
                    ("compare_zone_scores (sample)",
                     lambda: q.compare_zone_scores(a, m, b, m, split, "thirds", cls, cls,
                                                   zones=["center", "left", "right"], sample=cutoff())),
                    ("compare_zone_moved (sample)", lambda: q.compare_zone_moved(a, m, b, m, split, "thirds", "center",
                                                                                 cls, cls, sample=cutoff())),
                    ("compare_cases (sample)", lambda: q.compare_cases(a, b, split, sample=cutoff()))],
        "jobs": [("jobs", q.jobs)],
    }


def time_open(db: Path, repeats: int) -> float:
    """Median ms to open and close the database read-only (paid once per page run, see ``dashboard.data.held``)."""
    import duckdb

    spans = []
    for _ in range(max(repeats, 3)):
        t0 = time.perf_counter()
        duckdb.connect(str(db), read_only=True).close()
        spans.append(1000 * (time.perf_counter() - t0))
    return statistics.median(spans)


def time_queries(n: int, repeats: int) -> dict[str, list[tuple[str, int, float, float]]]:
    """Per page and query function: (name, SQL statements, slowest statement ms, total ms), medians.

    Every SQL statement is timed from opening its read-only connection to closing it
    (``dashboard.data._read``) inside ``dashboard.data.held``, as a page runs them: the
    database itself is opened before the clock starts (:func:`time_open` gives that cost,
    paid once per page run). Caches are cleared before each call, so helper lookups (table
    list, class list, sample cutoff...) that a page would find cached are counted too.
    """
    import streamlit as st

    from dashboard import data

    spans: list[float] = []
    original = data._read

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spans.append(1000 * (time.perf_counter() - t0))

    data._read = timed
    out = {}
    try:
        for page, calls in page_queries(n).items():
            rows = []
            for name, call in calls:
                slowest, total, count = [], [], 0
                for _ in range(repeats):
                    st.cache_data.clear()
                    spans.clear()
                    with data.held():
                        data._hold(str(data.db_path()))  # the page's one open of the database
                        t0 = time.perf_counter()
                        call()
                        total.append(1000 * (time.perf_counter() - t0))
                    slowest.append(max(spans, default=0.0))
                    count = len(spans)
                rows.append((name, count, statistics.median(slowest), statistics.median(total)))
            out[page] = rows
    finally:
        data._read = original
    return out


def time_pages(repeats: int) -> dict[str, tuple[float, float]]:
    """Cold (caches cleared) and warm AppTest render time of each page, in seconds (medians)."""
    import streamlit as st
    import streamlit.testing.v1.app_test as app_test
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.testing.v1 import AppTest

    class NavigationPagesManager(PagesManager):  # as dashboard.serve: app.py uses st.navigation
        def __init__(self, *args, **kwargs):
            PagesManager.uses_pages_directory = False
            super().__init__(*args, **kwargs)

    app_test.PagesManager = NavigationPagesManager
    app = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
    pages = ["overview", "confidence", "drift", "quality", "cases", "compare", "methods", "jobs"]
    at = AppTest.from_file(app, default_timeout=600)
    at.run()  # imports and first caches
    for page in pages:  # warm every page once (imports of torch, scipy, vl-convert...)
        at.switch_page(f"app_pages/{page}.py").run()
    out = {}
    for page in pages:
        cold, warm = [], []
        for _ in range(repeats):
            st.cache_data.clear()
            t0 = time.perf_counter()
            at.switch_page(f"app_pages/{page}.py").run()
            cold.append(time.perf_counter() - t0)
            if at.exception:
                raise RuntimeError(f"{page}: {[e.value for e in at.exception]}")
            t0 = time.perf_counter()
            at.run()
            warm.append(time.perf_counter() - t0)
        out[page] = (statistics.median(cold), statistics.median(warm))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--db", type=Path, default=None, help="Reuse (or create) this database file.")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-summaries", action="store_true",
                        help="Do not store the summaries (`retcore summarize`): time the compute-on-read path.")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    importlib.import_module("streamlit.logger").set_log_level("error")  # "No runtime found" outside a server

    tmp = None
    if args.db is None:
        tmp = tempfile.TemporaryDirectory(prefix="retcore-bench-")
        args.db = Path(tmp.name) / "results.duckdb"
    if not args.db.exists():
        t0 = time.perf_counter()
        build_database(args.db, args.images)
        print(f"built {args.db} ({args.images:,} images x {len(METHODS)} methods, "
              f"{args.db.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t0:.1f} s")
    if not args.no_summaries:
        from jobs.summarize import run_summarize

        t0 = time.perf_counter()
        if run_summarize(args.db, echo=lambda line: print(f"  summarize: {line}")):
            print(f"stored the summaries (`retcore summarize`) in {time.perf_counter() - t0:.1f} s")
    os.environ["RETCORE_DB"] = str(args.db)
    print(f"load average {' '.join(f'{v:.1f}' for v in os.getloadavg())} on {os.cpu_count()} cores; opening the "
          f"database read-only: {time_open(args.db, args.repeats):.0f} ms (once per page run)")

    print(f"\nqueries (ms, median of {args.repeats}, caches cleared; target: every SQL statement "
          f"< {QUERY_TARGET_MS:.0f} ms)")
    print(f"    {'query':<34} {'SQL':>4} {'slowest':>8} {'total':>8}")
    worst = 0.0
    for page, rows in time_queries(args.images, args.repeats).items():
        print(f"  {page}")
        for name, count, slowest_ms, total_ms in rows:
            worst = max(worst, slowest_ms)
            flag = "" if slowest_ms < QUERY_TARGET_MS else "  <-- over target"
            print(f"    {name:<34} {count:4d} {slowest_ms:8.1f} {total_ms:8.1f}{flag}")
    print(f"\npages (AppTest render, s, median of {args.repeats}; target < {PAGE_TARGET_S:.0f} s)")
    print(f"  {'page':<12} {'cold':>7} {'warm':>7}")
    slowest = 0.0
    for page, (cold, warm) in time_pages(args.repeats).items():
        slowest = max(slowest, cold)
        flag = "" if cold < PAGE_TARGET_S else "  <-- over target"
        print(f"  {page:<12} {cold:7.2f} {warm:7.2f}{flag}")
    print(f"\nslowest SQL statement {worst:.0f} ms, slowest page (cold) {slowest:.2f} s; "
          f"load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
