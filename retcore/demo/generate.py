"""Planning (patients, splits, markers), parallel rendering and atomic writing of the demo set."""

from __future__ import annotations

import csv
import json
import multiprocessing as mp
import os
import shutil
import sys
import threading
import uuid
from pathlib import Path

import numpy as np

from .base import BasePhoto, load_base
from .config import DemoConfig, config_fingerprint, validate_config
from .render import SamplePlan, render_sample

__all__ = ["DEMO_MANIFEST", "DEMO_CONFIG_FILE", "MANIFEST_COLUMNS", "make_demo_dataset", "plan_samples"]

DEMO_MANIFEST = "manifest.csv"
DEMO_CONFIG_FILE = "demo_config.json"
MANIFEST_COLUMNS: tuple[str, ...] = (
    "path", "label", "split", "patient_id", "eye", "mask_path", "disc_x", "disc_y", "disc_r",
    "blur_sigma", "glare", "shift_px", "exposure", "shortcut", "marker_x", "marker_y", "marker_r",
)
_STAGING_PREFIX = ".staging-"
_BOTH_EYES = 0.85  # share of patients contributing both eyes


def _split_patients(n_imgs: list[int], val: float, test: float, rng: np.random.Generator) -> list[str]:
    """Grouped split of one class: patients (with ``n_imgs`` images each) -> 'train'|'val'|'test'."""
    order = rng.permutation(len(n_imgs))
    total = sum(n_imgs)
    out = ["train"] * len(n_imgs)
    pos = 0
    for name, share in (("test", test), ("val", val)):
        target, got = round(share * total), 0
        while pos < len(order) - 1 and share > 0 and (got < target or got == 0):
            out[order[pos]] = name
            got += n_imgs[order[pos]]
            pos += 1
    return out


def plan_samples(cfg: DemoConfig) -> list[SamplePlan]:
    """All sample plans, ordered by (patient_id, eye); deterministic in ``cfg.seed``.

    Images are spread evenly over the classes; a patient has one class and one or two eyes;
    splits are stratified by class and grouped by patient.
    """
    rng = np.random.default_rng([cfg.seed, 1])
    n_cls = len(cfg.classes)
    patients: list[tuple[str, list[str], str]] = []  # (label, eyes, split)
    for ci, label in enumerate(cfg.classes):
        remaining = cfg.n_images // n_cls + (1 if ci < cfg.n_images % n_cls else 0)
        eyes_list: list[list[str]] = []
        while remaining > 0:
            if remaining >= 2 and rng.random() < _BOTH_EYES:
                eyes_list.append(["left", "right"])
            else:
                eyes_list.append(["left" if rng.random() < 0.5 else "right"])
            remaining -= len(eyes_list[-1])
        splits = _split_patients([len(e) for e in eyes_list], cfg.val, cfg.test, rng)
        patients += [(label, e, s) for e, s in zip(eyes_list, splits)]
    ids = rng.permutation(len(patients))  # ids do not reveal the class
    width = max(4, len(str(len(patients))))
    named = sorted((f"p{int(i) + 1:0{width}d}", p) for i, p in zip(ids, patients))
    plans: list[SamplePlan] = []
    for pi, (pid, (label, eyes, split)) in enumerate(named):
        prng = np.random.default_rng([cfg.seed, 3, pi])
        gain = tuple(float(g) for g in np.clip(prng.normal(1.0, 0.06, 3), 0.85, 1.15))
        for eye in eyes:
            idx = len(plans)
            if cfg.shortcut is None:
                rate = 0.0
            elif split == "test":
                rate = cfg.test_marker_rate
            else:
                rate = cfg.shortcut_rate_trainval if label == cfg.shortcut else cfg.shortcut_rate_other
            marker = bool(np.random.default_rng([cfg.seed, 5, idx]).random() < rate)
            plans.append(SamplePlan(idx, cfg.seed, pid, eye, label, split, marker, gain))  # type: ignore[arg-type]
    return plans


_WORKER: dict[str, object] = {}


def _init_worker(base: BasePhoto, img_size: int, quality_rate: float, root: str) -> None:
    _WORKER.update(base=base, img_size=img_size, quality_rate=quality_rate, root=root)


def _render_and_save(plan: SamplePlan) -> dict[str, object]:
    from PIL import Image

    w = _WORKER
    res = render_sample(plan, w["img_size"], w["quality_rate"], w["base"])  # type: ignore[arg-type]
    name = f"{plan.patient_id}_{plan.eye}.png"
    rel_img, rel_mask = f"images/{plan.label}/{name}", f"masks/{name}"
    root = Path(w["root"])  # type: ignore[arg-type]
    Image.fromarray(res.image).save(root / rel_img, compress_level=3)
    Image.fromarray(res.mask).save(root / rel_mask, compress_level=3)
    return {"path": rel_img, "label": plan.label, "split": plan.split, "patient_id": plan.patient_id,
            "eye": plan.eye, "mask_path": rel_mask, **res.row}


def _existing_is_complete(out: Path, fingerprint: dict[str, object]) -> bool:
    man, conf = out / DEMO_MANIFEST, out / DEMO_CONFIG_FILE
    if not (man.is_file() and conf.is_file()):
        return False
    try:
        if json.loads(conf.read_text()) != fingerprint:
            return False
        with man.open(newline="") as f:
            reader = csv.DictReader(f)
            if tuple(reader.fieldnames or ()) != MANIFEST_COLUMNS:
                return False
            rows = list(reader)
    except (OSError, ValueError, csv.Error):
        return False
    return len(rows) == fingerprint["n_images"] and all(
        (out / r["path"]).is_file() and (out / r["mask_path"]).is_file() for r in rows)


def _remove_stale_staging(out: Path) -> None:
    for p in out.glob(_STAGING_PREFIX + "*"):
        try:
            pid = int(p.name[len(_STAGING_PREFIX):].split("-")[0])
            os.kill(pid, 0)  # still running: leave it alone
        except ProcessLookupError:
            shutil.rmtree(p, ignore_errors=True)
        except (ValueError, PermissionError):
            pass


def make_demo_dataset(out_dir: str | os.PathLike[str], cfg: DemoConfig = DemoConfig(),
                      progress: bool = False) -> Path:
    """Generate the semi-synthetic demo fundus set under ``out_dir``; return the manifest path.

    Layout: ``images/<label>/<pid>_<eye>.png`` (img_size x img_size RGB), ``masks/<pid>_<eye>.png``
    (uint8 bit field: 1 lesion/class evidence, 2 optic disc, 4 shortcut marker),
    ``demo_config.json`` and ``manifest.csv`` (columns ``MANIFEST_COLUMNS``; paths relative to
    ``out_dir``; disc/marker positions and radii and ``shift_px`` in image pixels, ``blur_sigma``
    in pixels, ``glare`` in [0, 1], ``exposure`` a factor; -1 marker values when absent).
    Everything is rendered in a staging folder and moved into place with the manifest last,
    so an interrupted run never leaves a manifest pointing to missing files. If ``out_dir``
    already holds a complete dataset made with the same config, it is returned as is.
    """
    validate_config(cfg)
    out = Path(out_dir)
    fingerprint = config_fingerprint(cfg)
    if _existing_is_complete(out, fingerprint):
        return out / DEMO_MANIFEST
    out.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(out)
    stage = out / f"{_STAGING_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        for label in cfg.classes:
            (stage / "images" / label).mkdir(parents=True)
        (stage / "masks").mkdir()
        plans = plan_samples(cfg)
        base = load_base(2 * cfg.img_size)
        init_args = (base, cfg.img_size, cfg.quality_rate, str(stage))
        bar = _progress(len(plans)) if progress else None
        rows: list[dict[str, object]] = []
        if cfg.workers <= 1:
            _init_worker(*init_args)
            it = map(_render_and_save, plans)
            for r in it:
                rows.append(r)
                if bar:
                    bar.update(1)
        else:
            with _mp_context().Pool(cfg.workers, initializer=_init_worker, initargs=init_args) as pool:
                for r in pool.imap(_render_and_save, plans, chunksize=8):
                    rows.append(r)
                    if bar:
                        bar.update(1)
        if bar:
            bar.close()
        with (stage / DEMO_MANIFEST).open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        (stage / DEMO_CONFIG_FILE).write_text(json.dumps(fingerprint, indent=2) + "\n")
        # swap in: drop the old manifest first, then data, then the manifest last
        (out / DEMO_MANIFEST).unlink(missing_ok=True)
        for name in ("images", "masks"):
            if (out / name).exists():
                shutil.rmtree(out / name)
            os.replace(stage / name, out / name)
        os.replace(stage / DEMO_CONFIG_FILE, out / DEMO_CONFIG_FILE)
        os.replace(stage / DEMO_MANIFEST, out / DEMO_MANIFEST)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return out / DEMO_MANIFEST


def _mp_context() -> mp.context.BaseContext:
    """'fork' where available and the caller runs a single Python thread (fast, and works from
    scripts without an ``if __name__ == '__main__'`` guard); 'spawn' otherwise (thread-safe)."""
    if "fork" in mp.get_all_start_methods() and threading.active_count() == 1:
        return mp.get_context("fork")
    return mp.get_context("spawn")


class _progress:
    """Minimal progress reporter (tqdm when available)."""

    def __init__(self, total: int) -> None:
        try:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc="demo images", file=sys.stderr)
        except ImportError:  # pragma: no cover
            self._bar = None
        self._n, self._total = 0, total

    def update(self, n: int) -> None:
        self._n += n
        if self._bar is not None:
            self._bar.update(n)
        elif self._n % 100 == 0 or self._n == self._total:
            print(f"demo images {self._n}/{self._total}", file=sys.stderr)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
