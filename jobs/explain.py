"""``retcore explain``: relevance maps, zone scores, landmarks, quality and
faithfulness of a fine-tuned run's predictions.

Per (run, image, method, target) it writes the token grid into
``explanations`` (with the map's concentration), the full-resolution map as a
float32 ``.npy`` under ``results/heatmaps/<run>/<method>/`` (path relative to
the results folder and SHA-256 in the row), zone scores in long format into ``zone_scores`` and, where the
image has ground-truth masks, localisation scores. Landmarks and quality are
computed once per image (not per run), in the same DataLoader pass that decodes
and FOV-crops each image once. Each batch lands in one transaction
and a rerun computes only what is missing, so a killed job loses at most the
batch in flight.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from jobs._common import DbOption, ResultsOption, command_line, friendly_errors, results_dir, set_threads
from jobs._faithfulness import unit_list

__all__ = ["DEFAULT_METHODS", "explain_run_config", "main", "method_list", "options_run_config", "run_explain"]

DEFAULT_METHODS = "lrp,gae,rollout,attention,gradcam,lrp_pixels"


def method_list(text: str) -> list[str]:
    """``--methods`` text (comma-separated names) as a list, blanks dropped."""
    return [m.strip() for m in text.split(",") if m.strip()]


def explain_run_config(run_id: str, methods: list[str], split: str, *, target: str, start_layer: int,
                       batch_size: int, faithfulness_images: int, faithfulness_baseline: str = "blur",
                       faithfulness_units: str = "token,pixel") -> dict:
    """The ``runs.config`` of an explain run of finetune run ``run_id`` (an id, not ``latest``)."""
    return {"run": run_id, "methods": list(methods), "split": split, "target": target, "start_layer": start_layer,
            "batch_size": batch_size, "faithfulness_images": faithfulness_images,
            "faithfulness_baseline": faithfulness_baseline,
            "faithfulness_units": ",".join(unit_list(faithfulness_units))}


def options_run_config(options: Mapping[str, Any]) -> dict:
    """The ``runs.config`` that ``retcore explain`` with ``options`` records (``--run`` given as an id)."""
    return explain_run_config(options["run"], method_list(options["methods"]), options["split"],
                              target=options["target"], start_layer=options["start_layer"],
                              batch_size=options["batch_size"], faithfulness_images=options["faithfulness_images"],
                              faithfulness_baseline=options["faithfulness_baseline"],
                              faithfulness_units=options["faithfulness_units"])


def _read(db, read, *args):
    """``read(connection, *args)`` on a read-only connection to ``db`` (a ``retcore.results`` read)."""
    from retcore.storage import connect

    with connect(db, read_only=True) as con:
        return read(con, *args)


def _atomic_npy(path: Path, array) -> str:
    """Write ``array`` to ``path`` (write to a temporary file, then rename); return its SHA-256."""
    import hashlib
    import os

    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, array)
    os.replace(tmp, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _stored_targets(db, run_id: str, split: str, images, classes: list[str], target: str) -> dict[str, int]:
    """Explained class per image id: the stored prediction (``pred``) or the label (``label``)."""
    from retcore.errors import DataError
    from retcore.results.lookups import predicted_classes

    index = {c: i for i, c in enumerate(classes)}
    if target == "label":
        bad = sorted(set(images["label"]) - set(index))
        if bad:
            raise DataError(f"labels {bad} are not among the run's classes {classes}; explain with --target pred")
        return {i: index[l] for i, l in zip(images["image_id"], images["label"])}
    return {i: index[p] for i, p in _read(db, predicted_classes, run_id, split).items() if p in index}


def _landmarks(db, image_ids: list[str]) -> dict:
    from retcore.inputs import landmarks_from_row
    from retcore.results.cases import landmarks_for

    rows = _read(db, landmarks_for, image_ids)
    return {r["image_id"]: landmarks_from_row(r) for r in rows.to_dict("records")}


def _loader(dataset, batch_size: int, num_workers: int, collate_fn=None):
    import torch
    from torch.utils.data import DataLoader

    return DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=collate_fn,
                      pin_memory=torch.cuda.is_available(), persistent_workers=False,
                      prefetch_factor=2 if num_workers > 0 else None)


def run_explain(run: str, methods: list[str], split: str = "test", *, db: Path | None = None,
                results: Path | None = None, target: str = "pred", batch_size: int = 8, device: str = "auto",
                start_layer: int = 0, faithfulness_images: int = -1, num_workers: int = 2,
                recompute: bool = False, command: str = "", faithfulness_baseline: str = "blur",
                faithfulness_units: str = "token,pixel") -> str:
    """Explain every image of ``split`` with each method; return the finetune run id.

    Only missing (image, method) pairs are computed unless ``recompute``.
    The explained class is the prediction stored by ``retcore predict`` for the
    run (predicted first when the split has none), or the label. Images are
    decoded, FOV-cropped and analysed (landmarks, quality, zones) in
    ``num_workers`` DataLoader workers; each step holds at most ``batch_size``
    images. Full-resolution maps are float32 ``.npy`` files (relevance values
    can be ~1e-10 per pixel for ViT-L, below float16's range), stored relative to the results folder.
    Faithfulness (``jobs._faithfulness``): per-image deletion / insertion curves of each method and of
    a random map on the first ``faithfulness_images`` images (negative = all, 0 = skip), removed
    pixels taken from ``faithfulness_baseline`` ('blur' | 'mean'), stepped on ``faithfulness_units``.
    """
    import numpy as np
    import pandas as pd
    import torch
    from tqdm.auto import tqdm

    from jobs._runs import find_trained_run, load_trained_model, run_images
    from retcore.data.roots import to_stored
    from retcore.errors import DataError, RetcoreError
    from retcore.explain import METHOD_REGISTRY, explain_support, relevance, upsample
    from retcore.focus import focus_scores
    from retcore.inputs import ExplainInputs, collate_prepared
    from jobs.summarize import summarize_split
    from retcore.results.lookups import explained_pairs, has_predictions
    from retcore.storage.runs import open_db, record_run
    from retcore.storage.writes import (
        write_explanation_batch,
        write_image_analysis,
        write_ingest_errors,
    )
    from retcore.train.engine import resolve_device
    from retcore.zones import area_transfer

    METHOD_REGISTRY.check(methods)  # UnknownMethodError (a RetcoreError) listing the names
    if target not in ("pred", "label"):
        raise RetcoreError(f"--target {target!r} must be 'pred' or 'label'")
    if batch_size < 1:
        raise RetcoreError(f"--batch-size {batch_size} must be at least 1")
    if faithfulness_baseline not in ("blur", "mean"):
        raise RetcoreError(f"--faithfulness-baseline {faithfulness_baseline!r} must be 'blur' or 'mean'")
    unit_list(faithfulness_units)
    db_path = open_db(db)
    trained = find_trained_run(db_path, run)
    eye = trained.config.get("finetune", {}).get("eye", "both")
    images = run_images(db_path, trained.dataset_id, split, eye=eye)
    if images.empty:
        raise DataError(f"run {trained.run_id} has no {split!r} images; pick --split train|val|test")
    run_root = trained.results_root
    results_root = Path(results).resolve() if results is not None else (run_root or results_dir(db, None).resolve())
    out_root = results_root / "heatmaps" / trained.run_id
    base = run_root or results_root
    if target == "pred" and not _read(db_path, has_predictions, trained.run_id, split):
        from jobs.predict import run_predict

        tqdm.write(f"explain: run {trained.run_id} has no stored predictions on {split!r}; predicting first")
        run_predict(trained.run_id, split, db=db_path, batch_size=batch_size, device=device,
                    num_workers=num_workers, command=command)
    config = explain_run_config(trained.run_id, methods, split, target=target, start_layer=start_layer,
                                batch_size=batch_size, faithfulness_images=faithfulness_images,
                                faithfulness_baseline=faithfulness_baseline, faithfulness_units=faithfulness_units)

    with record_run(db_path, "explain", config=config, command=command, parent_run_id=trained.run_id,
                    out_dir=str(results_root)) as rec:
        torch_device = resolve_device(device)
        model, meta = load_trained_model(trained.checkpoint, device=str(torch_device))
        classes = list(meta["class_names"])
        size = int(meta["img_size"][0] if isinstance(meta["img_size"], list) else meta["img_size"])
        patch = model.patch_embed.patch_size[0]
        refused = {m: why for m in methods if (why := explain_support(model, m, start_layer)) is not None}
        if refused:
            name = meta.get("model_name") or meta.get("model") or "this model"
            raise RetcoreError(f"{', '.join(refused)} cannot explain {name} ({'; '.join(refused.values())}); "
                               "drop it from --methods")
        targets_by_id = _stored_targets(db_path, trained.run_id, split, images, classes, target)
        unexplained = images[~images["image_id"].isin(targets_by_id)]
        if len(unexplained):
            tqdm.write(f"explain: {len(unexplained)} {split} images have no stored prediction (unreadable when "
                       "predicted?); they are skipped")
        done = set() if recompute else _read(db_path, explained_pairs, trained.run_id, target)
        todo = images[[i in targets_by_id and any((i, m) not in done for m in methods) for i in images["image_id"]]]
        dataset = ExplainInputs(todo[["image_id", "path", "mask_path", "eye"]].to_dict("records"), size,
                                landmarks=_landmarks(db_path, todo["image_id"].tolist()))
        skipped: list[tuple[str, str]] = []
        bar = tqdm(total=len(todo), desc=f"explain {split}", unit="img")
        n_seen = 0
        for batch in _loader(dataset, batch_size, num_workers, collate_prepared):
            n_seen += len(batch.ok) + len(batch.failed)
            skipped += [(it.path, it.error) for it in batch.failed]
            analysed = [it.analysis for it in batch.ok if it.analysis is not None]
            if analysed:
                write_image_analysis(db_path, pd.DataFrame([a for a, _ in analysed]),
                                     pd.DataFrame([{"image_id": a["image_id"], "metric": k, "value": v}
                                                   for a, q in analysed for k, v in q.items()]))
            if batch.ok:
                x = batch.images.to(torch_device, non_blocking=True)
                targets = torch.tensor([targets_by_id[it.image_id] for it in batch.ok], device=torch_device)
                ex_rows, zone_rows, loc_rows = [], [], []
                for method in methods:
                    need = [k for k, it in enumerate(batch.ok) if (it.image_id, method) not in done]
                    if not need:
                        continue
                    maps = relevance(model, x[need], method, targets[need], start_layer).float()
                    if not torch.isfinite(maps).all():
                        raise RetcoreError(f"{method} gave non-finite relevance on run {trained.run_id}; "
                                           "explain with --device cpu or another method")
                    full = maps if maps.shape[-2:] == (size, size) else upsample(maps, (size, size))
                    for j, k in enumerate(need):
                        it = batch.ok[k]
                        heat = full[j].cpu().numpy().astype(np.float32)
                        grid = maps[j].cpu().numpy()
                        if grid.shape == (size, size):  # pixel-level method: store its token-grid mass
                            grid = area_transfer(grid, (size // patch, size // patch), "mass")
                        t = int(targets[k])
                        path = out_root / method / f"{it.image_id}_t{t}.npy"
                        digest = _atomic_npy(path, heat)
                        focus = focus_scores(heat, grid, it.geometry)
                        key = {"run_id": trained.run_id, "image_id": it.image_id, "method": method, "target": t}
                        ex_rows.append({**key, "target_label": classes[t], "target_kind": target,
                                        "grid_h": grid.shape[0], "grid_w": grid.shape[1],
                                        "grid": grid.astype(np.float32).ravel().tolist(),
                                        "heatmap_path": to_stored(path, base), "heatmap_sha256": digest,
                                        "heatmap_h": size, "heatmap_w": size,
                                        "positive_sum": float(np.clip(heat, 0, None).sum()),
                                        "entropy": focus.entropy, "gini": focus.gini, "peak_zone": focus.peak_zone,
                                        "explain_run_id": rec.run_id})
                        zone_rows += [{**key, **z} for z in focus.zones]
                        loc_rows += [{**key, **loc} for loc in focus.localisation]
                write_explanation_batch(db_path, pd.DataFrame(ex_rows), pd.DataFrame(zone_rows),
                                        pd.DataFrame(loc_rows))
            bar.update(len(batch.ok) + len(batch.failed))
            rec.progress(0.9 * n_seen / max(len(todo), 1), f"explained {n_seen}/{len(todo)}")
        bar.close()
        if skipped:
            write_ingest_errors(db_path, skipped, run_id=rec.run_id, dataset_id=trained.dataset_id)
            for path, reason in skipped:
                tqdm.write(f"skipped {path}: {reason}")
        # zone summaries of the split (the batches removed those of the explained methods)
        summarize_split(db_path, trained.run_id, split, methods=methods, predictions=False, report=False)

        if faithfulness_images != 0:
            from jobs._faithfulness import run_faithfulness

            run_faithfulness(db_path, trained.run_id, split, images, targets_by_id, model, classes, size, patch,
                             methods, n_images=faithfulness_images, baseline=faithfulness_baseline,
                             units=unit_list(faithfulness_units), batch_size=batch_size, num_workers=num_workers,
                             start_layer=start_layer, recompute=recompute, device=torch_device,
                             explain_run_id=rec.run_id,
                             progress=lambda f, note: rec.progress(0.9 + 0.1 * f, note))
    return trained.run_id


@friendly_errors
def main(
    run: Annotated[str, typer.Option(help="Finetune run id, or 'latest'.")] = "latest",
    methods: Annotated[str, typer.Option(help="Comma-separated explanation methods.")] = DEFAULT_METHODS,
    split: Annotated[str, typer.Option(help="train | val | test.")] = "test",
    target: Annotated[str, typer.Option(help="Explain the predicted class ('pred') or the true label ('label').")] = "pred",
    batch_size: int = 8,
    start_layer: Annotated[int, typer.Option(help="First block of the rollout (lrp, gae, rollout).")] = 0,
    faithfulness_images: Annotated[int, typer.Option(
        help="Images for the per-image faithfulness curves (-1 = every image of the split, 0 = skip).")] = -1,
    faithfulness_baseline: Annotated[str, typer.Option(
        help="What removed pixels become: 'blur' (blurred copy) or 'mean' (dataset mean colour).")] = "blur",
    faithfulness_units: Annotated[str, typer.Option(help="Steps on 'token', 'pixel' or 'token,pixel'.")] = "token,pixel",
    num_workers: Annotated[int, typer.Option(help="DataLoader workers that decode and prepare images.")] = 2,
    recompute: Annotated[bool, typer.Option(help="Recompute maps and curves that already exist.")] = False,
    device: str = "auto",
    db: DbOption = None,
    results: ResultsOption = None,
) -> None:
    """Explain every prediction of a split: heatmaps, zone scores, quality, landmarks, faithfulness."""
    set_threads()
    run_explain(run, method_list(methods), split, db=db, results=results,
                target=target, batch_size=batch_size, device=device, start_layer=start_layer,
                faithfulness_images=faithfulness_images, num_workers=num_workers, recompute=recompute,
                command=command_line(), faithfulness_baseline=faithfulness_baseline,
                faithfulness_units=faithfulness_units)


if __name__ == "__main__":
    typer.run(main)
