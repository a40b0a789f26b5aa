"""Samples of a split's images, for per-image statistics that would be too slow on every image.

A page statistic that costs O(images x resamples) (bootstrap intervals, rank tests,
permutation tests, paired comparisons) uses every image of its selection up to
``SAMPLE_IMAGES``; above that it uses the selection's images among the split's first
``SAMPLE_IMAGES`` images **in image-id order**, and the page says so. Per-class samples
(the drift pages' images per class) are likewise each class's first images in id order.

Why image-id order: an image id is a SHA-1 digest of its dataset and path
(``retcore.storage.writes.image_id_for``), so the first k ids are a uniform random
sample fixed by the data: the same images on every page and for every run and method of a
dataset (paired comparisons stay paired), nested (a larger sample holds a smaller one),
and — jobs write rows in image-id order — a prefix of the stored tables, which DuckDB
reads without scanning the rest (its zone maps skip the other row groups).

``SAMPLE_IMAGES`` is ``BOOT_CELLS / 100``: the largest selection whose bootstrap still gets
100 resamples within the dashboard's budget of rows x resamples
(``retcore.results.headline.boot_size``), so below it nothing changes.

The cutoffs (the k-th smallest id) are stored per run and split by ``retcore predict``
and ``retcore summarize`` (``sample_cutoffs``, :mod:`retcore.results.summaries`); without
them they are computed on read.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from retcore.results.executor import Source, frame, tables

__all__ = ["CLASS_SAMPLE", "SAMPLE_IMAGES", "Sample", "class_cutoffs", "cutoffs_sql", "describe", "split_sample"]

#: Images of a split that a page's per-image statistics use at most (see the module docstring).
SAMPLE_IMAGES = 50_000
#: Images per class of the drift pages' samples (mean maps, zone-score drift, permutation tests).
CLASS_SAMPLE = 1_000
_GROUPS = {"label": "label", "pred": "pred"}


@dataclass(frozen=True)
class Sample:
    """The split's sample: ``n`` images in the split, ``size`` the sample's size, ``cutoff`` the
    largest image id in it (every image with ``image_id <= cutoff`` is in the sample)."""

    n: int
    size: int
    cutoff: str | None

    @property
    def sampled(self) -> bool:
        """True when the split has more images than the sample holds."""
        return self.n > self.size and self.cutoff is not None


def _select(grouping: str) -> str:
    """SELECT (grouping, class, size, n, cutoff) over CTE ``p`` for one grouping; two parameters (size, size)."""
    col = _GROUPS.get(grouping)
    if col is None:
        return ("SELECT 'all' AS grouping, '' AS class, ? AS size, count(*) AS n, "
                "list_last(min(image_id, ?)) AS cutoff FROM p")
    return (f"SELECT '{grouping}' AS grouping, {col} AS class, ? AS size, count(*) AS n, "
            f"list_last(min(image_id, ?)) AS cutoff FROM p WHERE {col} IS NOT NULL GROUP BY {col}")


def cutoffs_sql(run: str, split: str, sizes: dict[str, int] | None = None) -> tuple[str, tuple]:
    """SELECT of the sample cutoffs of ``run``'s ``split`` (the ``sample_cutoffs`` summary): rows
    (run_id, split, grouping, class, size, n, cutoff) for each grouping of ``sizes`` ('all': the
    split, class ''; 'label' / 'pred': per class); cutoff = the size-th smallest image id (the
    largest when there are fewer). Default sizes: ``SAMPLE_IMAGES`` for 'all', ``CLASS_SAMPLE`` per class."""
    sizes = sizes or {"all": SAMPLE_IMAGES, "label": CLASS_SAMPLE, "pred": CLASS_SAMPLE}
    parts = " UNION ALL ".join(_select(g) for g in sizes)
    sql = ("WITH p AS (SELECT image_id, label, pred FROM predictions WHERE run_id = ? AND split = ?) "
           "SELECT ?::VARCHAR AS run_id, ?::VARCHAR AS split, s.grouping, s.class, s.size::INTEGER AS size, "
           f"s.n::INTEGER AS n, s.cutoff FROM ({parts}) s WHERE s.n > 0")
    params = (run, split, run, split, *[v for size in sizes.values() for v in (size, size)])
    return sql, params


def _cutoffs(q: Source, run: str, split: str, grouping: str, size: int) -> pd.DataFrame:
    """Rows (class, n, cutoff) of ``grouping`` for samples of ``size``: stored, else computed."""
    if "sample_cutoffs" in tables(q):
        stored = frame(q, "SELECT class, n, cutoff FROM sample_cutoffs WHERE run_id = ? AND split = ? "
                          "AND grouping = ? AND size = ? ORDER BY class", (run, split, grouping, size))
        if not stored.empty:
            return stored
    sql, params = cutoffs_sql(run, split, {grouping: size})
    return frame(q, sql + " ORDER BY s.class", params)[["class", "n", "cutoff"]]


def split_sample(q: Source, run: str, split: str, size: int = SAMPLE_IMAGES) -> Sample:
    """The first ``size`` images (id order) of ``run``'s ``split``."""
    rows = _cutoffs(q, run, split, "all", size)
    if rows.empty:
        return Sample(0, size, None)
    return Sample(int(rows["n"].iloc[0]), size, str(rows["cutoff"].iloc[0]))


def class_cutoffs(q: Source, run: str, split: str, by: str, size: int) -> dict[str, str]:
    """Per class (``by`` 'label' or 'pred') of ``run``'s ``split``: the largest id of its first ``size``
    images in id order."""
    rows = _cutoffs(q, run, split, "pred" if by == "pred" else "label", size)
    return {str(c): str(v) for c, v in zip(rows["class"], rows["cutoff"])}


def describe(used: int, total: int, what: str = "images") -> str:
    """How a page states a sample: e.g. 'a fixed sample of 49,873 of the 1,000,000 images (the first
    50,000 of the split by image id)'."""
    return (f"a fixed sample of {used:,} of the {total:,} {what} (those among the split's first "
            f"{SAMPLE_IMAGES:,} images by image id: a uniform random sample, the same on every page and run)")
