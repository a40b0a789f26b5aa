"""`retcore finetune` draws its progress on stderr in epochs and batches, with an ETA (no per-mille bar)."""
import re


def test_finetune_bars_count_epochs_and_batches(tmp_path, tiny_demo, tiny_config, capsys):
    from jobs.finetune import run_finetune

    run_finetune(tiny_config(epochs=2), tiny_demo, db=tmp_path / "r.duckdb", results=tmp_path)
    err = capsys.readouterr().err
    assert "‰" not in err
    # the epoch bar: n/2 epochs, elapsed<remaining, a rate in epochs, the last epoch's losses and lr
    # (tqdm sorts the postfix keys)
    assert re.search(r"finetune: +100%\|.*\| 2/2 \[\d\d:\d\d<\d\d:\d\d, +[\d.]+(s/epoch|epoch/s), "
                     r"loss=[\d.]+, lr=[\d.e+-]+, score=[\d.-]+, val_loss=[\d.]+\]", err), err
    # the batch bars of each epoch and of its validation pass, with ETAs
    for desc in ("epoch 1/2", "epoch 2/2", "validate"):
        assert re.search(rf"{desc}: .*\| \d+/\d+ \[\d\d:\d\d<(\d\d:\d\d|\?), .*(s/batch|batch/s)", err), desc
