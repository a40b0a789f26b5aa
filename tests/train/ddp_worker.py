"""Run by the data-parallel tests: one epoch of fit() on a tiny ViT and fixed random data.

``python ddp_worker.py OUT BATCH [--freeze]`` in one process, or under ``torchrun
--nproc-per-node 2`` (each rank gets BATCH images per step). Rank 0 writes the checkpoints
into OUT; the test compares them.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from retcore.models import ViTSpec, build_vit  # noqa: E402
from retcore.train.config import FinetuneConfig  # noqa: E402
from retcore.train.distributed import init_distributed, shutdown  # noqa: E402
from retcore.train.finetune import fit, seed_everything  # noqa: E402


def main() -> None:
    out, batch = Path(sys.argv[1]), int(sys.argv[2])
    freeze = "--freeze" in sys.argv
    torch.set_num_threads(1)
    init_distributed("cpu")
    g = torch.Generator().manual_seed(7)
    n_train, n_val = 52, 13  # neither a multiple of the global batch: the tails are handled
    images = torch.rand(n_train + n_val, 3, 32, 32, generator=g)
    labels = torch.randint(0, 3, (n_train + n_val,), generator=g)
    index = torch.arange(n_train + n_val)
    train = TensorDataset(images[:n_train], labels[:n_train], index[:n_train])
    val = TensorDataset(images[n_train:], labels[n_train:], index[n_train:])
    cfg = FinetuneConfig(model="tiny", epochs=2, warmup_epochs=1, batch_size=batch, blr=5e-2, layer_decay=0.75,
                         drop_path=0.0, smoothing=0.1, num_workers=0, device="cpu", amp=False, seed=3,
                         freeze_backbone=freeze)
    seed_everything(cfg.seed)
    model = build_vit(ViTSpec(patch_size=8, embed_dim=32, depth=2, num_heads=2, drop_path=0.0), 3, img_size=32)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out / f"init-{os.environ.get('RANK', '0')}.pth")
    fit(model, train, val, ["a", "b", "c"], cfg, out)
    shutdown()


if __name__ == "__main__":
    main()
