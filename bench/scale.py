"""Benchmark: images per second of sharded predict and data-parallel fine-tuning per process count.

Run by hand: ``.venv/bin/python bench/scale.py --db DB [--run latest] [--split test]
[--nproc 1,2] [--device cpu] [--finetune-epochs 1]``.

For each process count N it runs, on a copy of ``--db`` in a temporary folder (the original is
not written):

- ``retcore predict --run RUN --split SPLIT --nproc N`` (N = 1: the single-process job), wall
  seconds from launch to the merged predictions, and images per second (per process too);
- with ``--finetune-epochs E > 0``, ``retcore finetune`` of the run's own recipe and data for E
  epochs with ``--nproc N`` (per-process batch = the recipe's batch / N, so the global batch and
  the lr stay the same), wall seconds and training images per second.

Each process gets ``cores / N`` intra-op threads (``OMP_NUM_THREADS``); on a GPU machine pass
``--device cuda`` and N up to the GPU count. Timings are wall seconds from launch to the end of
the job: process start, model load, (for N > 1) the rendezvous and the merge are included, so
small splits show mostly that fixed cost.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], threads: int) -> float:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=str(ROOT))
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--run", default="latest")
    parser.add_argument("--split", default="test")
    parser.add_argument("--nproc", default="1,2")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--finetune-epochs", type=int, default=0)
    args = parser.parse_args()
    counts = [int(n) for n in args.nproc.split(",")]
    cores = os.cpu_count() or 1
    py = sys.executable
    with duckdb.connect(str(args.db), read_only=True) as con:
        run, config = con.execute("SELECT run_id, config FROM runs WHERE job = 'finetune' AND status = 'succeeded' "
                                  "AND (run_id = ? OR ? = 'latest') ORDER BY started_at DESC LIMIT 1",
                                  [args.run, args.run]).fetchone()
        n_images = con.execute("SELECT count(*) FROM predictions WHERE run_id = ? AND split = ?",
                               [run, args.split]).fetchone()[0]
    recipe = json.loads(config)
    print(f"run {run}: {n_images} {args.split} images; {cores} cores; device {args.device}")
    print("| job | processes | threads each | wall s | images/s | images/s per process |")
    print("|---|---|---|---|---|---|")
    for n in counts:
        threads = max(cores // n, 1) if args.device == "cpu" else 1
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "r.duckdb"
            shutil.copy(args.db, db)
            cmd = [py, "-m", "jobs.cli", "predict", "--run", run, "--split", args.split, "--db", str(db),
                   "--results", str(Path(tmp) / "results"), "--device", args.device, "--batch-size",
                   str(args.batch_size), "--num-workers", "1", "--nproc", str(n)]
            wall = _run(cmd, threads)
        rate = n_images / wall
        print(f"| predict | {n} | {threads} | {wall:.1f} | {rate:.1f} | {rate / n:.1f} |", flush=True)
        if args.finetune_epochs > 0:
            ft = recipe["finetune"]
            per_rank = max(int(ft["batch_size"]) // n, 1)
            with tempfile.TemporaryDirectory() as tmp:
                db = Path(tmp) / "r.duckdb"
                cmd = [py, "-m", "jobs.cli", "finetune", "--data", recipe["data"], "--model", ft["model"],
                       "--img-size", str(ft["img_size"]), "--epochs", str(args.finetune_epochs),
                       "--warmup-epochs", "0", "--batch-size", str(per_rank), "--blr", str(ft["blr"]),
                       "--layer-decay", str(ft["layer_decay"]), "--auto-augment", ft["auto_augment"] or "none",
                       "--re-prob", str(ft["re_prob"]), "--crop-scale-min", str(ft["crop_scale"][0]),
                       "--num-workers", "1", "--device", args.device, "--nproc", str(n), "--db", str(db)]
                wall = _run(cmd, threads)
                with duckdb.connect(str(db), read_only=True) as con:
                    n_train = con.execute("SELECT count(*) FROM images WHERE split = 'train'").fetchone()[0]
            rate = n_train * args.finetune_epochs / wall
            print(f"| finetune ({args.finetune_epochs} epoch, global batch {per_rank * n}) | {n} | {threads} | "
                  f"{wall:.1f} | {rate:.1f} | {rate / n:.1f} |", flush=True)


if __name__ == "__main__":
    main()
