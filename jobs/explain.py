"""``retcore explain``: relevance maps, zone scores, landmarks, quality and
faithfulness of a fine-tuned run's predictions.

Per (run, image, method, target) it writes the token grid into
``explanations`` (with the map's concentration), the full-resolution map as a
float16 ``.npy`` under ``results/heatmaps/<run>/<method>/`` (path and SHA-256
in the row), zone scores in long format into ``zone_scores`` and, where the
image has ground-truth masks, localisation scores. Landmarks and quality are
computed once per image (not per run). Each batch lands in one transaction
and a rerun computes only what is missing, so a killed job loses at most the
batch in flight.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from jobs._common import DbOption, ResultsOption, command_line, friendly_errors, results_dir, set_threads

__all__ = ["DEFAULT_METHODS", "main", "run_explain"]

DEFAULT_METHODS = "lrp,gae,rollout,attention,gradcam,lrp_pixels"


def _existing(db, sql: str, params: list) -> set:
    from retcore.storage import connect

    with connect(db, read_only=True) as con:
        return set(con.execute(sql, params).fetchall())


def _atomic_npy(path: Path, array) -> str:
    import hashlib
    import os

    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, array)
    os.replace(tmp, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def analyse_images(db, images, *, on_step=None) -> int:
    """Landmarks and quality metrics for the images that have none yet; returns how many."""
    import numpy as np
    import pandas as pd

    from retcore.anatomy import detect_landmarks
    from retcore.data import load_rgb
    from retcore.errors import DataError
    from retcore.quality import quality_grade, quality_metrics
    from retcore.storage.writes import write_image_analysis

    done = {row[0] for row in _existing(db, "SELECT image_id FROM landmarks", [])}
    todo = images[~images["image_id"].isin(done)]
    batch_lm, batch_q = [], []
    for step, (image_id, path) in enumerate(todo[["image_id", "path"]].itertuples(index=False)):
        try:
            rgb = np.asarray(load_rgb(path))
        except DataError:
            continue  # recorded by the explanation stage as a skipped image
        lm = detect_landmarks(rgb)
        metrics = quality_metrics(rgb)
        batch_lm.append({"image_id": image_id, **{k: v for k, v in lm.to_dict().items()},
                         "quality_grade": quality_grade(metrics)})
        batch_q += [{"image_id": image_id, "metric": k, "value": float(v)} for k, v in metrics.items()]
        if len(batch_lm) == 64 or step == len(todo) - 1:
            write_image_analysis(db, pd.DataFrame(batch_lm), pd.DataFrame(batch_q))
            batch_lm, batch_q = [], []
        if on_step:
            on_step(step, len(todo))
    if batch_lm:
        write_image_analysis(db, pd.DataFrame(batch_lm), pd.DataFrame(batch_q))
    return len(todo)


def run_explain(run: str, methods: list[str], split: str = "test", *, db: Path | None = None,
                results: Path | None = None, target: str = "pred", batch_size: int = 8, device: str = "auto",
                start_layer: int = 0, faithfulness_images: int = 32, command: str = "") -> str:
    """Explain every image of ``split`` with each method; return the finetune run id."""
    import numpy as np
    import pandas as pd
    import torch
    from PIL import Image
    from tqdm.auto import tqdm

    from jobs._runs import find_trained_run, load_trained_model, run_images
    from retcore.anatomy import Landmarks
    from retcore.data import build_eval_transform, load_rgb
    from retcore.errors import DataError, RetcoreError
    from retcore.evaluate import perturbation_test
    from retcore.explain import list_methods, relevance, upsample
    from retcore.focus import focus_scores, input_geometry
    from retcore.storage import connect
    from retcore.storage.runs import open_db, record_run
    from retcore.storage.writes import write_explanation_batch, write_faithfulness, write_ingest_errors
    from retcore.train.engine import resolve_device
    from retcore.zones import area_transfer

    unknown = [m for m in methods if m not in list_methods()]
    if unknown:
        raise RetcoreError(f"unknown explanation method(s) {', '.join(unknown)}; choose from {', '.join(list_methods())}")
    if target not in ("pred", "label"):
        raise RetcoreError(f"--target {target!r} must be 'pred' or 'label'")
    db_path = open_db(db)
    trained = find_trained_run(db_path, run)
    eye = trained.config.get("finetune", {}).get("eye", "both")
    images = run_images(db_path, trained.dataset_id, split, eye=eye)
    if images.empty:
        raise DataError(f"run {trained.run_id} has no {split!r} images; pick --split train|val|test")
    out_root = results_dir(db, results).resolve() / "heatmaps" / trained.run_id
    config = {"run": trained.run_id, "methods": methods, "split": split, "target": target,
              "start_layer": start_layer, "batch_size": batch_size, "faithfulness_images": faithfulness_images}

    with record_run(db_path, "explain", config=config, command=command, parent_run_id=trained.run_id) as rec:
        torch_device = resolve_device(device)
        model, meta = load_trained_model(trained.checkpoint, device=str(torch_device))
        classes = list(meta["class_names"])
        size = int(meta["img_size"][0] if isinstance(meta["img_size"], list) else meta["img_size"])
        transform = build_eval_transform(size)

        bar = tqdm(total=len(images), desc="landmarks+quality", unit="img")
        analyse_images(db_path, images, on_step=lambda s, n: (bar.update(1), rec.progress(0.1 * (s + 1) / n,
                                                                                         "landmarks + quality")))
        bar.close()
        with connect(db_path, read_only=True) as con:
            lm_rows = con.execute("SELECT * FROM landmarks WHERE image_id IN (SELECT unnest(?))",
                                  [images["image_id"].tolist()]).df().set_index("image_id")
        done = _existing(db_path, "SELECT image_id, method FROM explanations WHERE run_id = ? AND target_kind = ?",
                         [trained.run_id, target])
        patch = model.patch_embed.patch_size[0]
        todo = images[[any((i, m) not in done for m in methods) for i in images["image_id"]]]
        skipped: list[tuple[str, str]] = []
        bar = tqdm(total=len(todo), desc=f"explain {split}", unit="img")
        for start in range(0, len(todo), batch_size):
            chunk = todo.iloc[start:start + batch_size]
            tensors, geoms, keep = [], [], []
            for row in chunk.itertuples(index=False):
                try:
                    photo = load_rgb(row.path)
                    mask = Image.open(row.mask_path) if row.mask_path and Path(row.mask_path).is_file() else None
                except (DataError, OSError) as exc:
                    skipped.append((row.path, str(exc).splitlines()[0]))
                    continue
                lm = Landmarks(**{k: lm_rows.loc[row.image_id, k] for k in
                                  ("fov_cx", "fov_cy", "fov_r", "disc_x", "disc_y", "disc_r", "fovea_x",
                                   "fovea_y", "eye_estimate")})
                tensors.append(transform(photo))
                geoms.append(input_geometry(photo, lm, size, eye=row.eye, mask=mask))
                keep.append(row)
            if not keep:
                bar.update(len(chunk))
                continue
            batch = torch.stack(tensors).to(torch_device)
            with torch.no_grad():
                logits = model(batch)
            preds = logits.argmax(1)
            if target == "pred":
                targets = preds
            else:
                targets = torch.tensor([classes.index(r.label) if r.label in classes else -1 for r in keep],
                                       device=torch_device)
                if (targets < 0).any():
                    raise DataError(f"an image label is not one of the run's classes {classes}")
            ex_rows, zone_rows, loc_rows = [], [], []
            for method in methods:
                maps = relevance(model, batch, method, targets, start_layer).float()
                full = maps if maps.shape[-2:] == (size, size) else upsample(maps, (size, size))
                for i, row in enumerate(keep):
                    if (row.image_id, method) in done:
                        continue
                    heat = full[i].cpu().numpy()
                    grid = maps[i].cpu().numpy()
                    if grid.shape == (size, size):  # pixel-level method: store its token-grid mass
                        grid = area_transfer(grid, (size // patch, size // patch), "mass")
                    t = int(targets[i])
                    path = out_root / method / f"{row.image_id}_t{t}.npy"
                    digest = _atomic_npy(path, heat.astype(np.float16))
                    focus = focus_scores(heat, grid, geoms[i])
                    key = {"run_id": trained.run_id, "image_id": row.image_id, "method": method, "target": t}
                    ex_rows.append({**key, "target_label": classes[t], "target_kind": target,
                                    "grid_h": grid.shape[0], "grid_w": grid.shape[1],
                                    "grid": grid.astype(np.float32).ravel().tolist(),
                                    "heatmap_path": str(path), "heatmap_sha256": digest,
                                    "heatmap_h": size, "heatmap_w": size,
                                    "positive_sum": float(np.clip(heat, 0, None).sum()),
                                    "entropy": focus.entropy, "gini": focus.gini, "peak_zone": focus.peak_zone,
                                    "explain_run_id": rec.run_id})
                    zone_rows += [{**key, **z} for z in focus.zones]
                    loc_rows += [{**key, **loc} for loc in focus.localisation]
            write_explanation_batch(db_path, pd.DataFrame(ex_rows), pd.DataFrame(zone_rows), pd.DataFrame(loc_rows))
            bar.update(len(chunk))
            rec.progress(0.1 + 0.8 * (start + len(chunk)) / max(len(todo), 1), f"explained {start + len(chunk)}/{len(todo)}")
        bar.close()
        if skipped:
            write_ingest_errors(db_path, skipped, run_id=rec.run_id, dataset_id=trained.dataset_id)
            for path, reason in skipped:
                tqdm.write(f"skipped {path}: {reason}")

        if faithfulness_images > 0:
            have = {m for (m,) in _existing(db_path, "SELECT DISTINCT method FROM faithfulness WHERE run_id = ? "
                                            "AND split = ?", [trained.run_id, split])}
            sample = images.head(faithfulness_images)
            batch = torch.stack([transform(load_rgb(p)) for p in sample["path"]]).to(torch_device)
            for k, method in enumerate(m for m in methods if m not in have):
                maps = relevance(model, batch, method, None, start_layer).float()
                full = maps if maps.shape[-2:] == (size, size) else upsample(maps, (size, size))
                curves = perturbation_test(model, batch, full.cpu().numpy())
                rows = []
                for test, res in curves.items():
                    for j, fraction in enumerate(res.fractions):
                        rows.append({"run_id": trained.run_id, "split": split, "method": method, "test": test,
                                     "fraction": float(fraction), "accuracy": float(res.accuracy[j]),
                                     "probability": float(res.target_prob[:, j].mean()),
                                     "n_images": len(sample)})
                write_faithfulness(db_path, pd.DataFrame(rows))
                rec.progress(0.9 + 0.1 * (k + 1) / len(methods), f"faithfulness {method}")
                tqdm.write(f"faithfulness {method}: positive AUC {curves['positive'].auc_accuracy:.3f} "
                           f"(lower is better), negative AUC {curves['negative'].auc_accuracy:.3f} (higher is better)")
    return trained.run_id


@friendly_errors
def main(
    run: Annotated[str, typer.Option(help="Finetune run id, or 'latest'.")] = "latest",
    methods: Annotated[str, typer.Option(help="Comma-separated explanation methods.")] = DEFAULT_METHODS,
    split: Annotated[str, typer.Option(help="train | val | test.")] = "test",
    target: Annotated[str, typer.Option(help="Explain the predicted class ('pred') or the true label ('label').")] = "pred",
    batch_size: int = 8,
    start_layer: Annotated[int, typer.Option(help="First block of the rollout (lrp, gae, rollout).")] = 0,
    faithfulness_images: Annotated[int, typer.Option(help="Images for the perturbation curves (0 = skip).")] = 32,
    device: str = "auto",
    db: DbOption = None,
    results: ResultsOption = None,
) -> None:
    """Explain every prediction of a split: heatmaps, zone scores, quality, landmarks, faithfulness."""
    set_threads()
    run_explain(run, [m.strip() for m in methods.split(",") if m.strip()], split, db=db, results=results,
                target=target, batch_size=batch_size, device=device, start_layer=start_layer,
                faithfulness_images=faithfulness_images, command=command_line())


if __name__ == "__main__":
    typer.run(main)
