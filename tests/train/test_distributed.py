"""Data-parallel fine-tuning: the sharded order, and 2 processes x batch b == 1 process x batch 2b."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from retcore.train.distributed import ShardedOrder, loader_order

WORKER = Path(__file__).with_name("ddp_worker.py")


@pytest.mark.parametrize("n, seed", [(10, 0), (57, 3), (128, 12)])
def test_loader_order_is_the_dataloaders(n, seed):
    loader = DataLoader(list(range(n)), batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(seed))
    assert [int(i) for batch in loader for i in batch] == loader_order(n, seed)


@pytest.mark.parametrize("size", [2, 3])
def test_ranks_share_out_the_single_process_batches(size):
    n, b, seed = 61, 4, 5
    ranks = [list(ShardedOrder(n, seed, r, size, b)) for r in range(size)]
    assert len({len(r) for r in ranks}) == 1  # every rank runs the same number of batches
    single = DataLoader(list(range(n)), batch_size=size * b, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(seed))
    for i, batch in enumerate(single):
        together = sorted(x for r in ranks for x in r[i * b:(i + 1) * b])
        assert together == sorted(int(x) for x in batch)
    # evaluation: no shuffle, the tail padded, every index seen
    val = [list(ShardedOrder(n, 0, r, size, b, drop_last=False, shuffle=False)) for r in range(size)]
    assert {x for r in val for x in r} == set(range(n)) and len({len(r) for r in val}) == 1


def _run(cmd: list[str], tmp_path: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(WORKER.parents[2]))
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.parametrize("freeze", [False, True], ids=["finetune", "linear-probe"])
def test_two_processes_equal_one_with_the_global_batch(tmp_path, freeze):
    flag = ["--freeze"] if freeze else []
    _run([sys.executable, str(WORKER), str(tmp_path / "one"), "8", *flag], tmp_path)
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
          str(WORKER), str(tmp_path / "two"), "4", *flag], tmp_path)
    one = torch.load(tmp_path / "one" / "checkpoint-last.pth", map_location="cpu", weights_only=True)
    two = torch.load(tmp_path / "two" / "checkpoint-last.pth", map_location="cpu", weights_only=True)
    key = "head" if freeze else "model"
    assert one[key].keys() == two[key].keys()
    changed = 0
    for name, value in one[key].items():
        torch.testing.assert_close(two[key][name], value, rtol=1e-4, atol=1e-5, msg=name)
        changed += 1
    assert changed and one["train_state"]["best_epoch"] == two["train_state"]["best_epoch"]
    assert one["optimizer"]["param_groups"][0]["lr"] == pytest.approx(two["optimizer"]["param_groups"][0]["lr"])
    # both ranks started from the same weights, and training moved them (not two untouched models)
    init = [torch.load(tmp_path / "two" / f"init-{r}.pth", map_location="cpu", weights_only=True) for r in (0, 1)]
    assert all(torch.equal(init[0][k], init[1][k]) for k in init[0])
    final = one[key] if not freeze else {f"head.{k[5:]}" if k.startswith("head.") else k: v
                                         for k, v in one[key].items()}
    moved = [k for k, v in final.items() if k in init[0] and (v - init[0][k]).abs().max() > 1e-3]
    assert moved, "no weight changed in two epochs"


def test_cli_nproc_launches_torchrun_and_rank0_alone_records(tmp_path, tiny_demo):
    """`retcore finetune --nproc 2` on the tiny demo set: one run row, each epoch recorded once, the
    world size and the global-batch lr in its config, checkpoints written, and the rerun command
    carries --nproc."""
    import json

    import duckdb

    from jobs.rerun import rerun

    db = tmp_path / "r.duckdb"
    cmd = [sys.executable, "-m", "jobs.cli", "finetune", "--data", str(tiny_demo), "--model", "demo",
           "--img-size", "64", "--epochs", "2", "--warmup-epochs", "1", "--batch-size", "4", "--blr", "1e-3",
           "--layer-decay", "1.0", "--drop-path", "0", "--auto-augment", "none", "--re-prob", "0",
           "--num-workers", "0", "--device", "cpu", "--nproc", "2", "--db", str(db)]
    _run(cmd, tmp_path)
    with duckdb.connect(str(db), read_only=True) as con:
        runs = con.execute("SELECT run_id, status, config, command FROM runs WHERE job = 'finetune'").fetchall()
        epochs = con.execute("SELECT epoch, count(*) FROM epochs GROUP BY epoch ORDER BY epoch").fetchall()
    assert len(runs) == 1 and runs[0][1] == "succeeded"
    assert epochs == [(0, 1), (1, 1)]
    config = json.loads(runs[0][2])
    assert config["world_size"] == 2
    assert config["finetune"]["effective_lr"] == pytest.approx(1e-3 * 4 * 2 / 256)
    run_dir = tmp_path / "results" / "runs" / runs[0][0]
    assert (run_dir / "checkpoint-best.pth").exists() and (run_dir / "checkpoint-last.pth").exists()
    again = rerun("finetune", runs[0][2])
    assert "--nproc 2" in again.command and again.differences == ()
