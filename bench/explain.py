"""Benchmark: cost of each explanation method relative to a plain forward pass.

Run by hand: ``.venv/bin/python bench/explain.py [--model vit_base] [--img-size 224]
[--batch 8] [--device auto] [--bf16] [--repeats 3] [--methods lrp,gae,...]``.

For each method of :func:`retcore.explain.list_methods` it prints the time
per image divided by the time per image of a plain no-grad forward of the
same model on the same batch, measured in the same run: each round runs
``forward, m1, forward, m2, ..., forward``, each method call is divided by the
mean of the forward calls right before and after it (so a machine whose load
drifts, e.g. a CPU shared with another job, hits both alike), and the median
over the rounds is reported; and the peak memory of one call above the memory held before it:
``torch.cuda.max_memory_allocated`` on GPU, the growth of the resident-set
high-water mark (``ru_maxrss``) in a fresh subprocess per method on CPU
(skip with ``--no-memory``). Targets: ``lrp`` <= 6x, ``gae`` and ``gradcam``
<= 3x, ``rollout`` and ``attention`` <= 1.5x.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from retcore.explain import list_methods, relevance  # noqa: E402
from retcore.models import create_model  # noqa: E402

TARGETS = {"lrp": 6.0, "gae": 3.0, "gradcam": 3.0, "rollout": 1.5, "attention": 1.5}
FORWARD = "forward"


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _setup(args: argparse.Namespace) -> tuple[torch.nn.Module, torch.Tensor, torch.device]:
    device = _device(args.device)
    torch.manual_seed(0)
    model = create_model(args.model, 4, global_pool=args.pool, img_size=args.img_size, drop_path=0.0)
    model = model.eval().to(device)
    images = torch.randn(args.batch, 3, args.img_size, args.img_size, generator=torch.Generator().manual_seed(1))
    return model, images.to(device), device


def _autocast(device: torch.device, bf16: bool) -> AbstractContextManager:
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()


def _run(name: str, model: torch.nn.Module, images: torch.Tensor, device: torch.device, bf16: bool) -> float:
    """Seconds for one call of ``name`` (``forward`` = plain no-grad forward)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    with _autocast(device, bf16):
        if name == FORWARD:
            with torch.no_grad():
                model(images)
        else:
            relevance(model, images, name)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_high_water_mark() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _memory_child(args: argparse.Namespace) -> None:
    """In a fresh process: peak memory (MB) of one call of ``args.memory_child`` above the setup."""
    model, images, device = _setup(args)
    if device.type == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    elif _reset_high_water_mark() and _status_kib("VmRSS") is not None:
        base = _status_kib("VmRSS")
    else:
        base = None
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    _run(args.memory_child, model, images, device, args.bf16)
    if device.type == "cuda":
        peak_mb = (torch.cuda.max_memory_allocated() - base) / 2**20
    elif base is not None:
        peak_mb = ((_status_kib("VmHWM") or 0) - base) / 1024
    else:
        peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - maxrss) / 1024
    print(json.dumps({"peak_mb": peak_mb}))


def _memory(args: argparse.Namespace, name: str) -> float:
    cmd = [sys.executable, __file__, "--memory-child", name, "--model", args.model, "--img-size", str(args.img_size),
           "--batch", str(args.batch), "--device", args.device, "--pool", args.pool]
    if args.bf16:
        cmd.append("--bf16")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    return float(json.loads(out)["peak_mb"])


def add_setup_options(parser: argparse.ArgumentParser) -> None:
    """The options :func:`_setup` reads: model, image size, batch, pooling, device."""
    parser.add_argument("--model", default="vit_base")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--pool", default="avg", choices=("avg", "token"))
    parser.add_argument("--device", default="auto")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_setup_options(parser)
    parser.add_argument("--bf16", action="store_true", help="run everything under bf16 autocast")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds (medians are reported)")
    parser.add_argument("--methods", default=",".join(list_methods()))
    parser.add_argument("--no-memory", action="store_true", help="skip the per-method memory subprocesses")
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        _memory_child(args)
        return

    methods = [m for m in args.methods.split(",") if m]
    model, images, device = _setup(args)
    names = [FORWARD] + methods
    print(f"model {args.model} ({args.pool} pool), {args.img_size}px, batch {args.batch}, device {device}"
          f"{' (' + torch.cuda.get_device_name(device) + ')' if device.type == 'cuda' else ''}, "
          f"bf16 {args.bf16}, torch threads {torch.get_num_threads()}, {args.repeats} rounds")
    for name in names:  # warm-up (also fills the |W| cache of lrp)
        _run(name, model, images, device, args.bf16)
    times: dict[str, list[float]] = {name: [] for name in names}
    ratios: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(args.repeats):
        before = _run(FORWARD, model, images, device, args.bf16)
        times[FORWARD].append(before)
        ratios[FORWARD].append(1.0)
        for name in methods:
            elapsed = _run(name, model, images, device, args.bf16)
            after = _run(FORWARD, model, images, device, args.bf16)
            times[name].append(elapsed)
            times[FORWARD].append(after)
            ratios[name].append(elapsed / (0.5 * (before + after)))
            before = after
    per_image = {name: statistics.median(ts) / args.batch for name, ts in times.items()}
    print(f"{'method':<11} {'s/image':>8} {'x forward':>10} {'target':>7} {'peak MB':>9}  rounds (s/batch)")
    for name in names:
        ratio = statistics.median(ratios[name])
        target = TARGETS.get(name)
        flag = "" if target is None else (" ok" if ratio <= target else " OVER")
        mem = "" if args.no_memory else f"{_memory(args, name):9.0f}"
        rounds = " ".join(f"{t:.2f}" for t in times[name]) if name != FORWARD else \
            f"{min(times[name]):.2f}..{max(times[name]):.2f} ({len(times[name])} calls)"
        target_text = f"{target:.1f}" if target is not None else "-"
        print(f"{name:<11} {per_image[name]:8.3f} {ratio:10.2f} {target_text:>7}{flag:<5}{mem:>9}  {rounds}")


if __name__ == "__main__":
    main()
