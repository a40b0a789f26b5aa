"""Profile: where one explanation call spends its time, by operator (CPU or CUDA).

Run by hand: ``.venv/bin/python bench/profile_explain.py [--model retfound_mae] [--method lrp]
[--batch 32] [--device auto] [--bf16] [--rows 25]``.

After two warm-up calls it records one call of ``relevance(model, images, method)`` (and one plain
no-grad forward for scale) with ``torch.profiler`` and prints, per call: the wall seconds, the
number of kernels launched (CUDA) or operators run (CPU), and the table of the ``--rows`` most
expensive operators by self device time. That is the map for making a method cheaper: many small
kernels mean launch-bound (fuse, ``torch.compile``, CUDA graphs); a few large ones mean FLOP- or
memory-bound.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.explain import _run as run_once  # noqa: E402
from retcore.explain import list_methods  # noqa: E402
from retcore.models import create_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="retfound_mae")
    parser.add_argument("--method", default="lrp", help=f"one of {', '.join(list_methods())} or 'forward'")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--rows", type=int, default=25)
    args = parser.parse_args()

    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    torch.manual_seed(0)
    model = create_model(args.model, 4, drop_path=0.0).eval().to(device)
    images = torch.randn(args.batch, 3, 224, 224, device=device)

    def call(name: str) -> None:
        run_once(name, model, images, device, args.bf16)  # bench/explain.py's timed call, synchronised

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    for name in ("forward", args.method):
        call(name)
        call(name)
        started = time.perf_counter()
        call(name)
        seconds = time.perf_counter() - started
        with profile(activities=activities) as prof:
            call(name)
        events = prof.key_averages()
        kernels = sum(e.count for e in events if device.type == "cuda" and e.device_type.name == "CUDA")
        ops = sum(e.count for e in events if e.device_type.name == "CPU" and e.key.startswith("aten::"))
        print(f"\n== {name}: {seconds:.4f} s per call of {args.batch} images ({args.batch / seconds:.1f} images/s); "
              f"{ops} aten ops" + (f", {kernels} CUDA kernels" if device.type == "cuda" else ""))
        print(events.table(sort_by=sort, row_limit=args.rows, max_name_column_width=60))


if __name__ == "__main__":
    main()
