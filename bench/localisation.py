"""Benchmark: do sharper maps localise lesions better? Token maps at 224 vs 448 px, token vs pixel.

Run by hand: ``.venv/bin/python bench/localisation.py --db DB --run RUN [--split test]
[--sizes 224,448] [--methods lrp,gae,gradcam,lrp_pixels] [--images 0] [--batch-size 4]``.

For every image of ``--split`` that has a ground-truth lesion mask (the demo dataset draws one:
bit 1 of its mask files, the class's lesions: haemorrhages and exudates, the enlarged cup,
the lens haze), each method explains the image's **true class** on the fine-tuned model at
each input size: at the training size (224 px: 14 x 14 tokens) and, for a larger size, on a
copy of the model whose position embedding is resized bicubically
(:func:`retcore.models.at_input_size`; 448 px: 28 x 28 tokens) fed the same photo resized to
that size by the eval transform. Each map is scored against the lesion mask in its own input
frame with the product's scores (:func:`retcore.evaluate.localisation_scores`): pointing game
(the maximum lies on the lesion), relevance mass accuracy (share of positive relevance on the
lesion) and rank accuracy (share of the top-|mask| pixels on the lesion), as ``retcore explain``
stores them. It prints, per (method, size), the mean of each score with a 95% percentile
bootstrap interval over images, the accuracy of the model at that size on those images, the
paired difference 448 - 224 per method (bootstrap interval, Wilcoxon p) and the seconds per
image. Token maps are upsampled bilinearly to the input size before scoring; ``lrp_pixels``
is already at input resolution.

The database is read only; nothing is written. Demo images are 224 px files, so at 448 px the
model sees an upsampled photo: the finer token grid is the only change. A dataset of larger
photos (Kaggle's 512 px) shows what 448 px adds in detail too.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MEASURES = ("pointing_game", "mass_accuracy", "rank_accuracy")


def _maps(model, x, method, targets, size):
    from retcore.explain import relevance, upsample

    maps = relevance(model, x, method, targets).float()
    return maps if maps.shape[-2:] == (size, size) else upsample(maps, (size, size))


def measure(db: Path, run: str, split: str, sizes: list[int], methods: list[str], images: int,
            batch_size: int) -> pd.DataFrame:
    """One row per (image, method, size): the three localisation scores, correct, seconds."""
    from torch.utils.data import DataLoader

    from jobs._runs import find_trained_run, load_trained_model, run_images
    from retcore.evaluate import localisation_scores
    from retcore.inputs import ExplainInputs, collate_prepared
    from retcore.models import at_input_size
    from retcore.storage.runs import open_db

    db = open_db(db)
    trained = find_trained_run(db, run)
    model, meta = load_trained_model(trained.checkpoint, device="cpu")
    model.eval()
    classes = list(meta["class_names"])
    frame = run_images(db, trained.dataset_id, split)
    frame = frame[frame["mask_path"].notna() & (frame["mask_path"].astype(str) != "")]
    frame = frame[frame["label"].isin(classes) & (frame["label"] != "normal")].reset_index(drop=True)
    if images:
        frame = frame.head(images)
    if frame.empty:
        raise SystemExit(f"no {split} images of run {trained.run_id} have a lesion mask")
    index = {c: i for i, c in enumerate(classes)}
    rows = []
    for size in sizes:
        net = model if size == model.patch_embed.img_size[0] else at_input_size(model, size)
        data = ExplainInputs(frame[["image_id", "path", "mask_path", "eye"]].to_dict("records"), size,
                             zone_sets=("mask",))
        loader = DataLoader(data, batch_size=batch_size, collate_fn=collate_prepared, num_workers=0)
        for batch in loader:
            ok = batch.ok
            x = batch.images
            labels = torch.tensor([index[frame.loc[it.index, "label"]] for it in ok])
            with torch.no_grad():
                correct = (net(x).argmax(1) == labels).numpy()
            for method in methods:
                started = time.perf_counter()
                maps = _maps(net, x, method, labels, size).numpy()
                seconds = (time.perf_counter() - started) / len(ok)
                for k, it in enumerate(ok):
                    mask = it.geometry.masks.get("lesion")
                    if mask is None or not mask.any():
                        continue
                    scores = localisation_scores(maps[k], mask)
                    rows.append({"image_id": it.image_id, "label": frame.loc[it.index, "label"], "method": method,
                                 "size": size, "grid": "pixel" if method == "lrp_pixels" else f"{size // 16}",
                                 "correct": bool(correct[k]), "seconds": seconds, **scores})
            print(f"  {size} px: {len(rows)} rows", file=sys.stderr, flush=True)
    return pd.DataFrame(rows)


def report(rows: pd.DataFrame, sizes: list[int]) -> None:
    from scipy.stats import wilcoxon

    from retcore.stats import bootstrap_mean

    print(f"\n{rows['image_id'].nunique()} images with a lesion mask "
          f"({', '.join(f'{k} {v}' for k, v in rows.drop_duplicates('image_id')['label'].value_counts().items())}); "
          "true class explained\n")
    print("| method | input | tokens | accuracy | pointing game | mass accuracy | rank accuracy | s / image |")
    print("|---|---|---|---|---|---|---|---|")
    for (method, size), g in rows.groupby(["method", "size"], sort=True):
        cells = []
        for m in MEASURES:
            v = g[m].to_numpy(np.float64)
            est = bootstrap_mean(v[np.isfinite(v)], n_boot=2000, seed=0)
            cells.append(f"{est.value:.3f} [{est.low:.3f}, {est.high:.3f}]")
        grid = "pixels" if method == "lrp_pixels" else f"{size // 16}x{size // 16}"
        print(f"| `{method}` | {size} | {grid} | {g['correct'].mean():.3f} | " + " | ".join(cells)
              + f" | {g['seconds'].mean():.2f} |")
    if len(sizes) < 2:
        return
    lo, hi = sizes[0], sizes[-1]
    print(f"\nPaired difference {hi} - {lo} px per image (95% bootstrap interval, Wilcoxon p):\n")
    print("| method | " + " | ".join(MEASURES) + " |")
    print("|---|" + "---|" * len(MEASURES))
    for method, g in rows.groupby("method", sort=True):
        wide = g.pivot_table(index="image_id", columns="size", values=list(MEASURES))
        cells = []
        for m in MEASURES:
            d = (wide[(m, hi)] - wide[(m, lo)]).to_numpy(np.float64)
            d = d[np.isfinite(d)]
            est = bootstrap_mean(d, n_boot=2000, seed=0)
            p = wilcoxon(d).pvalue if np.any(d != 0) else 1.0
            cells.append(f"{est.value:+.3f} [{est.low:+.3f}, {est.high:+.3f}] p={p:.2g}")
        print(f"| `{method}` | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--run", default="latest")
    parser.add_argument("--split", default="test")
    parser.add_argument("--sizes", default="224,448")
    parser.add_argument("--methods", default="lrp,gae,gradcam,lrp_pixels")
    parser.add_argument("--images", type=int, default=0, help="first N images with a lesion mask (0 = all)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--csv", type=Path, default=None, help="also write the per-image rows here")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    started = time.perf_counter()
    rows = measure(args.db, args.run, args.split, sizes, methods, args.images, args.batch_size)
    if args.csv:
        rows.to_csv(args.csv, index=False)
    report(rows, sizes)
    print(f"\n({time.perf_counter() - started:.0f} s, {torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
