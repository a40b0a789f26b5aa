"""Configuration of the semi-synthetic demo fundus dataset."""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["DemoConfig", "DEMO_CLASSES", "GENERATOR_VERSION", "config_fingerprint", "validate_config"]

#: Classes the renderer knows how to draw (a config may use any subset of them).
DEMO_CLASSES: tuple[str, ...] = ("cataract", "diabetic_retinopathy", "glaucoma", "normal")

#: Bump when the rendering changes, so a stored dataset is rebuilt instead of reused.
GENERATOR_VERSION = 1


@dataclass(frozen=True)
class DemoConfig:
    """Parameters of the demo dataset (all sizes in pixels of the saved images).

    n_images: total number of images, split evenly over ``classes``.
    img_size: side of the square RGB PNGs.
    shortcut: class name that carries the planted marker in train/val, or None (no marker at all).
    shortcut_rate_trainval: share of train/val images of the ``shortcut`` class with the marker.
    shortcut_rate_other: share of train/val images of every other class with the marker.
    test_marker_rate: share of test images with the marker, drawn independently of the class.
    quality_rate: share of images that receive one (sometimes two) quality perturbations.
    val, test: shares of each class's images (grouped by patient) in the val and test splits.
    seed: master seed; every image has its own RNG seeded from (seed, index).
    workers: worker processes (output does not depend on it; <= 1 renders in-process).
    """

    n_images: int = 800
    img_size: int = 224
    classes: tuple[str, ...] = DEMO_CLASSES
    shortcut: str | None = None
    shortcut_rate_trainval: float = 0.9
    shortcut_rate_other: float = 0.05
    test_marker_rate: float = 0.5
    quality_rate: float = 0.3
    val: float = 0.15
    test: float = 0.15
    seed: int = 0
    workers: int = 2


def config_fingerprint(cfg: DemoConfig) -> dict[str, object]:
    """JSON-serialisable dict of every field that influences the output (``workers`` excluded)."""
    d = asdict(cfg)
    d.pop("workers")
    d["classes"] = list(cfg.classes)
    d["generator_version"] = GENERATOR_VERSION
    return d


def validate_config(cfg: DemoConfig) -> None:
    """Raise ``DataError`` with a one-line fix when ``cfg`` cannot be generated."""
    from retcore.errors import DataError

    unknown = [c for c in cfg.classes if c not in DEMO_CLASSES]
    if unknown or not cfg.classes or len(set(cfg.classes)) != len(cfg.classes):
        raise DataError(f"demo classes {list(cfg.classes)!r} invalid: use distinct names from {list(DEMO_CLASSES)}")
    if cfg.shortcut is not None and cfg.shortcut not in cfg.classes:
        raise DataError(f"demo shortcut {cfg.shortcut!r} is not a class: use one of {list(cfg.classes)} or None")
    if cfg.n_images < len(cfg.classes):
        raise DataError(f"demo n_images={cfg.n_images} too small: use at least {len(cfg.classes)}")
    if cfg.img_size < 32:
        raise DataError(f"demo img_size={cfg.img_size} too small: use at least 32")
    for name in ("shortcut_rate_trainval", "shortcut_rate_other", "test_marker_rate", "quality_rate", "val", "test"):
        v = getattr(cfg, name)
        if not 0.0 <= v <= 1.0:
            raise DataError(f"demo {name}={v} out of range: use a value in [0, 1]")
    if cfg.val + cfg.test >= 1.0:
        raise DataError(f"demo val+test={cfg.val + cfg.test} leaves no training data: keep it below 1")
