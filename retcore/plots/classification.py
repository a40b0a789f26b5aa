"""Classification figures: confusion matrix, per-class metrics with intervals,
reliability diagram, ROC curves and training curves.

The builders read the tidy frames of :mod:`retcore.stats` as they come
(``confusion_table``, ``per_class_metrics``, ``reliability_curve``,
``roc_curves`` / ``auroc_table``) and the database tables (``confusion``,
``metrics``, ``epochs``).
"""
from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from retcore.plots._util import first_column, ordered, require_columns, title_kw
from retcore.plots.theme import OKABE_ITO

__all__ = [
    "PER_CLASS_METRICS",
    "confusion_matrix_chart",
    "per_class_metric_chart",
    "per_class_long",
    "reliability_chart",
    "roc_chart",
    "training_curves_chart",
]

#: Metrics drawn by default from a ``retcore.stats.per_class_metrics`` frame.
PER_CLASS_METRICS: tuple[str, ...] = ("precision", "recall", "specificity", "f1")

_DIAGONAL = pd.DataFrame({"x": [0.0, 1.0], "y": [0.0, 1.0]})
_UNIT = alt.Scale(domain=[0, 1])


def _diagonal() -> alt.Chart:
    return alt.Chart(_DIAGONAL).mark_line(color="#888888", strokeDash=[4, 4], strokeWidth=1).encode(
        x=alt.X("x:Q", scale=_UNIT), y=alt.Y("y:Q", scale=_UNIT))


def confusion_matrix_chart(confusion: pd.DataFrame, *, classes: Sequence[str] | None = None,
                           title: str | None = None, cell: int = 64) -> alt.LayerChart:
    """Confusion-matrix heatmap coloured by the row-normalised share, labelled with
    the count and the share of the true class.

    Parameters
    ----------
    confusion:
        ``true_label`` / ``pred_label`` (the database's ``confusion`` table) or
        ``true`` / ``pred`` (``retcore.stats.confusion_table``), and ``count``.
        Missing pairs count as 0.
    classes:
        Axis order (default: order of first appearance).
    cell:
        Side of one cell in pixels.

    Returns
    -------
    LayerChart
        ``rect`` (colour = ``share``) + ``text`` (``count`` and ``share``).
    """
    true = first_column(confusion, ("true_label", "true"), "confusion")
    pred = first_column(confusion, ("pred_label", "pred"), "confusion")
    require_columns(confusion, ["count"], "confusion")
    order = ordered([*confusion[true], *confusion[pred]], classes)
    full = pd.MultiIndex.from_product([order, order], names=["true_label", "pred_label"])
    frame = (confusion.assign(true_label=confusion[true].astype(str), pred_label=confusion[pred].astype(str))
             .groupby(["true_label", "pred_label"])["count"].sum().reindex(full, fill_value=0).reset_index())
    totals = frame.groupby("true_label")["count"].transform("sum")
    frame["share"] = np.where(totals > 0, frame["count"] / totals.clip(lower=1), 0.0)
    frame["label"] = [f"{c}\n{s:.0%}" for c, s in zip(frame["count"], frame["share"])]
    size = cell * len(order)
    base = alt.Chart(frame).encode(
        x=alt.X("pred_label:N", sort=order, title="Predicted", axis=alt.Axis(labelAngle=-30, labelOverlap=False)),
        y=alt.Y("true_label:N", sort=order, title="True"),
        tooltip=["true_label:N", "pred_label:N", "count:Q", alt.Tooltip("share:Q", format=".1%")],
    )
    heat = base.mark_rect().encode(color=alt.Color("share:Q", title="Share of true class",
                                                   scale=alt.Scale(scheme="blues", domain=[0, 1])))
    text = base.mark_text(lineBreak="\n", fontSize=11).encode(
        text="label:N", color=alt.condition("datum.share > 0.5", alt.value("white"), alt.value("black")))
    return (heat + text).properties(width=size, height=size, **title_kw(title))


def per_class_long(frame: pd.DataFrame, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Per-class metrics in long format: ``class_name``, ``metric``, ``value``, ``low``, ``high``.

    Accepts the wide ``retcore.stats.per_class_metrics`` frame (``class``, ``<m>``,
    ``<m>_low``, ``<m>_high``; default metrics :data:`PER_CLASS_METRICS`) or a long one
    such as the database's ``metrics`` rows (``class_name``, ``metric``, ``value``,
    optional ``low`` / ``high``); rows of other metrics are dropped when ``metrics`` is given.
    """
    cls = first_column(frame, ("class_name", "class"), "per-class metrics")
    if "metric" in frame.columns:
        require_columns(frame, ["value"], "per-class metrics")
        keep = [c for c in ("low", "high", "n") if c in frame.columns]
        out = frame[[cls, "metric", "value", *keep]].rename(columns={cls: "class_name"})
        out = out[out["class_name"].astype(str) != ""]
        return out[out["metric"].isin(metrics)] if metrics is not None else out.reset_index(drop=True)
    names = [m for m in (metrics or PER_CLASS_METRICS) if m in frame.columns]
    if not names:
        raise ValueError(f"per-class metrics has none of the metrics {list(metrics or PER_CLASS_METRICS)}")
    parts = []
    for m in names:
        part = pd.DataFrame({"class_name": frame[cls].astype(str), "metric": m, "value": frame[m]})
        if {f"{m}_low", f"{m}_high"} <= set(frame.columns):
            part["low"], part["high"] = frame[f"{m}_low"], frame[f"{m}_high"]
        if "support" in frame.columns:
            part["n"] = frame["support"]
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def per_class_metric_chart(metrics: pd.DataFrame, *, metrics_order: Sequence[str] | None = None,
                           classes: Sequence[str] | None = None, title: str | None = None,
                           y_title: str = "Value") -> alt.LayerChart:
    """Grouped bars of per-class metrics with interval error bars.

    Parameters
    ----------
    metrics:
        ``retcore.stats.per_class_metrics`` (wide, Wilson intervals for precision,
        recall and specificity, bootstrap for F1) or a long frame (see :func:`per_class_long`).
    metrics_order:
        Metrics to draw, in order (default: those of :data:`PER_CLASS_METRICS` present).

    Returns
    -------
    LayerChart
        ``bar`` (x = class, xOffset / colour = metric) + ``errorbar`` (``low`` .. ``high``)
        where intervals are given.
    """
    long = per_class_long(metrics, metrics_order)
    class_order = ordered(long["class_name"], classes)
    metric_order = ordered(long["metric"], metrics_order)
    tooltip = ["class_name:N", "metric:N", alt.Tooltip("value:Q", format=".3f")]
    has_ci = {"low", "high"} <= set(long.columns)
    if has_ci:
        tooltip += [alt.Tooltip("low:Q", format=".3f"), alt.Tooltip("high:Q", format=".3f")]
    if "n" in long.columns:
        tooltip.append("n:Q")
    base = alt.Chart(long).encode(
        x=alt.X("class_name:N", sort=class_order, title=None, axis=alt.Axis(labelAngle=-30, labelOverlap=False)),
        xOffset=alt.XOffset("metric:N", sort=metric_order),
        tooltip=tooltip,
    )
    bars = base.mark_bar().encode(
        y=alt.Y("value:Q", title=y_title, scale=_UNIT),
        color=alt.Color("metric:N", sort=metric_order, title="Metric"),
    )
    layers: list[alt.Chart] = [bars]
    if has_ci:
        layers.append(base.mark_errorbar(ticks=True, color="#222222").encode(
            y=alt.Y("low:Q", title=y_title, scale=_UNIT), y2="high:Q"))
    width = max(240, 18 * len(class_order) * len(metric_order))
    return alt.layer(*layers).properties(width=width, height=240, **title_kw(title))


def reliability_chart(bins: pd.DataFrame, *, title: str | None = None) -> alt.LayerChart:
    """Reliability diagram: accuracy against mean confidence per bin, with the
    diagonal of perfect calibration.

    Parameters
    ----------
    bins:
        ``retcore.stats.reliability_curve``: ``mean_confidence``, ``accuracy``,
        ``count`` and, optionally, the Wilson bounds ``accuracy_low`` /
        ``accuracy_high``. Empty bins are left out.

    Returns
    -------
    LayerChart
        Dashed diagonal ``line`` + ``errorbar`` (if intervals) + ``line`` + ``point`` sized by count.
    """
    require_columns(bins, ["mean_confidence", "accuracy", "count"], "bins")
    data = bins[bins["count"] > 0]
    tooltip = [alt.Tooltip("mean_confidence:Q", title="confidence", format=".3f"),
               alt.Tooltip("accuracy:Q", format=".3f"), "count:Q"]
    x = alt.X("mean_confidence:Q", title="Mean confidence", scale=_UNIT)
    y = alt.Y("accuracy:Q", title="Accuracy", scale=_UNIT)
    base = alt.Chart(data).encode(x=x)
    layers: list[alt.Chart] = [_diagonal()]
    if {"accuracy_low", "accuracy_high"} <= set(data.columns):
        layers.append(base.mark_errorbar(ticks=True, color=OKABE_ITO[0]).encode(
            y=alt.Y("accuracy_low:Q", title="Accuracy", scale=_UNIT), y2="accuracy_high:Q"))
    layers.append(base.mark_line(color=OKABE_ITO[0]).encode(y=y))
    layers.append(base.mark_point(filled=True, color=OKABE_ITO[0], opacity=0.9).encode(
        y=y, size=alt.Size("count:Q", title="Images", scale=alt.Scale(range=[30, 300], zero=False)),
        tooltip=tooltip))
    return alt.layer(*layers).properties(width=280, height=280, **title_kw(title))


def roc_chart(roc: pd.DataFrame, *, auroc: pd.DataFrame | None = None, classes: Sequence[str] | None = None,
              title: str | None = None) -> alt.LayerChart:
    """One-vs-rest ROC curve per class with the chance diagonal.

    Parameters
    ----------
    roc:
        ``retcore.stats.roc_curves``: ``class`` (or ``class_name``), ``fpr``, ``tpr``,
        in curve order.
    auroc:
        Optional ``retcore.stats.auroc_table`` (``class``, ``auroc``[, ``low``, ``high``]):
        each class's AUROC (and interval) is written in the legend.

    Returns
    -------
    LayerChart
        Dashed diagonal ``line`` + one ``line`` per class (``order`` = position along the curve).
    """
    cls = first_column(roc, ("class_name", "class"), "roc")
    require_columns(roc, ["fpr", "tpr"], "roc")
    frame = roc.assign(class_name=roc[cls].astype(str))
    frame["step"] = frame.groupby("class_name").cumcount()
    names = ordered(frame["class_name"], classes)
    legend = {n: n for n in names}
    if auroc is not None and not auroc.empty:
        a_cls = first_column(auroc, ("class_name", "class"), "auroc")
        for row in auroc.to_dict("records"):
            name, value = str(row[a_cls]), row.get("auroc")
            if name in legend and value is not None and pd.notna(value):
                ci = (f" [{row['low']:.2f}, {row['high']:.2f}]"
                      if pd.notna(row.get("low", np.nan)) and pd.notna(row.get("high", np.nan)) else "")
                legend[name] = f"{name} (AUC {value:.2f}{ci})"
    frame["curve"] = frame["class_name"].map(legend)
    curves = alt.Chart(frame).mark_line(strokeWidth=2).encode(
        x=alt.X("fpr:Q", title="False positive rate", scale=_UNIT),
        y=alt.Y("tpr:Q", title="True positive rate", scale=_UNIT),
        color=alt.Color("curve:N", sort=[legend[n] for n in names], title="Class",
                        legend=alt.Legend(labelLimit=320)),
        order="step:Q",
        tooltip=["class_name:N", alt.Tooltip("fpr:Q", format=".3f"), alt.Tooltip("tpr:Q", format=".3f")],
    )
    return alt.layer(_diagonal(), curves).properties(width=280, height=280, **title_kw(title))


def training_curves_chart(epochs: pd.DataFrame, *, losses: Sequence[str] | None = None,
                          scores: Sequence[str] | None = None, title: str | None = None) -> alt.HConcatChart:
    """Loss and validation-metric curves per epoch, with the best epoch marked.

    Parameters
    ----------
    epochs:
        One row per epoch: ``epoch``, numeric series (the ``epochs`` table:
        ``train_loss``, ``val_loss``, ``val_accuracy``, ``val_macro_f1``, ...)
        and, optionally, ``is_best``.
    losses, scores:
        Columns for the left (loss) and right (score) panels; default: columns
        ending in ``loss``, and the other ``val_*`` columns.

    Returns
    -------
    HConcatChart
        Two layered panels: ``line`` with points per series, after a dashed ``rule``
        at the best epoch.
    """
    require_columns(epochs, ["epoch"], "epochs")
    numeric = [c for c in epochs.columns if c != "epoch" and pd.api.types.is_numeric_dtype(epochs[c])
               and not pd.api.types.is_bool_dtype(epochs[c])]
    losses = list(losses) if losses is not None else [c for c in numeric if c.endswith("loss")]
    scores = list(scores) if scores is not None else [c for c in numeric if c.startswith("val_")
                                                       and c not in losses]
    best = (epochs.loc[epochs["is_best"].astype("boolean").fillna(False).to_numpy(bool), ["epoch"]]
            if "is_best" in epochs else None)
    x = alt.X("epoch:Q", title="Epoch", axis=alt.Axis(tickMinStep=1, format="d"))

    def panel(columns: list[str], y_title: str) -> alt.LayerChart:
        long = epochs.melt("epoch", value_vars=columns, var_name="series", value_name="value").dropna()
        lines = alt.Chart(long).mark_line(point=True).encode(
            x=x,
            y=alt.Y("value:Q", title=y_title, scale=alt.Scale(zero=False)),
            color=alt.Color("series:N", sort=columns, title=y_title),
            tooltip=["epoch:Q", "series:N", alt.Tooltip("value:Q", format=".4f")],
        )
        layers: list[alt.Chart] = [lines]
        if best is not None and not best.empty:
            layers.insert(0, alt.Chart(best).mark_rule(color="#888888", strokeDash=[4, 4]).encode(x=x))
        return alt.layer(*layers).properties(width=280, height=220)

    panels = [panel(cols, name) for cols, name in ((losses, "Loss"), (scores, "Validation score")) if cols]
    if not panels:
        raise ValueError("epochs has no numeric series to plot")
    return alt.hconcat(*panels).resolve_scale(color="independent").properties(**title_kw(title))
