"""The faithfulness step of ``retcore explain``: per-image deletion / insertion curves of every
method and of a random map of the same resolution (:mod:`retcore.faithfulness`), written batch by
batch (resumable), then the summary against random with its verdicts.

Rows: ``faithfulness_curves`` and ``faithfulness_aucs`` per image (one transaction per batch),
``faithfulness_summary`` per method, baseline, unit and test, and the v2 ``faithfulness`` table
(curves averaged over images, the deletion tests on the finest unit computed: ``positive`` =
MoRF, ``negative`` = LeRF) for its older readers.
"""
from __future__ import annotations

import time
from pathlib import Path

__all__ = ["UNITS", "run_faithfulness", "unit_list"]

UNITS = ("token", "pixel")


def unit_list(text: str) -> list[str]:
    """``--faithfulness-units`` text ('token,pixel') as a list; unknown names raise ``RetcoreError``."""
    from retcore.errors import RetcoreError

    units = [u.strip() for u in text.split(",") if u.strip()]
    bad = [u for u in units if u not in UNITS]
    if bad or not units:
        raise RetcoreError(f"--faithfulness-units {text!r}: choose from {', '.join(UNITS)}")
    return units


def _dataset_mean(loader, device) -> list[float]:
    """Per-channel mean of the model inputs over every image the loader yields (normalised space)."""
    import torch

    total, count = None, 0
    for xb, _, _ in loader:
        s = xb.to(device).double().sum(dim=(0, 2, 3))
        total = s if total is None else total + s
        count += xb.shape[0] * xb.shape[2] * xb.shape[3]
    return (total / max(count, 1)).tolist() if total is not None else [0.0, 0.0, 0.0]


def run_faithfulness(db_path: Path, run_id: str, split: str, images, targets_by_id: dict[str, int], model,
                     classes: list[str], size: int, patch: int, methods: list[str], *, n_images: int,
                     baseline: str, units: list[str], batch_size: int, num_workers: int, start_layer: int,
                     recompute: bool, device, explain_run_id: str, progress=None, seed: int = 0) -> None:
    """Per-image faithfulness of ``methods`` on the first ``n_images`` images of ``split`` that have an
    explained class (``n_images < 0``: all). Only (image, method) pairs without rows for ``baseline``
    are computed unless ``recompute``; ``progress(fraction, note)`` is called after each batch."""
    import numpy as np
    import pandas as pd
    import torch
    from tqdm.auto import tqdm

    from jobs.explain import _loader as loader
    from retcore.data import FundusDataset, ImageRecord, build_eval_transform
    from retcore.explain import relevance
    from retcore.faithfulness import TESTS, baseline_images, compare_with_random, curve_aucs, faithfulness_curves, random_maps
    from retcore.results.faithfulness import faithfulness_aucs, faithfulness_curves as read_curves
    from retcore.storage import connect
    from retcore.storage.writes import write_faithfulness, write_faithfulness_images, write_faithfulness_summary

    sample = images[images["image_id"].isin(targets_by_id)]
    if n_images >= 0:
        sample = sample.head(n_images)
    if sample.empty:
        return
    with connect(db_path, read_only=True) as con:
        have = faithfulness_aucs(con, run_id, split, baseline=baseline)
    done = set() if recompute else {(i, m) for i, m, u in have[["image_id", "method", "unit"]].itertuples(index=False)
                                    if u in units}
    todo = sample[[any((i, m) not in done for m in methods) for i in sample["image_id"]]].reset_index(drop=True)
    grid = (size // patch, size // patch)
    unit_grids = {u: (grid if u == "token" else None) for u in units}

    def data(frame):
        records = [ImageRecord(path=p, label=l) for p, l in frame[["path", "label"]].itertuples(index=False)]
        return FundusDataset(records, classes, build_eval_transform(size))

    mean = None
    if baseline == "mean" and len(todo):
        mean = _dataset_mean(loader(data(sample), batch_size, num_workers), device)
        tqdm.write(f"faithfulness: dataset mean (normalised) {[round(v, 4) for v in mean]} over {len(sample)} images")
    started, n_done = time.perf_counter(), 0
    bar = tqdm(total=len(todo), desc="faithfulness", unit="img")
    for xb, _, idx in (loader(data(todo), batch_size, num_workers) if len(todo) else []):
        xb = xb.to(device)
        ids = [todo["image_id"].iloc[int(i)] for i in idx]
        tb = torch.tensor([targets_by_id[i] for i in ids], device=device)
        base = baseline_images(xb, baseline, mean=mean)
        random_cache: dict[tuple[int, int], pd.DataFrame] = {}
        curve_frames, auc_frames = [], []
        for method in methods:
            need = [k for k, i in enumerate(ids) if (i, method) not in done]
            if not need:
                continue
            maps = relevance(model, xb[need], method, tb[need], start_layer).float().detach()
            finite = torch.isfinite(maps).flatten(1).all(dim=1).cpu()
            if not finite.all():
                tqdm.write(f"faithfulness: {method} gave non-finite relevance on "
                           f"{', '.join(ids[k] for k, ok in zip(need, finite) if not ok)}; those images are skipped")
                need = [k for k, ok in zip(need, finite) if ok]
                maps = maps[finite.to(maps.device)]
                if not need:
                    continue
            shape = tuple(maps.shape[-2:])
            if shape not in random_cache:
                rnd = random_maps(ids, shape, seed)
                random_cache[shape] = faithfulness_curves(model, xb, rnd, tb, base, units=unit_grids,
                                                          batch_size=batch_size, seed=seed)
            own = faithfulness_curves(model, xb[need], maps, tb[need], base[need], units=unit_grids,
                                      batch_size=batch_size, seed=seed)
            own["index"] = np.asarray(need)[own["index"].to_numpy()]
            rnd_curves = random_cache[shape][random_cache[shape]["index"].isin(need)]
            both = pd.concat([own.assign(map="method"), rnd_curves.assign(map="random")], ignore_index=True)
            both["image_id"] = [ids[k] for k in both["index"]]
            both["target"] = [int(tb[k]) for k in both["index"]]
            both = both.assign(run_id=run_id, split=split, method=method, baseline=baseline)
            curve_frames.append(both.drop(columns="index"))
            aucs = curve_aucs(both, ["image_id", "map", "unit", "test"])
            wide = aucs.pivot_table(index=["image_id", "unit", "test"], columns="map", values="auc").reset_index()
            wide = wide.rename(columns={"method": "auc", "random": "random_auc"})
            wide["target"] = [targets_by_id[i] for i in wide["image_id"]]
            auc_frames.append(wide.assign(run_id=run_id, split=split, method=method, baseline=baseline,
                                          explain_run_id=explain_run_id))
        if curve_frames:
            cols = ["run_id", "split", "image_id", "method", "map", "baseline", "unit", "test", "fraction", "target",
                    "predicted", "probability", "logit"]
            auc_cols = ["run_id", "split", "image_id", "method", "baseline", "unit", "test", "target", "auc",
                        "random_auc", "explain_run_id"]
            write_faithfulness_images(db_path, pd.concat(curve_frames, ignore_index=True)[cols],
                                      pd.concat(auc_frames, ignore_index=True)[auc_cols])
        n_done += len(ids)
        bar.update(len(ids))
        if progress is not None:
            progress(n_done / max(len(todo), 1), f"faithfulness {n_done}/{len(todo)}")
    bar.close()
    per_image = (time.perf_counter() - started) / n_done if n_done else float("nan")
    if n_done:
        tqdm.write(f"faithfulness: {per_image:.2f} s per image for {len(methods)} methods "
                   f"({len(units)} units x {len(TESTS)} tests, random maps included)")

    with connect(db_path, read_only=True) as con:
        aucs = faithfulness_aucs(con, run_id, split, methods=methods, baseline=baseline)
        curves = read_curves(con, run_id, split, methods=methods, baseline=baseline,
                             unit="pixel" if "pixel" in units else units[0])
    aucs = aucs[aucs["unit"].isin(units) & aucs["image_id"].isin(sample["image_id"])]
    summary = compare_with_random(aucs, seed=seed)
    if summary.empty:
        return
    summary = summary.assign(run_id=run_id, split=split, explain_run_id=explain_run_id,
                             seconds_per_image=per_image / max(len(methods), 1) if n_done else None)
    write_faithfulness_summary(db_path, summary)
    legacy = curves[(curves["map"] == "method") & curves["test"].isin(["deletion_morf", "deletion_lerf"])
                    & curves["image_id"].isin(sample["image_id"])]
    if not legacy.empty:
        legacy = legacy.assign(correct=(legacy["predicted"] == legacy["target"]).astype(float),
                               test=legacy["test"].map({"deletion_morf": "positive", "deletion_lerf": "negative"}))
        agg = legacy.groupby(["method", "test", "fraction"], as_index=False).agg(
            accuracy=("correct", "mean"), probability=("probability", "mean"), n_images=("image_id", "nunique"))
        write_faithfulness(db_path, agg.assign(run_id=run_id, split=split)[
            ["run_id", "split", "method", "test", "fraction", "accuracy", "probability", "n_images"]])
    for row in summary.itertuples(index=False):
        tqdm.write(f"faithfulness {row.method} ({row.baseline}, {row.unit}): AUC {row.auc:.3f} vs random "
                   f"{row.random_auc:.3f}; {row.verdict}")
