"""Benchmark: the cost of a guided training step relative to plain fine-tuning.

Run by hand: ``.venv/bin/python bench/guide.py [--model demo] [--batch 32]
[--steps 5] [--rounds 3] [--device auto] [--bf16]``. Times
``retcore.train.engine.train_one_epoch`` on the same model, batch and allowed
masks for plain fine-tuning and each guide penalty form (``relevance``:
gradient x attention rollout, one extra backward; ``input_gradient``: Right
for the Right Reasons, double back-propagation), interleaved in rounds, and
prints seconds per step and each form's ratio to the plain step.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from timm.loss import LabelSmoothingCrossEntropy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from retcore.guide import get_penalty, list_penalties  # noqa: E402
from retcore.models import create_model  # noqa: E402
from retcore.train.config import FinetuneConfig  # noqa: E402
from retcore.train.engine import resolve_device, train_one_epoch  # noqa: E402
from retcore.train.finetune import build_optimizer  # noqa: E402


def step_seconds(model, batches, cfg, device, form: str | None) -> float:
    """Seconds per step of one epoch over ``batches``; ``form`` None = plain fine-tuning."""
    opt = build_optimizer(model, cfg)
    crit = LabelSmoothingCrossEntropy(0.1)
    guide = get_penalty(form) if form else None
    t0 = time.perf_counter()
    train_one_epoch(model, batches, opt, crit, lr_at=lambda e: 1e-4, epoch=0, steps_per_epoch=len(batches),
                    device=device, amp=cfg.amp, guide=guide, guide_weight=1.0, guide_log=[])
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / len(batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (GPU)")
    args = parser.parse_args()

    device = resolve_device(args.device)
    torch.manual_seed(0)
    model = create_model(args.model, 4, drop_path=0.0).to(device)
    h, w = model.patch_embed.img_size
    images = torch.randn(args.batch, 3, h, w, device=device)
    labels = torch.randint(0, 4, (args.batch,), device=device)
    allowed = torch.zeros(args.batch, 1, h, w, device=device)
    allowed[..., h // 4: 3 * h // 4, w // 4: 3 * w // 4] = 1  # a central box
    weight = torch.ones(args.batch, device=device)
    plain = [(images, labels, None)] * args.steps
    guided = [(images, labels, None, allowed, weight)] * args.steps
    cfg = FinetuneConfig(model=args.model, amp=args.bf16, layer_decay=1.0)
    forms = [None, *list_penalties()]
    for form in forms:  # warm-up
        step_seconds(model, (guided if form else plain)[:1], cfg, device, form)
    times: dict[str | None, list[float]] = {f: [] for f in forms}
    for round_ in range(args.rounds):
        order = forms if round_ % 2 == 0 else forms[::-1]
        for form in order:
            times[form].append(step_seconds(model, guided if form else plain, cfg, device, form))
    base = statistics.median(times[None])
    print(f"device {device}, model {args.model}, batch {args.batch}, {torch.get_num_threads()} threads, "
          f"bf16 {args.bf16 and device.type == 'cuda'}")
    for form in forms:
        t = statistics.median(times[form])
        print(f"{form or 'plain':15s} {t * 1000:8.1f} ms/step  ({args.batch / t:7.1f} img/s)  x{t / base:.2f} plain")


if __name__ == "__main__":
    main()
