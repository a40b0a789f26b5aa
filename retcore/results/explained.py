"""The explained-class rule: which of an image's maps the readers use.

``retcore explain`` stores one map (``explanations``), its zone scores (``zone_scores``)
and its localisation (``localisation``) per (run, image, method, *target*), where
``target`` is the explained class's index in the run's class list. ``--target pred``
(the default) explains the predicted class, ``--target label`` the true label, and a
run may hold both. Every reader of maps, zone scores and localisation uses **one map
per image and method, of its explained class**:

- the image's predicted class (``predictions.pred``);
- or its true label (``predictions.label``) when the run's method was explained for
  labels only (no ``explanations`` row of that run and method has
  ``target_kind = 'pred'``).

An image without a map of its explained class is left out. (Before this module the
rule lived in four places: the dashboard matched the predicted class, ``retcore export``
preferred ``target_kind = 'pred'`` rows and dropped duplicates, the shortcut study
took the maximum over targets, and the Cases gallery took whichever map came first.)
"""
from __future__ import annotations

from collections.abc import Sequence

from retcore.results.executor import Source, frame, tables

__all__ = ["KINDS", "explained_kind", "explained_target", "target_sql"]

#: The two explained classes: the prediction or the true label.
KINDS = ("pred", "label")


def explained_kind(q: Source, run: str, method: str) -> str:
    """'pred', or 'label' when ``run``'s ``method`` maps were made for true labels only."""
    if "explanations" not in tables(q):
        return "pred"
    row = frame(q, "SELECT bool_or(target_kind = 'pred') AS pred, bool_or(target_kind = 'label') AS label "
                   "FROM explanations WHERE run_id = ? AND method = ?", (run, method))
    only_label = bool(row["label"].fillna(False).iloc[0]) and not bool(row["pred"].fillna(False).iloc[0])
    return "label" if only_label else "pred"


def target_sql(kind: str, target: str = "z.target", prediction: str = "p") -> str:
    """SQL condition: ``target`` is the explained class of the ``predictions`` row ``prediction``.

    Takes one parameter, the run's class list (``VARCHAR[]``). ``kind``: 'pred' or 'label'.
    """
    if kind not in KINDS:
        raise ValueError(f"explained class {kind!r} is not one of {KINDS}")
    return f"{target} = list_position(?::VARCHAR[], {prediction}.{kind}) - 1"


def explained_target(q: Source, run: str, method: str, classes: Sequence[str], target: str = "z.target",
                     prediction: str = "p") -> tuple[str, tuple[list[str]]]:
    """The explained-class condition for ``run`` and ``method``: (SQL, its one parameter).

    E.g. ``sql, params = explained_target(q, run, "lrp", classes)`` then
    ``... JOIN zone_scores z ON ... WHERE {sql}`` with ``params`` at that position.
    """
    return target_sql(explained_kind(q, run, method), target, prediction), (list(classes),)
