import pytest
import torch

from retcore.train.config import FinetuneConfig
from retcore.train.schedule import cosine_lr, set_lr


def test_warmup_then_half_cycle_cosine():
    assert cosine_lr(0, 10, 2, 1.0, 0.0) == 0.0
    assert cosine_lr(1, 10, 2, 1.0, 0.0) == pytest.approx(0.5)
    assert cosine_lr(2, 10, 2, 1.0, 0.1) == pytest.approx(1.0)
    assert cosine_lr(6, 10, 2, 1.0, 0.0) == pytest.approx(0.5)
    assert cosine_lr(10, 10, 2, 1.0, 0.1) == pytest.approx(0.1)


def test_set_lr_applies_group_scale():
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([{"params": [a], "lr_scale": 0.25}, {"params": [b]}], lr=1.0)
    set_lr(opt, 2.0)
    assert [g["lr"] for g in opt.param_groups] == [0.5, 2.0]


def test_effective_lr_follows_retfound_rule_and_round_trips():
    cfg = FinetuneConfig(batch_size=32, blr=5e-3)
    assert cfg.effective_lr() == pytest.approx(5e-3 * 32 / 256)
    assert FinetuneConfig.from_dict(cfg.to_dict()) == cfg
