from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pytest

from retcore.data import ImageRecord, assign_splits
from retcore.errors import DataError

CLASSES = ["cataract", "diabetic_retinopathy", "glaucoma", "normal"]


def patient_records(n_patients: int = 300, seed: int = 1) -> list[ImageRecord]:
    """Two eyes per patient; the right eye usually shares the left eye's label."""
    rng = np.random.default_rng(seed)
    records = []
    for p in range(n_patients):
        left = rng.choice(CLASSES, p=[0.4, 0.3, 0.2, 0.1])
        right = left if rng.random() < 0.8 else rng.choice(CLASSES)
        for eye, label in (("left", left), ("right", right)):
            records.append(ImageRecord(path=f"/d/{label}/{p}_{eye}.jpg", label=str(label), patient_id=str(p), eye=eye))
    return records


def proportions(records: list[ImageRecord]) -> dict[str, float]:
    counts = Counter(r.label for r in records)
    return {c: counts[c] / len(records) for c in CLASSES}


def test_grouped_stratified_split() -> None:
    records = patient_records()
    result = assign_splits(records, val=0.15, test=0.15, seed=0)

    assert [r.path for r in result] == [r.path for r in records]  # same order
    assert all(r.split is None for r in records)  # inputs untouched
    splits_of_patient: dict[str, set[str]] = defaultdict(set)
    for r in result:
        splits_of_patient[r.patient_id].add(r.split)
    assert all(len(s) == 1 for s in splits_of_patient.values())  # both eyes in one split

    by_split = {s: [r for r in result if r.split == s] for s in ("train", "val", "test")}
    n = len(result)
    assert abs(len(by_split["val"]) / n - 0.15) < 0.03
    assert abs(len(by_split["test"]) / n - 0.15) < 0.03
    overall = proportions(result)
    for split_records in by_split.values():
        for cls, share in proportions(split_records).items():
            assert abs(share - overall[cls]) < 0.05, (cls, share, overall[cls])


def test_split_is_deterministic_per_seed() -> None:
    records = patient_records(120)
    a = [r.split for r in assign_splits(records, seed=3)]
    b = [r.split for r in assign_splits(records, seed=3)]
    c = [r.split for r in assign_splits(records, seed=4)]
    assert a == b
    assert a != c


def test_preassigned_splits_are_kept_and_inherited_by_the_patient() -> None:
    records = patient_records(100)
    fixed = {0: "test", 1: "test", 5: "train", 40: "val"}
    records = [ImageRecord(**{**r.__dict__, "split": fixed[i]}) if i in fixed else r for i, r in enumerate(records)]
    result = assign_splits(records, val=0.2, test=0.2, seed=0)
    for i, split in fixed.items():
        assert result[i].split == split
    # records 0/1 are both eyes of patient 0; record 4 (patient 2, left) -> its right eye 5 follows it
    assert result[4].split == "train"
    assert result[41].split == "val"  # patient 20's right eye follows its preassigned left eye
    assert all(r.split in {"train", "val", "test"} for r in result)


def test_records_without_patient_are_their_own_group() -> None:
    records = [ImageRecord(path=f"/d/{i}.jpg", label="ab"[i % 2]) for i in range(40)]
    result = assign_splits(records, val=0.25, test=0.25, seed=0)
    counts = Counter(r.split for r in result)
    assert counts == {"train": 20, "val": 10, "test": 10}
    for split in ("train", "val", "test"):
        labels = Counter(r.label for r in result if r.split == split)
        assert labels["a"] == labels["b"]


def test_no_val_no_test_means_all_train() -> None:
    result = assign_splits([ImageRecord(path="/a.jpg", label="x")], val=0, test=0)
    assert result[0].split == "train"


def test_too_few_patients() -> None:
    records = [ImageRecord(path=f"/d/{i}_{e}.jpg", label="x", patient_id=str(i)) for i in range(2) for e in "lr"]
    with pytest.raises(DataError, match="only 2 patient group"):
        assign_splits(records)


def test_invalid_fractions() -> None:
    with pytest.raises(ValueError):
        assign_splits([], val=0.6, test=0.5)


def test_everything_preassigned_is_a_no_op() -> None:
    records = [ImageRecord(path=f"/d/{i}.jpg", label="x", split="test") for i in range(3)]
    assert assign_splits(records) == records


def test_small_sets_keep_every_class_in_every_split():
    """16 patients (both eyes) per class: with 20 folds some folds had no patient of a class and a
    class could miss test entirely; the fold count is capped by the smallest class's patients."""
    from collections import Counter

    from retcore.data import ImageRecord, assign_splits

    records = [ImageRecord(path=f"/d/{c}/{p}_{eye}.jpg", label=c, patient_id=f"{c}{p}", eye=eye)
               for c in ("cataract", "diabetic_retinopathy", "glaucoma", "normal")
               for p in range(16) for eye in ("left", "right")]
    for seed in range(10):
        out = assign_splits(records, seed=seed)
        per = Counter((r.label, r.split) for r in out)
        assert all(per[(c, s)] >= 2 for c in ("cataract", "diabetic_retinopathy", "glaucoma", "normal")
                   for s in ("train", "val", "test")), (seed, per)
        assert out == assign_splits(records, seed=seed)
