"""Seeded fine-tuning repeats on the same machine: the initial weights follow --seed too."""
import duckdb
import torch


def _losses(db):
    with duckdb.connect(str(db), read_only=True) as con:
        return [r[0] for r in con.execute("SELECT train_loss FROM epochs ORDER BY epoch").fetchall()]


def test_same_seed_same_run_bit_for_bit(tiny_demo, tiny_config, tmp_path):
    from jobs.finetune import run_finetune
    from jobs._runs import find_trained_run

    runs = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        db = tmp_path / f"{name}.duckdb"
        run_finetune(tiny_config(epochs=1, seed=seed), tiny_demo, db=db, results=tmp_path / name)
        state = torch.load(find_trained_run(db, "latest").checkpoint, weights_only=True)["model"]
        runs.append((_losses(db), state))
    (loss_a, a), (loss_b, b), (loss_c, c) = runs
    assert loss_a == loss_b and all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)  # another seed, another model
