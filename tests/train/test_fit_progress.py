"""fit()'s progress bars: an epoch bar, a batch bar and a validation bar per epoch, a feature-cache bar."""
import math

import pytest
import torch
from torch.utils.data import TensorDataset

from retcore.models import create_model
from retcore.train.engine import RunningLoss
from retcore.train.finetune import fit


class RecordingBar:
    """A Bar that remembers what fit() asked of it; ``update`` always reports a redraw."""

    def __init__(self, made, **kwargs):
        self.kwargs = kwargs
        self.n = kwargs.get("initial", 0)
        self.postfix = {}
        self.closed = False
        made.append(self)

    def update(self, n=1):
        self.n += n
        return True

    def set_postfix(self, ordered_dict=None, refresh=True, **kwargs):
        self.postfix.update(kwargs)

    def close(self):
        self.closed = True


def _data(n, seed):
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.rand(n, 3, 64, 64, generator=g), torch.arange(n) % 2, torch.arange(n))


@pytest.mark.parametrize("freeze", [False, True])
def test_fit_draws_epoch_batch_validation_and_cache_bars(tmp_path, tiny_config, freeze):
    made = []
    cfg = tiny_config(epochs=2, batch_size=4, freeze_backbone=freeze)
    model = create_model("demo", 2, img_size=64, drop_path=0.0)
    train, val = _data(12, 0), _data(6, 1)
    fit(model, train, val, ["a", "b"], cfg, tmp_path, bars=lambda **kw: RecordingBar(made, **kw))

    assert all(bar.closed for bar in made)
    by_unit = {}
    for bar in made:
        by_unit.setdefault(bar.kwargs["unit"], []).append(bar)
    (epochs,) = by_unit["epoch"]
    assert (epochs.kwargs["total"], epochs.n, epochs.kwargs["leave"]) == (2, 2, True)
    assert set(epochs.postfix) == {"loss", "val_loss", "lr", "score"}
    train_bars = [b for b in by_unit["batch"] if b.kwargs["desc"].startswith("epoch")]
    val_bars = [b for b in by_unit["batch"] if b.kwargs["desc"] == "validate"]
    assert [b.kwargs["desc"] for b in train_bars] == ["epoch 1/2", "epoch 2/2"]
    assert all(b.kwargs["total"] == b.n == 3 and b.kwargs["leave"] is False for b in train_bars)
    assert all(math.isfinite(float(b.postfix["loss"])) and float(b.postfix["lr"]) > 0 for b in train_bars)
    assert len(val_bars) == 2 and all(b.kwargs["total"] == b.n == 2 for b in val_bars)
    if freeze:
        (cache,) = by_unit["img"]
        assert cache.kwargs["total"] == cache.n == 18
    else:
        assert "img" not in by_unit


def test_fit_without_bars_is_unchanged(tmp_path, tiny_config):
    """No bar factory: the same result as with bars (bars only read, never change training)."""
    cfg = tiny_config(epochs=1, batch_size=4)
    seen = []

    def run(bars, out):
        torch.manual_seed(0)
        model = create_model("demo", 2, img_size=64, drop_path=0.0)
        fit(model, _data(12, 0), _data(6, 1), ["a", "b"], cfg, out, bars=bars,
            on_epoch=lambda r: seen.append(r.train_loss))
        return model.head.weight.detach().clone()

    plain = run(None, tmp_path / "plain")
    drawn = run(lambda **kw: RecordingBar([], **kw), tmp_path / "drawn")
    assert torch.equal(plain, drawn)
    assert seen[0] == seen[1]


def test_running_loss_is_the_mean_and_nan_before_any_batch():
    running = RunningLoss()
    assert math.isnan(running.mean())
    running.reset(torch.device("cpu"))
    for value in (1.0, 2.0, 6.0):
        running.add(torch.tensor(value))
    assert running.mean() == pytest.approx(3.0)
