"""``retcore sanity``: the model-parameter randomisation test (Adebayo et al., NeurIPS 2018)
of each explanation method on a fine-tuned run.

For each of ``--images`` images of ``--split`` (image-id order, only images with a stored
prediction), each method's map of the predicted class (``predictions.pred``, the class
``retcore explain`` explains) is computed on the trained model and on every step of the
``cascading`` and / or ``independent`` randomisation schedule (:mod:`retcore.sanity`),
and the two maps are compared (Spearman rank correlation of absolute maps, SSIM). One
row per (method, mode, step, image) goes into ``sanity_checks``. Each step of each batch
lands in one transaction and a rerun computes only the missing rows, so a killed job
loses at most the step in flight. At the end the verdict per method is printed (see
:func:`retcore.sanity.verdicts`).
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from jobs._common import DbOption, RunResultsOption, command_line, friendly_errors, set_threads
from jobs.explain import DEFAULT_METHODS, method_list

__all__ = ["DEFAULT_IMAGES", "main", "options_run_config", "run_data_randomisation", "run_sanity",
           "sanity_run_config", "shuffled_manifest", "verdict_lines"]

DEFAULT_IMAGES = 32
"""Images checked by default (``--images``; 0 = every image of the split)."""

MODE_CHOICES = ("cascading", "independent", "both")


def sanity_run_config(run_id: str, methods: list[str], split: str, *, images: int, mode: str, seed: int,
                      batch_size: int) -> dict:
    """The ``runs.config`` of a sanity run of finetune run ``run_id`` (an id, not ``latest``)."""
    return {"run": run_id, "methods": list(methods), "split": split, "images": images, "mode": mode,
            "seed": seed, "batch_size": batch_size}


def options_run_config(options: Mapping[str, Any]) -> dict:
    """The ``runs.config`` that ``retcore sanity`` with ``options`` records (``--run`` given as an id)."""
    return sanity_run_config(options["run"], method_list(options["methods"]), options["split"],
                             images=options["images"], mode=options["mode"], seed=options["seed"],
                             batch_size=options["batch_size"])


def _done(db: Path, run_id: str, seed: int) -> set[tuple[str, str, str, int]]:
    """Stored (image_id, method, mode, step) rows of ``run_id`` with ``seed``."""
    from retcore.results.lookups import sanity_done
    from retcore.storage import connect

    with connect(db, read_only=True) as con:
        return sanity_done(con, run_id, seed)


def verdict_lines(db: Path, run_id: str, seed: int, methods: list[str], test: str = "model") -> list[str]:
    """One line per method: its verdict (``test``: 'model' or 'data', see :func:`retcore.sanity.verdicts`)."""
    from retcore.results.sanity import sanity_verdicts
    from retcore.storage import connect

    with connect(db, read_only=True) as con:
        table = sanity_verdicts(con, run_id, seed=seed, methods=methods, test=test)
    return [f"sanity {r.method}: {r.verdict}" for r in table.itertuples()]


def _checked_run(db: Path | None, run: str, methods: list[str], split: str, *, batch_size: int, images: int):
    """Validate the options; return ``(database path, TrainedRun, the split's images)``."""
    from jobs._runs import find_trained_run, run_images
    from retcore.errors import DataError, RetcoreError
    from retcore.explain import METHOD_REGISTRY
    from retcore.results.lookups import has_predictions
    from retcore.storage import connect
    from retcore.storage.runs import open_db

    METHOD_REGISTRY.check(methods)  # UnknownMethodError listing the names
    if not methods:
        raise RetcoreError("--methods is empty: name at least one explanation method")
    if batch_size < 1:
        raise RetcoreError(f"--batch-size {batch_size} must be at least 1")
    if images < 0:
        raise RetcoreError(f"--images {images} must be 0 (every image) or more")
    db_path = open_db(db, must_exist=True)
    trained = find_trained_run(db_path, run)
    eye = trained.config.get("finetune", {}).get("eye", "both")
    frame = run_images(db_path, trained.dataset_id, split, eye=eye)
    if frame.empty:
        raise DataError(f"run {trained.run_id} has no {split!r} images; pick --split train|val|test")
    with connect(db_path, read_only=True) as con:
        predicted = has_predictions(con, trained.run_id, split)
    if not predicted:
        raise RetcoreError(f"run {trained.run_id} has no stored predictions on {split!r}; run "
                           f"`retcore predict --run {trained.run_id} --split {split}` first")
    return db_path, trained, frame


def _explainable_model(trained, methods: list[str], device):
    """``(model, class names, input side)`` of a run, refusing methods that cannot explain it."""
    from jobs._runs import load_trained_model
    from retcore.errors import RetcoreError
    from retcore.explain import explain_support

    model, meta = load_trained_model(trained.checkpoint, device=str(device))
    refused = {m: why for m in methods if (why := explain_support(model, m, 0)) is not None}
    if refused:
        name = meta.get("model_name") or "this model"
        raise RetcoreError(f"{', '.join(refused)} cannot explain {name} ({'; '.join(refused.values())}); "
                           "drop it from --methods")
    size = int(meta["img_size"][0] if isinstance(meta["img_size"], list) else meta["img_size"])
    return model, list(meta["class_names"]), size


def _sample(db_path: Path, trained, split: str, frame, classes: list[str], images: int):
    """The checked images (the first ``images`` with a stored prediction, image-id order; 0 = all) and
    the class each is explained for (``predictions.pred``, as ``retcore explain``)."""
    from jobs.explain import _stored_targets

    targets_by_id = _stored_targets(db_path, trained.run_id, split, frame, classes, "pred")
    sample = frame[frame["image_id"].isin(targets_by_id)]
    return (sample.head(images) if images else sample), targets_by_id


def _batches(todo, classes: list[str], size: int, batch_size: int, num_workers: int):
    """``(image ids, images (B, 3, S, S))`` of ``todo``'s rows, in DataLoader batches."""
    from jobs.explain import _loader
    from retcore.data import FundusDataset, ImageRecord, build_eval_transform

    records = [ImageRecord(path=p, label=lab) for p, lab in todo[["path", "label"]].itertuples(index=False)]
    data = FundusDataset(records, classes, build_eval_transform(size))
    for xb, _, idx in (_loader(data, batch_size, num_workers) if len(data) else []):
        yield [str(todo["image_id"].iloc[int(k)]) for k in idx], xb


def run_sanity(run: str, methods: list[str], split: str = "test", *, db: Path | None = None,
               results: Path | None = None, images: int = DEFAULT_IMAGES, mode: str = "both", seed: int = 0,
               batch_size: int = 8, device: str = "auto", num_workers: int = 2, command: str = "") -> str:
    """Run the randomisation test on ``images`` images of ``split``; return the sanity run id.

    Only (image, method, mode, step) rows missing for this run and ``seed`` are computed.

    Raises:
        RetcoreError: unknown run, method, mode or split; no stored predictions on ``split``
            (run ``retcore predict`` first); a method that cannot explain the model.
    """
    import pandas as pd
    import torch
    from tqdm.auto import tqdm

    from retcore.errors import RetcoreError
    from retcore.sanity import MODES, reference_maps, sanity_check, schedule
    from retcore.storage.runs import record_run
    from retcore.storage.writes import write_sanity_checks
    from retcore.train.engine import resolve_device

    if mode not in MODE_CHOICES:
        raise RetcoreError(f"--mode {mode!r} must be one of {', '.join(MODE_CHOICES)}")
    db_path, trained, frame = _checked_run(db, run, methods, split, batch_size=batch_size, images=images)
    modes = list(MODES) if mode == "both" else [mode]
    config = sanity_run_config(trained.run_id, methods, split, images=images, mode=mode, seed=seed,
                               batch_size=batch_size)

    with record_run(db_path, "sanity", config=config, command=command, parent_run_id=trained.run_id,
                    seed=seed, results=results) as rec:
        torch_device = resolve_device(device)
        model, classes, size = _explainable_model(trained, methods, torch_device)
        sample, targets_by_id = _sample(db_path, trained, split, frame, classes, images)
        plans = {mo: schedule(model, mo) for mo in modes}
        done = _done(db_path, trained.run_id, seed)
        missing = {i: sum((i, m, mo, s.index) not in done for m in methods for mo in modes for s in plans[mo])
                   for i in sample["image_id"]}
        todo = sample[[missing[i] > 0 for i in sample["image_id"]]].reset_index(drop=True)
        total = sum(missing.values())
        bar = tqdm(total=total, desc=f"sanity {split}", unit="map")
        written, started = 0, time.perf_counter()
        seconds_by_method = dict.fromkeys(methods, 0.0)
        images_by_method: dict[str, set[str]] = {m: set() for m in methods}
        for ids, xb in _batches(todo, classes, size, batch_size, num_workers):
            x = xb.to(torch_device)
            targets = torch.tensor([targets_by_id[i] for i in ids], device=torch_device)
            need_ref = [m for m in methods if any((i, m, mo, s.index) not in done
                                                  for i in ids for mo in modes for s in plans[mo])]
            ref = reference_maps(model, x, targets, need_ref)
            for mo in modes:
                def pending(step, method, mo=mo):
                    return [k for k, i in enumerate(ids) if (i, method, mo, step.index) not in done]

                for result in sanity_check(model, x, targets, methods, mo, seed=seed, reference=ref, todo=pending):
                    rows = [{"run_id": trained.run_id, "sanity_run_id": rec.run_id, "method": r.method, "mode": mo,
                             "seed": seed, "step": result.step.index, "layer": result.step.layer,
                             "image_id": ids[k], "target": int(targets[k]), "spearman": float(rho),
                             "ssim": float(sim)}
                            for r in result.methods for k, rho, sim in zip(r.images, r.spearman, r.ssim)]
                    for r in result.methods:
                        seconds_by_method[r.method] += r.seconds
                        images_by_method[r.method].update(ids[k] for k in r.images)
                    write_sanity_checks(db_path, pd.DataFrame(rows))
                    written += len(rows)
                    bar.update(len(rows))
                    rec.progress(written / max(total, 1), f"sanity {mo} step {result.step.index} "
                                 f"({result.step.layer}): {written}/{total} maps")
        bar.close()
        seconds = time.perf_counter() - started
        costs = {m: seconds_by_method[m] / len(images_by_method[m]) for m in methods if images_by_method[m]}
        if costs:  # read by retcore.results.sanity.sanity_costs (the Methods page's cost per image)
            rec.update(config={**config, "seconds_per_image": costs})
        if written:
            n_img = len(todo)
            tqdm.write(f"sanity: {written} randomised maps of {n_img} images in {seconds:.1f} s "
                       f"({seconds / max(n_img, 1):.2f} s per image for {len(methods)} methods, {' + '.join(modes)})")
        for line in verdict_lines(db_path, trained.run_id, seed, methods):
            tqdm.write(line)
    return rec.run_id


def shuffled_manifest(manifest: Path, seed: int) -> Path:
    """A copy of a CSV ``manifest`` beside it whose train and val labels are permuted (seeded;
    :func:`retcore.sanity.shuffle_labels`): ``<stem>-shuffled-s<seed>.csv``. Paths, splits and every
    other column are kept, so the same files are read; the test split keeps its true labels.
    Written only when missing or different."""
    import pandas as pd

    from retcore.errors import DataError
    from retcore.sanity import shuffle_labels

    frame = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    if not {"label", "split"} <= set(frame.columns):
        raise DataError(f"{manifest} needs 'label' and 'split' columns to shuffle the training labels")
    frame["label"] = shuffle_labels(frame["label"].tolist(), frame["split"].tolist(), seed=seed)
    out = manifest.with_name(f"{manifest.stem}-shuffled-s{seed}.csv")
    text = frame.to_csv(index=False)
    if not out.is_file() or out.read_text() != text:
        out.write_text(text)
    return out


def run_data_randomisation(run: str, shuffled_run: str, methods: list[str], split: str = "test", *,
                           db: Path | None = None, results: Path | None = None, images: int = DEFAULT_IMAGES,
                           seed: int = 0, batch_size: int = 8, device: str = "auto", num_workers: int = 2,
                           command: str = "") -> str:
    """The data randomisation test: maps of ``run`` (true labels) vs ``shuffled_run`` (the same recipe
    fine-tuned on shuffled labels) on ``images`` images of ``run``'s ``split``, both for ``run``'s stored
    prediction; rows ``mode='data'``, ``step=0``, ``layer='labels'``, ``seed`` into ``sanity_checks``.
    Only missing rows are computed. Returns the sanity run id."""
    import pandas as pd
    import torch
    from tqdm.auto import tqdm

    from jobs._runs import find_trained_run
    from retcore.errors import RetcoreError
    from retcore.sanity import DATA_LAYER, DATA_MODE, map_similarity, reference_maps
    from retcore.storage.runs import record_run
    from retcore.storage.writes import write_sanity_checks
    from retcore.train.engine import resolve_device

    db_path, trained, frame = _checked_run(db, run, methods, split, batch_size=batch_size, images=images)
    shuffled = find_trained_run(db_path, shuffled_run)
    config = {**sanity_run_config(trained.run_id, methods, split, images=images, mode=DATA_MODE, seed=seed,
                                  batch_size=batch_size), "shuffled_run": shuffled.run_id}
    with record_run(db_path, "sanity", config=config, command=command, parent_run_id=trained.run_id,
                    seed=seed, results=results) as rec:
        torch_device = resolve_device(device)
        model, classes, size = _explainable_model(trained, methods, torch_device)
        other, other_classes, other_size = _explainable_model(shuffled, methods, torch_device)
        if other_classes != classes or other_size != size:
            raise RetcoreError(f"run {shuffled.run_id} ({other_classes}, {other_size} px) does not match run "
                               f"{trained.run_id} ({classes}, {size} px): compare runs of the same recipe")
        sample, targets_by_id = _sample(db_path, trained, split, frame, classes, images)
        done = _done(db_path, trained.run_id, seed)
        todo = sample[[any((i, m, DATA_MODE, 0) not in done for m in methods)
                       for i in sample["image_id"]]].reset_index(drop=True)
        bar = tqdm(total=len(todo), desc=f"data randomisation {split}", unit="img")
        for ids, xb in _batches(todo, classes, size, batch_size, num_workers):
            x = xb.to(torch_device)
            targets = torch.tensor([targets_by_id[i] for i in ids], device=torch_device)
            rows = []
            for method in methods:
                need = [k for k, i in enumerate(ids) if (i, method, DATA_MODE, 0) not in done]
                if not need:
                    continue
                sel = torch.as_tensor(need, device=torch_device)
                a = reference_maps(model, x[sel], targets[sel], [method])[method]
                b = reference_maps(other, x[sel], targets[sel], [method])[method]
                rho, sim = map_similarity(a, b)
                rows += [{"run_id": trained.run_id, "sanity_run_id": rec.run_id, "method": method, "mode": DATA_MODE,
                          "seed": seed, "step": 0, "layer": DATA_LAYER, "image_id": ids[k],
                          "target": int(targets[k]), "spearman": float(r), "ssim": float(s_)}
                         for k, r, s_ in zip(need, rho, sim)]
            write_sanity_checks(db_path, pd.DataFrame(rows))
            bar.update(len(ids))
            rec.progress(bar.n / max(len(todo), 1), f"data randomisation: {bar.n}/{len(todo)} images")
        bar.close()
    return rec.run_id


@friendly_errors
def main(
    run: Annotated[str, typer.Option(help="Finetune run id, or 'latest'.")] = "latest",
    methods: Annotated[str, typer.Option(help="Comma-separated explanation methods.")] = DEFAULT_METHODS,
    split: Annotated[str, typer.Option(help="train | val | test.")] = "test",
    images: Annotated[int, typer.Option(help="Images checked, in image-id order (0 = every image).")] = DEFAULT_IMAGES,
    mode: Annotated[str, typer.Option(help="cascading (head, then blocks top down, then the stem) | independent "
                                           "(one layer group at a time) | both.")] = "both",
    seed: Annotated[int, typer.Option(help="Seed of the re-initialised weights.")] = 0,
    batch_size: int = 8,
    num_workers: Annotated[int, typer.Option(help="DataLoader workers that decode and prepare images.")] = 2,
    device: str = "auto",
    db: DbOption = None,
    results: RunResultsOption = None,
) -> None:
    """Sanity-check the explanation methods: maps on randomised models vs the trained model."""
    set_threads()
    run_sanity(run, method_list(methods), split, db=db, results=results, images=images, mode=mode, seed=seed,
               batch_size=batch_size, device=device, num_workers=num_workers, command=command_line())


if __name__ == "__main__":
    typer.run(main)
