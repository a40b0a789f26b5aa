"""Benchmark: the real-data path at Kaggle size, with ViT-L (``retfound_mae``).

Run by hand: ``.venv/bin/python bench/real_layout.py [--out data/real-layout] [--checkpoint PTH]
[--device auto] [--sample 32] [--explain-sample 4] [--methods lrp,lrp_pixels,...]``.

1. Builds (once) a folder in the public "Eye Diseases Classification" layout:
   ``<out>/{cataract,diabetic_retinopathy,glaucoma,normal}/<patient>_<eye>.jpg``,
   1038 / 1098 / 1007 / 1074 JPEGs of 512 px made from scikit-image's fundus photo
   (jittered, tinted per class), ~1% of them bad (truncated, empty, not an image).
2. Ingests all of it with the job's own code (decode, hash, dedupe, patient-grouped
   split) into a temporary database: seconds, images per second.
3. Loads ``retfound_mae`` from a checkpoint in RETFound's MAE layout (``--checkpoint``,
   or a random one written once under ``<out>-ckpt/``) and measures, per image, on
   ``--sample`` images through the same code the jobs run: feature caching for
   ``--freeze-backbone`` (no-grad forward, bf16 where the CPU/GPU has it), predict
   (forward + softmax), image preparation for explain (decode, FOV crop, landmarks,
   quality, zones) and each explanation method (``--explain-sample`` images, batch
   ``--explain-batch``).
4. Projects the wall time of ``retcore pipeline --data <out> --model retfound_mae
   --checkpoint ... --freeze-backbone`` from those rates: caching train+val (85%),
   predicting val+test (30%), explaining test (15%) with every method, faithfulness on
   32 images; the probe's epochs on cached features are measured too.

Peak memory is the process's resident-set high-water mark (CPU) or
``torch.cuda.max_memory_allocated`` (GPU) after each step.
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CLASS_COUNTS = {"cataract": 1038, "diabetic_retinopathy": 1098, "glaucoma": 1007, "normal": 1074}
TINTS = {"cataract": (1.15, 1.12, 0.92), "diabetic_retinopathy": (1.0, 0.8, 0.8), "glaucoma": (0.9, 1.0, 1.1),
         "normal": (1.0, 1.0, 1.0)}
ALL_METHODS = "lrp,lrp_pixels,gae,gradcam,rollout,attention"


def build_folder(out: Path, side: int = 512, bad_share: float = 0.01, seed: int = 0) -> tuple[int, int]:
    """Write the Kaggle-layout folder once (a ``.complete`` marker makes reruns skip it); (images, bad)."""
    marker = out / ".complete"
    if marker.is_file():
        n = sum(1 for _ in out.glob("*/*.jpg"))
        return n, int(marker.read_text())
    from skimage.data import retina

    if out.exists():
        shutil.rmtree(out)
    rng = np.random.default_rng(seed)
    base = Image.fromarray(retina()).resize((side + 32, side + 32), Image.Resampling.BICUBIC)
    patient, written, bad = 1, 0, 0
    for cls, count in CLASS_COUNTS.items():
        (out / cls).mkdir(parents=True)
        for k in range(count):
            eye = "left" if k % 2 == 0 else "right"
            name = out / cls / f"{patient}_{eye}.jpg"
            patient += k % 2
            if rng.random() < bad_share:
                kind = rng.integers(3)
                name.write_bytes(b"" if kind == 0 else b"not an image" if kind == 1 else b"\xff\xd8\xff\xe0" + bytes(99))
                bad += 1
                continue
            img = base.rotate(float(rng.uniform(-12, 12)), resample=Image.Resampling.BILINEAR)
            dx, dy = rng.integers(0, 33, size=2)
            img = img.crop((dx, dy, dx + side, dy + side))
            arr = np.asarray(img, np.float32) * np.array(TINTS[cls]) * rng.uniform(0.8, 1.2)
            if eye == "right":
                arr = arr[:, ::-1]
            Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(name, quality=90)
            written += 1
    marker.write_text(str(bad))
    return written + bad, bad


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed(fn, device: torch.device) -> tuple[float, object]:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("data/real-layout"))
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--sample", type=int, default=32, help="images for the forward-pass rates")
    parser.add_argument("--batch", type=int, default=16, help="batch of caching / predict")
    parser.add_argument("--explain-sample", type=int, default=4)
    parser.add_argument("--explain-batch", type=int, default=4)
    parser.add_argument("--methods", default=ALL_METHODS)
    parser.add_argument("--epochs", type=int, default=50, help="probe epochs to project")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    from torch.utils.data import DataLoader

    from jobs._dataset import prepare_dataset
    from retcore.data import FundusDataset, build_eval_transform
    from retcore.explain import relevance
    from retcore.inputs import ExplainInputs
    from retcore.models import create_model
    from retcore.models.layout import save_mae_pretrain_checkpoint
    from retcore.storage.runs import open_db
    from retcore.train.config import FinetuneConfig
    from retcore.train.engine import predict_probs, resolve_device
    from retcore.train.finetune import extract_pooled_features

    device = resolve_device(args.device)
    report: dict[str, object] = {"device": str(device), "threads": torch.get_num_threads()}
    t0 = time.perf_counter()
    n_files, n_bad = build_folder(args.out)
    report.update(files=n_files, bad_files=n_bad, build_s=round(time.perf_counter() - t0, 1))
    print(f"folder {args.out}: {n_files} files ({n_bad} bad), built/checked in {report['build_s']} s", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        db = open_db(Path(tmp) / "bench.duckdb")
        t_ingest, prepared = _timed(lambda: prepare_dataset(db, args.out, run_id="bench-ingest"), torch.device("cpu"))
    usable = prepared.records
    report.update(ingest_s=round(t_ingest, 1), ingest_img_per_s=round(n_files / t_ingest, 1),
                  usable=len(usable), skipped=prepared.n_errors)
    print(f"ingest: {t_ingest:.1f} s for {n_files} files ({n_files / t_ingest:.0f} img/s), "
          f"{len(usable)} usable, {prepared.n_errors} skipped", flush=True)

    ckpt = args.checkpoint or args.out.with_name(args.out.name + "-ckpt") / "RETFound_mae_random.pth"
    if not ckpt.is_file():
        print(f"writing a random checkpoint in RETFound's MAE layout: {ckpt}", flush=True)
        save_mae_pretrain_checkpoint(ckpt)
    t_load, model = _timed(lambda: create_model("retfound_mae", 4, checkpoint=str(ckpt)), torch.device("cpu"))
    model = model.to(device).eval()
    report["load_checkpoint_s"] = round(t_load, 1)
    print(f"retfound_mae loaded from {ckpt.name} in {t_load:.1f} s; peak {_peak_mb(device):.0f} MB", flush=True)

    classes = prepared.classes
    sample = usable[: args.sample]
    data = FundusDataset(sample, classes, build_eval_transform(224))
    amp = FinetuneConfig().amp

    def loader():
        return DataLoader(data, batch_size=args.batch, num_workers=args.workers)

    t_cache, feats = _timed(lambda: extract_pooled_features(model, loader(), device=device, amp=amp), device)
    cache_per = t_cache / len(sample)
    report.update(cache_s_per_img=round(cache_per, 4), cache_peak_mb=round(_peak_mb(device)))
    print(f"feature caching: {cache_per:.3f} s/img ({1 / cache_per:.1f} img/s); peak {_peak_mb(device):.0f} MB",
          flush=True)

    t_pred, _ = _timed(lambda: predict_probs(model, loader(), device=device), device)
    pred_per = t_pred / len(sample)
    report.update(predict_s_per_img=round(pred_per, 4), predict_peak_mb=round(_peak_mb(device)))
    print(f"predict: {pred_per:.3f} s/img ({1 / pred_per:.1f} img/s); peak {_peak_mb(device):.0f} MB", flush=True)

    from retcore.train.finetune import _PooledHead

    head = _PooledHead(model)
    probe = torch.optim.AdamW(head.parameters(), lr=1e-3)
    x, y = feats.tensors[0].to(device), feats.tensors[1].to(device)

    def one_epoch() -> None:
        for _ in range(max(1, int(0.7 * len(usable)) // max(len(x), 1))):
            probe.zero_grad()
            torch.nn.functional.cross_entropy(head(x), y).backward()
            probe.step()

    t_epoch, _ = _timed(one_epoch, device)
    report["probe_epoch_s"] = round(t_epoch, 3)

    prep = ExplainInputs([{"image_id": str(i), "path": r.path, "mask_path": None, "eye": r.eye}
                          for i, r in enumerate(usable[: args.explain_sample])], 224)
    t_prep, items = _timed(lambda: [prep[i] for i in range(len(prep))], torch.device("cpu"))
    prep_per = t_prep / len(prep)
    report["explain_prep_s_per_img"] = round(prep_per, 4)
    print(f"explain image preparation (decode, FOV, landmarks, quality, zones): {prep_per:.3f} s/img "
          "(runs in DataLoader workers)", flush=True)
    batch = torch.stack([it.tensor for it in items])[: args.explain_batch].to(device)
    per_method = {}
    for method in [m.strip() for m in args.methods.split(",") if m.strip()]:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        relevance(model, batch[:1], method)  # warm-up
        t_m, maps = _timed(lambda m=method: relevance(model, batch, m), device)
        per_method[method] = t_m / len(batch)
        ok = bool(torch.isfinite(maps).all() and maps.flatten(1).std(1).gt(0).all())
        report[f"{method}_s_per_img"] = round(per_method[method], 4)
        report[f"{method}_peak_mb"] = round(_peak_mb(device))
        print(f"{method}: {per_method[method]:.3f} s/img ({1 / per_method[method]:.2f} img/s), "
              f"maps finite and non-constant: {ok}; peak {_peak_mb(device):.0f} MB", flush=True)

    n = len(usable)
    n_trainval, n_predict, n_test = int(0.85 * n), int(0.30 * n), int(0.15 * n)
    faith = 32 * sum(per_method.values()) + 32 * len(per_method) * 2 * 10 * pred_per
    stages = {
        "ingest": t_ingest,
        "finetune (cache train+val features)": n_trainval * cache_per,
        f"finetune ({args.epochs} probe epochs)": args.epochs * t_epoch,
        "predict val+test": n_predict * pred_per,
        "explain test (every method)": n_test * sum(per_method.values()),
        "explain image preparation (in 2 workers)": n_test * prep_per / max(args.workers, 1),
        "faithfulness (32 images)": faith,
    }
    total = sum(stages.values())
    print(f"\nprojected `retcore pipeline --data {args.out} --model retfound_mae --freeze-backbone` "
          f"on {device} ({n} usable images):")
    for name, seconds in stages.items():
        print(f"  {name:<46} {seconds / 60:8.1f} min")
    print(f"  {'total':<46} {total / 60:8.1f} min ({total / 3600:.1f} h)")
    report.update(projected_total_min=round(total / 60, 1), projected_stages_min={k: round(v / 60, 1)
                                                                                 for k, v in stages.items()})
    print(json.dumps(report))


if __name__ == "__main__":
    main()
