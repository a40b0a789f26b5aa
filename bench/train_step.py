"""Benchmark: retcore's training step vs a bare timm forward/backward/step loop.

Run by hand: ``.venv/bin/python bench/train_step.py [--model demo] [--batch 32]
[--steps 20] [--pipeline]``. Both loops train the same architecture on the
same random batch, interleaved in rounds so machine noise hits both alike.
Prints seconds per step for each and their ratio (target: <= 1.10). With
``--pipeline`` it also times ``retcore pipeline --demo`` in a temporary folder.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import timm
import torch
from timm.loss import LabelSmoothingCrossEntropy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from retcore.models import create_model  # noqa: E402
from retcore.train.config import FinetuneConfig  # noqa: E402
from retcore.train.engine import resolve_device, train_one_epoch  # noqa: E402
from retcore.train.finetune import build_optimizer  # noqa: E402
from retcore.train.schedule import cosine_lr  # noqa: E402


def bare_steps(model, images, labels, steps: int) -> float:
    """Seconds per step of the plainest timm loop: forward, CE, backward, AdamW step."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
    crit = LabelSmoothingCrossEntropy(0.1)
    model.train()
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = crit(model(images), labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    if images.is_cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps


def retcore_steps(model, images, labels, steps: int, cfg: FinetuneConfig, device) -> float:
    """Seconds per step of ``retcore.train.engine.train_one_epoch`` (lr schedule, layer decay)."""
    opt = build_optimizer(model, cfg)
    crit = LabelSmoothingCrossEntropy(cfg.smoothing)
    batches = [(images, labels, None)] * steps
    t0 = time.perf_counter()
    train_one_epoch(model, batches, opt, crit, lr_at=lambda e: cosine_lr(e, 10, 1, 1e-4, 1e-6), epoch=0,
                    steps_per_epoch=steps, device=device, amp=cfg.amp)
    if images.is_cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast for both loops (GPU)")
    parser.add_argument("--pipeline", action="store_true", help="also time `retcore pipeline --demo`")
    args = parser.parse_args()

    device = resolve_device(args.device)
    torch.manual_seed(0)
    ours = create_model(args.model, 4, drop_path=0.0).to(device)
    bare = timm.models.vision_transformer.VisionTransformer(
        img_size=ours.patch_embed.img_size, patch_size=ours.patch_embed.patch_size, embed_dim=ours.embed_dim,
        depth=len(ours.blocks), num_heads=ours.blocks[0].attn.num_heads, mlp_ratio=4, qkv_bias=True,
        num_classes=4, global_pool="avg", fc_norm=True, class_token=ours.cls_token is not None,
        embed_layer=type(ours.patch_embed),  # the demo model's convolutional stem, or timm's PatchEmbed
    ).to(device)
    bare.load_state_dict(ours.state_dict())  # same weights, same numerics
    size = ours.patch_embed.img_size
    images = torch.randn(args.batch, 3, *size, device=device)
    labels = torch.randint(0, 4, (args.batch,), device=device)
    cfg = FinetuneConfig(model=args.model, amp=args.bf16)
    ctx = torch.autocast("cuda", dtype=torch.bfloat16) if args.bf16 and device.type == "cuda" else None

    bare_steps(bare, images, labels, 2)  # warm-up
    retcore_steps(ours, images, labels, 2, cfg, device)
    t_bare, t_ours = [], []

    def run_bare() -> None:
        if ctx is not None:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                t_bare.append(bare_steps(bare, images, labels, args.steps))
        else:
            t_bare.append(bare_steps(bare, images, labels, args.steps))

    def run_ours() -> None:
        t_ours.append(retcore_steps(ours, images, labels, args.steps, cfg, device))

    for round_ in range(args.rounds):  # alternate the order so drift hits both loops alike
        for fn in ((run_bare, run_ours) if round_ % 2 == 0 else (run_ours, run_bare)):
            fn()
    b, o = statistics.median(t_bare), statistics.median(t_ours)
    print(f"device {device}, model {args.model}, batch {args.batch}, {torch.get_num_threads()} threads")
    print(f"bare timm step   {b * 1000:8.1f} ms  ({args.batch / b:7.1f} img/s)")
    print(f"retcore step     {o * 1000:8.1f} ms  ({args.batch / o:7.1f} img/s)")
    print(f"ratio retcore/bare = {o / b:.3f}  (target <= 1.10)")

    if args.pipeline:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "jobs.pipeline", "--demo", "--db", f"{tmp}/r.duckdb",
                            "--data-dir", f"{tmp}/demo", "--results", f"{tmp}/results"],
                           check=True, cwd=Path(__file__).resolve().parents[1])
            print(f"demo pipeline wall time {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
