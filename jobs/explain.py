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
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from jobs._common import (
    DbOption,
    RunResultsOption,
    command_line,
    friendly_errors,
    job_argv,
    launch_torchrun,
    results_dir,
    set_threads,
)
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


@dataclass
class _Plan:
    """What every rank needs to explain its share of a split (rank 0 reads it from the database).

    ``todo``: rows ``image_id, path, mask_path, eye`` of the images with a missing (image, method)
    pair; ``done``: the (image id, method) pairs already explained (database and shards);
    ``landmarks``: stored landmarks of the ``todo`` images; ``targets``: the explained class index
    per image id."""

    run_id: str
    checkpoint: str
    methods: list[str]
    target: str
    start_layer: int
    todo: Any
    done: set
    landmarks: dict
    targets: dict
    out_root: Path
    base: Path
    explain_run_id: str = ""
    shard_folder: Path | None = None


@dataclass
class _BatchRows:
    """One batch's output: rows of ``explanations``, ``zone_scores``, ``localisation``, ``landmarks``,
    ``image_quality`` (DataFrames) and the (image id, path, reason) of images that could not be read."""

    explanations: Any
    zones: Any
    localisation: Any
    landmarks: Any
    quality: Any
    skipped: list
    images: int


def _explain_share(plan: _Plan, model, classes: list[str], size: int, device, *, batch_size: int, num_workers: int,
                   on_batch) -> None:
    """Explain ``plan.todo`` batch by batch with ``model``: heatmap files under ``plan.out_root``,
    and each batch's rows handed to ``on_batch(_BatchRows)`` (the caller writes them)."""
    import numpy as np
    import pandas as pd
    import torch

    from retcore.data.roots import to_stored
    from retcore.errors import RetcoreError
    from retcore.explain import relevance, upsample
    from retcore.focus import focus_scores
    from retcore.inputs import ExplainInputs, collate_prepared
    from retcore.zones import area_transfer

    patch = model.patch_embed.patch_size[0]
    dataset = ExplainInputs(plan.todo[["image_id", "path", "mask_path", "eye"]].to_dict("records"), size,
                            landmarks=plan.landmarks)
    for batch in _loader(dataset, batch_size, num_workers, collate_prepared):
        analysed = [it.analysis for it in batch.ok if it.analysis is not None]
        ex_rows, zone_rows, loc_rows = [], [], []
        if batch.ok:
            x = batch.images.to(device, non_blocking=True)
            targets = torch.tensor([plan.targets[it.image_id] for it in batch.ok], device=device)
            for method in plan.methods:
                need = [k for k, it in enumerate(batch.ok) if (it.image_id, method) not in plan.done]
                if not need:
                    continue
                maps = relevance(model, x[need], method, targets[need], plan.start_layer).float()
                if not torch.isfinite(maps).all():
                    raise RetcoreError(f"{method} gave non-finite relevance on run {plan.run_id}; "
                                       "explain with --device cpu or another method")
                full = maps if maps.shape[-2:] == (size, size) else upsample(maps, (size, size))
                for j, k in enumerate(need):
                    it = batch.ok[k]
                    heat = full[j].cpu().numpy().astype(np.float32)
                    grid = maps[j].cpu().numpy()
                    if grid.shape == (size, size):  # pixel-level method: store its token-grid mass
                        grid = area_transfer(grid, (size // patch, size // patch), "mass")
                    t = int(targets[k])
                    path = plan.out_root / method / f"{it.image_id}_t{t}.npy"
                    digest = _atomic_npy(path, heat)
                    focus = focus_scores(heat, grid, it.geometry)
                    key = {"run_id": plan.run_id, "image_id": it.image_id, "method": method, "target": t}
                    ex_rows.append({**key, "target_label": classes[t], "target_kind": plan.target,
                                    "grid_h": grid.shape[0], "grid_w": grid.shape[1],
                                    "grid": grid.astype(np.float32).ravel().tolist(),
                                    "heatmap_path": to_stored(path, plan.base), "heatmap_sha256": digest,
                                    "heatmap_h": size, "heatmap_w": size,
                                    "positive_sum": float(np.clip(heat, 0, None).sum()),
                                    "entropy": focus.entropy, "gini": focus.gini, "peak_zone": focus.peak_zone,
                                    "explain_run_id": plan.explain_run_id})
                    zone_rows += [{**key, **z} for z in focus.zones]
                    loc_rows += [{**key, **loc} for loc in focus.localisation]
        on_batch(_BatchRows(
            explanations=pd.DataFrame(ex_rows), zones=pd.DataFrame(zone_rows), localisation=pd.DataFrame(loc_rows),
            landmarks=pd.DataFrame([a for a, _ in analysed]),
            quality=pd.DataFrame([{"image_id": a["image_id"], "metric": k, "value": v}
                                  for a, q in analysed for k, v in q.items()]),
            skipped=[(it.image_id, it.path, it.error) for it in batch.failed],
            images=len(batch.ok) + len(batch.failed)))


def _plan(db_path: Path, trained, classes: list[str], methods: list[str], split: str, *, target: str,
          start_layer: int, results: Path | None, db: Path | None, recompute: bool, shard_pairs: bool = False):
    """Read what an explain run of ``trained`` (a ``find_trained_run`` result) needs: ``(split images,
    plan)``; ``classes`` are the model's; ``shard_pairs`` adds the pairs already in this split's
    explain shards to ``done`` (a sharded rerun)."""
    from tqdm.auto import tqdm

    from jobs._runs import run_images
    from jobs._shards import explain_shard_dir, read_table_shards
    from retcore.errors import DataError
    from retcore.results.lookups import explained_pairs

    eye = trained.config.get("finetune", {}).get("eye", "both")
    images = run_images(db_path, trained.dataset_id, split, eye=eye)
    if images.empty:
        raise DataError(f"run {trained.run_id} has no {split!r} images; pick --split train|val|test")
    run_root = trained.results_root
    results_root = Path(results).resolve() if results is not None else (run_root or results_dir(db, None).resolve())
    targets_by_id = _stored_targets(db_path, trained.run_id, split, images, classes, target)
    unexplained = images[~images["image_id"].isin(targets_by_id)]
    if len(unexplained):
        tqdm.write(f"explain: {len(unexplained)} {split} images have no stored prediction (unreadable when "
                   "predicted?); they are skipped")
    done = set() if recompute else _read(db_path, explained_pairs, trained.run_id, target)
    folder = explain_shard_dir(results_root, trained.run_id, split)
    if shard_pairs and not recompute:
        rows = read_table_shards([folder], "explanations")
        if not rows.empty:
            rows = rows[rows["target_kind"] == target]
            done |= set(zip(rows["image_id"], rows["method"]))
    todo = images[[i in targets_by_id and any((i, m) not in done for m in methods) for i in images["image_id"]]]
    plan = _Plan(run_id=trained.run_id, checkpoint=str(trained.checkpoint), methods=list(methods), target=target,
                 start_layer=start_layer, todo=todo.reset_index(drop=True), done=done,
                 landmarks=_landmarks(db_path, todo["image_id"].tolist()), targets=targets_by_id,
                 out_root=results_root / "heatmaps" / trained.run_id, base=run_root or results_root,
                 shard_folder=folder)
    return images, plan


def _check_options(methods: list[str], target: str, batch_size: int, faithfulness_baseline: str,
                   faithfulness_units: str) -> None:
    from retcore.errors import RetcoreError
    from retcore.explain import METHOD_REGISTRY

    METHOD_REGISTRY.check(methods)  # UnknownMethodError (a RetcoreError) listing the names
    if target not in ("pred", "label"):
        raise RetcoreError(f"--target {target!r} must be 'pred' or 'label'")
    if batch_size < 1:
        raise RetcoreError(f"--batch-size {batch_size} must be at least 1")
    if faithfulness_baseline not in ("blur", "mean"):
        raise RetcoreError(f"--faithfulness-baseline {faithfulness_baseline!r} must be 'blur' or 'mean'")
    unit_list(faithfulness_units)


def _load_model(checkpoint: str, methods: list[str], start_layer: int, device: str):
    """A fine-tuned checkpoint on ``device``: ``(model, class names, input side in pixels, torch
    device)``; ``RetcoreError`` when one of ``methods`` cannot explain this model."""
    from jobs._runs import load_trained_model
    from retcore.errors import RetcoreError
    from retcore.explain import explain_support
    from retcore.train.engine import resolve_device

    torch_device = resolve_device(device)
    model, meta = load_trained_model(Path(checkpoint), device=str(torch_device))
    size = int(meta["img_size"][0] if isinstance(meta["img_size"], list) else meta["img_size"])
    refused = {m: why for m in methods if (why := explain_support(model, m, start_layer)) is not None}
    if refused:
        name = meta.get("model_name") or meta.get("model") or "this model"
        raise RetcoreError(f"{', '.join(refused)} cannot explain {name} ({'; '.join(refused.values())}); "
                           "drop it from --methods")
    return model, list(meta["class_names"]), size, torch_device


def _predict_first(db_path: Path, run: str, split: str, target: str, *, batch_size: int, device: str,
                   num_workers: int, command: str) -> None:
    """Predict ``split`` when ``--target pred`` finds no stored predictions (sharded under torchrun:
    every rank must call this)."""
    from jobs._runs import find_trained_run
    from jobs.predict import run_predict
    from retcore.results.lookups import has_predictions
    from retcore.train.distributed import broadcast, world

    w = world()
    need = None
    if w.main:
        trained = find_trained_run(db_path, run)
        if target == "pred" and not _read(db_path, has_predictions, trained.run_id, split):
            need = trained.run_id
    if w.distributed:
        need = broadcast(need)
    if need is not None:
        if w.main:
            from tqdm.auto import tqdm

            tqdm.write(f"explain: run {need} has no stored predictions on {split!r}; predicting first")
        run_predict(need, split, db=db_path, batch_size=batch_size, device=device, num_workers=num_workers,
                    command=command)


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
    Under ``torchrun`` (``--nproc N``) the split is explained in shards (:func:`_run_explain_sharded`).
    """
    from tqdm.auto import tqdm

    from retcore.storage.runs import open_db, record_run
    from retcore.storage.writes import write_explanation_batch, write_image_analysis, write_ingest_errors
    from retcore.train.distributed import init_distributed

    _check_options(methods, target, batch_size, faithfulness_baseline, faithfulness_units)
    if init_distributed(device).distributed:
        return _run_explain_sharded(run, methods, split, db=db, results=results, target=target,
                                    batch_size=batch_size, device=device, start_layer=start_layer,
                                    faithfulness_images=faithfulness_images, num_workers=num_workers,
                                    recompute=recompute, command=command, faithfulness_baseline=faithfulness_baseline,
                                    faithfulness_units=faithfulness_units)
    from jobs._runs import find_trained_run

    db_path = open_db(db, must_exist=True)
    _predict_first(db_path, run, split, target, batch_size=batch_size, device=device, num_workers=num_workers,
                   command=command)
    trained = find_trained_run(db_path, run)
    model, classes, size, torch_device = _load_model(str(trained.checkpoint), methods, start_layer, device)
    images, plan = _plan(db_path, trained, classes, methods, split, target=target, start_layer=start_layer,
                         results=results, db=db, recompute=recompute)
    config = explain_run_config(trained.run_id, methods, split, target=target, start_layer=start_layer,
                                batch_size=batch_size, faithfulness_images=faithfulness_images,
                                faithfulness_baseline=faithfulness_baseline, faithfulness_units=faithfulness_units)
    with record_run(db_path, "explain", config=config, command=command, parent_run_id=trained.run_id,
                    out_dir=str(plan.out_root.parent.parent)) as rec:
        plan.explain_run_id = rec.run_id
        skipped: list[tuple[str, str]] = []
        bar = tqdm(total=len(plan.todo), desc=f"explain {split}", unit="img")
        seen = [0]

        def write(rows: _BatchRows) -> None:
            seen[0] += rows.images
            skipped.extend((path, reason) for _, path, reason in rows.skipped)
            if not rows.landmarks.empty:
                write_image_analysis(db_path, rows.landmarks, rows.quality)
            if not rows.explanations.empty:
                write_explanation_batch(db_path, rows.explanations, rows.zones, rows.localisation)
            bar.update(rows.images)
            rec.progress(0.9 * seen[0] / max(len(plan.todo), 1), f"explained {seen[0]}/{len(plan.todo)}")

        _explain_share(plan, model, classes, size, torch_device, batch_size=batch_size, num_workers=num_workers,
                       on_batch=write)
        bar.close()
        if skipped:
            write_ingest_errors(db_path, skipped, run_id=rec.run_id, dataset_id=trained.dataset_id)
            for path, reason in skipped:
                tqdm.write(f"skipped {path}: {reason}")
        _after_maps(db_path, trained.run_id, split, images, plan, model, classes, size, torch_device, rec,
                    faithfulness_images=faithfulness_images, baseline=faithfulness_baseline,
                    units=faithfulness_units, batch_size=batch_size, num_workers=num_workers, recompute=recompute)
    return trained.run_id


def _after_maps(db_path: Path, run_id: str, split: str, images, plan: _Plan, model, classes, size: int, device,
                rec, *, faithfulness_images: int, baseline: str, units: str, batch_size: int, num_workers: int,
                recompute: bool) -> None:
    """Once every map is stored: the split's zone summaries (the writes removed those of the explained
    methods), then faithfulness on ``faithfulness_images`` images (0 = none), in this process."""
    from jobs.summarize import summarize_split

    summarize_split(db_path, run_id, split, methods=plan.methods, predictions=False, report=False)
    if faithfulness_images == 0:
        return
    from jobs._faithfulness import run_faithfulness

    run_faithfulness(db_path, run_id, split, images, plan.targets, model, classes, size,
                     model.patch_embed.patch_size[0], plan.methods, n_images=faithfulness_images, baseline=baseline,
                     units=unit_list(units), batch_size=batch_size, num_workers=num_workers,
                     start_layer=plan.start_layer, recompute=recompute, device=device, explain_run_id=rec.run_id,
                     progress=lambda f, note: rec.progress(0.9 + 0.1 * f, note))


def _run_explain_sharded(run: str, methods: list[str], split: str, *, db: Path | None, results: Path | None,
                         target: str, batch_size: int, device: str, start_layer: int, faithfulness_images: int,
                         num_workers: int, recompute: bool, command: str, faithfulness_baseline: str,
                         faithfulness_units: str) -> str:
    """``retcore explain`` as one rank of ``torchrun``: rank 0 reads the split and records one
    ``explain`` run; every rank explains images ``rank::world`` of the missing ones, writes its
    heatmap files and, per batch, Parquet shards of its rows under
    ``<results>/shards/<run>/explain-<split>/<table>/``; rank 0 then merges every shard into the
    database in one transaction (:func:`jobs._shards.merge_explanations`), summarises the split and
    runs faithfulness (on rank 0 alone). A rerun explains only the pairs in no shard and no row."""
    from tqdm.auto import tqdm

    from jobs._runs import find_trained_run
    from jobs._shards import merge_explanations
    from retcore.errors import RetcoreError
    from retcore.storage.runs import new_run_id, open_db, record_run
    from retcore.train.distributed import barrier, broadcast, world

    w = world()
    db_path = open_db(db, must_exist=True) if w.main else None
    _predict_first(db_path, run, split, target, batch_size=batch_size, device=device, num_workers=num_workers,
                   command=command)
    if not w.main:
        plan = broadcast(None)
        if plan is None:
            raise RetcoreError(f"rank {w.rank}: rank 0 stopped before explaining; its error says why")
        _explain_rank(plan, w.rank, w.size, _load_model(plan.checkpoint, plan.methods, plan.start_layer, device),
                      batch_size, num_workers)
        barrier()
        return plan.run_id
    try:
        trained = find_trained_run(db_path, run)
        model, classes, size, torch_device = _load_model(str(trained.checkpoint), methods, start_layer, device)
        images, plan = _plan(db_path, trained, classes, methods, split, target=target, start_layer=start_layer,
                             results=results, db=db, recompute=recompute, shard_pairs=True)
    except BaseException:
        broadcast(None)  # the other ranks stop with rank 0
        raise
    config = explain_run_config(trained.run_id, methods, split, target=target, start_layer=start_layer,
                                batch_size=batch_size, faithfulness_images=faithfulness_images,
                                faithfulness_baseline=faithfulness_baseline, faithfulness_units=faithfulness_units)
    config["world_size"] = w.size
    plan.explain_run_id = new_run_id("explain")
    with record_run(db_path, "explain", config=config, command=command, parent_run_id=trained.run_id,
                    out_dir=str(plan.out_root.parent.parent), run_id=plan.explain_run_id) as rec:
        broadcast(plan)
        tqdm.write(f"explain {split}: {len(plan.todo)} of {len(images)} images to explain on {w.size} ranks "
                   f"(shards under {plan.shard_folder})")
        _explain_rank(plan, 0, w.size, (model, classes, size, torch_device), batch_size, num_workers)
        barrier()  # every rank's shards are on disk
        rec.progress(0.85, f"{split}: merging shards")
        merged, skipped = merge_explanations(db_path, plan.run_id, plan.targets, plan.methods, plan.target,
                                             [plan.shard_folder], image_ids=images["image_id"].tolist(),
                                             explain_run_id=rec.run_id, dataset_id=trained.dataset_id)
        tqdm.write(f"{plan.run_id} {split}: {merged} explanations merged from {plan.shard_folder}")
        for path, reason in skipped:
            tqdm.write(f"skipped {path}: {reason}")
        _after_maps(db_path, trained.run_id, split, images, plan, model, classes, size, torch_device, rec,
                    faithfulness_images=faithfulness_images, baseline=faithfulness_baseline,
                    units=faithfulness_units, batch_size=batch_size, num_workers=num_workers, recompute=recompute)
    return trained.run_id


def _explain_rank(plan: _Plan, rank: int, size_: int, loaded: tuple, batch_size: int, num_workers: int) -> None:
    """One rank's share of a sharded explain: images ``rank::size_`` of ``plan.todo`` with the model
    ``loaded`` (what :func:`_load_model` returns), each batch's rows written as shards named by the
    run and the rank."""
    from dataclasses import replace

    from jobs._shards import write_explain_shards

    model, classes, size, torch_device = loaded
    share = replace(plan, todo=plan.todo.iloc[rank::size_].reset_index(drop=True))
    counter = [0]

    def write(rows: _BatchRows) -> None:
        write_explain_shards(plan.shard_folder, f"{plan.explain_run_id}-rank{rank}-{counter[0]:05d}", rows)
        counter[0] += 1

    _explain_share(share, model, classes, size, torch_device, batch_size=batch_size, num_workers=num_workers,
                   on_batch=write)


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
    nproc: Annotated[int, typer.Option(help="Processes on this machine (launches torchrun); each explains a "
                                            "share and writes Parquet shards, rank 0 merges them.")] = 1,
    db: DbOption = None,
    results: RunResultsOption = None,
) -> None:
    """Explain every prediction of a split: heatmaps, zone scores, quality, landmarks, faithfulness."""
    import os

    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        raise typer.Exit(launch_torchrun("explain", nproc, job_argv("explain")))
    set_threads()
    try:
        run_explain(run, method_list(methods), split, db=db, results=results,
                    target=target, batch_size=batch_size, device=device, start_layer=start_layer,
                    faithfulness_images=faithfulness_images, num_workers=num_workers, recompute=recompute,
                    command=command_line(), faithfulness_baseline=faithfulness_baseline,
                    faithfulness_units=faithfulness_units)
    finally:
        from retcore.train.distributed import shutdown

        shutdown()


if __name__ == "__main__":
    typer.run(main)
