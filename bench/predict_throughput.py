"""Benchmark: ``predict`` images per second from 512-px JPEG files, end to end and its two halves.

Run by hand: ``.venv/bin/python bench/predict_throughput.py [--folder DIR] [--images 2048]
[--model retfound_mae] [--device auto] [--batch 256] [--workers N] [--float-transfer] [--no-bf16]``.

It writes ``--images`` JPEGs of 512 px (scikit-image's fundus photo, jittered and tinted, quality
90) into ``--folder`` once (a temporary folder by default; written in parallel, so the files are in
the page cache, as they are from the second epoch on), then measures, through the code
``retcore predict`` runs (``FundusDataset`` + ``build_eval_transform`` + ``DataLoader`` with
pinned memory + ``predict_probs``):

1. **loader**: decode, FOV crop, resize, crop and normalise in ``--workers`` DataLoader workers,
   batches received and dropped (the ceiling the CPU side sets);
2. **model**: ``predict_probs`` on one batch already on the device, repeated (the ceiling the
   model sets; bf16 autocast on CUDA, as the job runs it);
3. **end to end**: ``predict_probs`` over the loader, as the job does: once cold (worker start
   included, ``cold_images_per_s``) and in steady state (persistent workers, second pass).

Each line is JSON with images per second; the last line gives end to end divided by the smaller
ceiling (1.0 = the pipeline adds nothing). The first batches of each measurement (worker start,
kernel selection) are left out of the rate: ``--warmup`` batches.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from retcore.data import FundusDataset, ImageRecord, build_eval_transform  # noqa: E402
from retcore.models import create_model  # noqa: E402
from retcore.train.engine import predict_probs, resolve_device  # noqa: E402

CLASSES = ["cataract", "diabetic_retinopathy", "glaucoma", "normal"]


def _write_one(args: tuple[str, int]) -> None:
    """Write one jittered 512-px fundus JPEG (a worker of :func:`build_folder`)."""
    from PIL import Image
    from skimage.data import retina

    path, seed = args
    rng = np.random.default_rng(seed)
    base = Image.fromarray(retina()).resize((512, 512), Image.Resampling.BICUBIC)
    img = base.rotate(float(rng.uniform(-12, 12)), resample=Image.Resampling.BILINEAR)
    tint = rng.uniform(0.85, 1.15, size=3)
    pixels = np.clip(np.asarray(img, dtype=np.float32) * tint, 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, quality=90)


def build_folder(folder: Path, images: int, workers: int) -> list[Path]:
    """``images`` JPEGs as ``<folder>/<class>/<i>_left.jpg`` (kept when already there)."""
    paths = [folder / CLASSES[i % 4] / f"{i}_left.jpg" for i in range(images)]
    todo = [(str(p), i) for i, p in enumerate(paths) if not p.is_file()]
    for name in CLASSES:
        (folder / name).mkdir(parents=True, exist_ok=True)
    if todo:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            list(pool.map(_write_one, todo, chunksize=16))
    return paths


def _rate(batches, images_per_batch: list[int], warmup: int, sync) -> float:
    """Images/s over the batches after the first ``warmup`` (``batches`` is consumed here)."""
    started, counted = None, 0
    for step, batch in enumerate(batches):
        if step == warmup:
            sync()
            started = time.perf_counter()
        elif step > warmup:
            counted += images_per_batch[step - 1]
        del batch
    sync()
    if started is None or counted == 0:
        raise SystemExit("too few images for the warm-up: raise --images or lower --warmup")
    # the batch that ended last is counted once it has been received
    return counted / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, default=None, help="JPEG folder (default: a temporary one)")
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--model", default="retfound_mae")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads of the main process (0 = torch's)")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    parser.add_argument("--warmup", type=int, default=2, help="batches left out of each rate")
    parser.add_argument("--float-transfer", action="store_true",
                        help="workers send normalised float32 (4x the bytes) instead of uint8 pixels")
    parser.add_argument("--no-pin", action="store_true", help="DataLoader without pinned memory")
    parser.add_argument("--skip-ceilings", action="store_true", help="only the end-to-end rate (no loader/model runs)")
    parser.add_argument("--no-bf16", action="store_true", help="fp32 forward (the job uses bf16 autocast on CUDA)")
    args = parser.parse_args()

    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    tmp = None
    folder = args.folder
    if folder is None:
        tmp = tempfile.TemporaryDirectory(prefix="retcore-predict-bench-")
        folder = Path(tmp.name)
    started = time.perf_counter()
    paths = build_folder(folder, args.images, args.workers)
    print(json.dumps({"step": "write JPEGs", "images": len(paths), "seconds": round(time.perf_counter() - started, 1)}),
          flush=True)

    records = [ImageRecord(path=str(p), label=p.parent.name, split="test") for p in paths]
    # as retcore predict: uint8 pixels from the workers, normalised on the device (--float-transfer: float32)
    dataset = FundusDataset(records, CLASSES, build_eval_transform(224, normalize=args.float_transfer))
    sizes = [min(args.batch, len(records) - i) for i in range(0, len(records), args.batch)]

    def loader():
        return torch.utils.data.DataLoader(dataset, batch_size=args.batch, num_workers=args.workers,
                                           pin_memory=device.type == "cuda" and not args.no_pin,
                                           persistent_workers=False)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    common = {"device": str(device), "workers": args.workers, "batch": args.batch,
              "transfer": "float32" if args.float_transfer else "uint8", "pinned": not args.no_pin,
              "threads": torch.get_num_threads()}
    loader_rate = float("inf")
    if not args.skip_ceilings:
        loader_rate = _rate(loader(), sizes, args.warmup, sync)
        print(json.dumps({"step": "loader", **common, "images_per_s": round(loader_rate, 1)}), flush=True)

    model = create_model(args.model, len(CLASSES), drop_path=0.0).to(device).eval()
    amp = not args.no_bf16
    batch = (torch.randn(args.batch, 3, 224, 224) if args.float_transfer
             else torch.randint(0, 256, (args.batch, 3, 224, 224), dtype=torch.uint8))
    repeats = max(args.warmup + 3, len(sizes))
    one = [(batch, torch.zeros(args.batch, dtype=torch.long), torch.arange(args.batch))]
    # predict_probs on the same pinned/ready batch ``repeats`` times; the rate counts the batches after warm-up
    pinned = batch.pin_memory() if device.type == "cuda" else batch
    one = [(pinned, one[0][1], one[0][2])]
    predict_probs(model, one * args.warmup, device=device, amp=amp)
    sync()
    model_rate = float("inf")
    if not args.skip_ceilings:
        t0 = time.perf_counter()
        predict_probs(model, one * repeats, device=device, amp=amp)
        sync()
        model_rate = repeats * args.batch / (time.perf_counter() - t0)
        print(json.dumps({"step": "model", **common, "model": args.model, "bf16": amp,
                          "images_per_s": round(model_rate, 1)}), flush=True)

    t0 = time.perf_counter()
    probs, _, _ = predict_probs(model, loader(), device=device, amp=amp)  # as the job: workers start inside
    sync()
    cold_rate = len(probs) / (time.perf_counter() - t0)
    steady = torch.utils.data.DataLoader(dataset, batch_size=args.batch, num_workers=args.workers,
                                         pin_memory=device.type == "cuda" and not args.no_pin,
                                         persistent_workers=True, prefetch_factor=4)
    predict_probs(model, steady, device=device, amp=amp)  # warm pass: workers started, kernels chosen
    sync()
    t0 = time.perf_counter()
    probs, _, _ = predict_probs(model, steady, device=device, amp=amp)
    sync()
    e2e_rate = len(probs) / (time.perf_counter() - t0)
    ceiling = min(loader_rate, model_rate)  # inf with --skip-ceilings: of_ceiling 0
    print(json.dumps({"step": "end to end", **common, "model": args.model, "images": len(probs),
                      "images_per_s": round(e2e_rate, 1), "cold_images_per_s": round(cold_rate, 1), "of_ceiling": round(e2e_rate / ceiling, 3),
                      "bound_by": "loader" if loader_rate < model_rate else "model"}), flush=True)
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
