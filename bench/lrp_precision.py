"""Benchmark: ``lrp`` / ``lrp_pixels`` on a GPU with float32 matrix products in TF32 vs full float32.

Run by hand on a CUDA machine: ``python bench/lrp_precision.py [--model retfound_mae] [--batch 32]
[--repeats 3] [--methods lrp,lrp_pixels] [--checkpoint PTH]``.

For each method it times one call on the same batch with ``matmul_precision='highest'`` (full
float32, the default) and ``'high'`` (TF32 tensor cores, float32 accumulation; opt-in, see
``retcore.explain.api.FP32_MATMUL``), each the median of ``--repeats`` calls after a warm-up, beside a
plain bf16 forward, and compares the two maps per image: Spearman rank correlation, relative L2
error ``|high - highest| / |highest|``, and whether the top-10% tokens (pixels) agree (share of the
``highest`` map's top 10% also in the ``high`` map's). Images are smooth random fields (not noise),
weights are random unless ``--checkpoint`` (a RETFound-layout file) is given.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from retcore.explain import relevance  # noqa: E402
from retcore.models import create_model  # noqa: E402


def _timed(fn, repeats: int) -> tuple[float, torch.Tensor]:
    out = fn()  # warm-up
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def _agreement(exact: torch.Tensor, fast: torch.Tensor) -> dict:
    e = exact.double().flatten(1).cpu().numpy()
    f = fast.double().flatten(1).cpu().numpy()
    rho = [spearmanr(a, b).statistic for a, b in zip(e, f)]
    rel = np.linalg.norm(f - e, axis=1) / np.maximum(np.linalg.norm(e, axis=1), 1e-300)
    k = max(1, e.shape[1] // 10)
    top = [len(set(np.argsort(-a)[:k]) & set(np.argsort(-b)[:k])) / k for a, b in zip(e, f)]
    return {"spearman_min": round(float(min(rho)), 5), "spearman_median": round(float(np.median(rho)), 5),
            "rel_l2_max": float(f"{rel.max():.3g}"), "rel_l2_median": float(f"{np.median(rel):.3g}"),
            "top10_overlap_min": round(float(min(top)), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="retfound_mae")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--methods", default="lrp,lrp_pixels")
    parser.add_argument("--checkpoint", type=Path, default=None)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("needs a CUDA device (on a CPU both settings are full float32)")
    device = torch.device("cuda")
    torch.manual_seed(0)
    kwargs = {"checkpoint": str(args.checkpoint)} if args.checkpoint else {}
    model = create_model(args.model, 4, drop_path=0.0, **kwargs).eval().to(device)
    noise = torch.randn(args.batch, 3, 28, 28, generator=torch.Generator().manual_seed(1))
    images = torch.nn.functional.interpolate(noise, size=224, mode="bicubic").to(device)  # smooth fields
    targets = torch.arange(args.batch, device=device) % 4

    def forward() -> torch.Tensor:
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
            return model(images)

    t_fwd, _ = _timed(forward, args.repeats)
    print(json.dumps({"step": "forward bf16", "batch": args.batch, "images_per_s": round(args.batch / t_fwd, 1)}),
          flush=True)
    for method in [m.strip() for m in args.methods.split(",") if m.strip()]:
        row = {"method": method, "batch": args.batch}
        maps = {}
        for precision in ("highest", "high"):
            seconds, maps[precision] = _timed(
                lambda p=precision: relevance(model, images, method, targets, matmul_precision=p), args.repeats)
            row[f"{precision}_images_per_s"] = round(args.batch / seconds, 1)
            row[f"{precision}_x_forward"] = round(seconds / t_fwd, 2)
        row.update(_agreement(maps["highest"], maps["high"]))
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
