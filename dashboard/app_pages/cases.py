"""Cases: galleries of true positives, false negatives and false positives of one class,
with relevance overlays; click through to one case with all its maps."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import images, queries
from dashboard.filters import current
from dashboard.ui import require

KIND_TITLES = {"TP": "True positives", "FN": "False negatives (missed)", "FP": "False positives"}

st.title("Cases")
f = current()
require(f.run, "No run with predictions yet: run `retcore predict --run RUN --split test`.")
require(f.split, f"Run {f.run} has no predictions yet: run `retcore predict --run {f.run} --split test`.")
classes = list(f.classes)
size = queries.run_img_size(f.run)


def _landmarks(image_ids: list[str]) -> dict[str, dict]:
    lm = queries.landmarks_for(image_ids)
    return {} if lm.empty else {r["image_id"]: r for r in lm.to_dict("records")}


def _grid(row: pd.Series) -> np.ndarray:
    return np.asarray(row["grid"], dtype=np.float32).reshape(int(row["grid_h"]), int(row["grid_w"]))


def _number(value) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _controls() -> dict:
    with st.expander("Display", expanded=False):
        c1, c2, c3, c4 = st.columns(4)
        cmap = c1.selectbox("Colour map", list(images.COLORMAPS), key="cases-cmap")
        alpha = c2.slider("Opacity", 0.0, 1.0, 0.55, 0.05, key="cases-alpha")
        zones = c3.checkbox("Zone outlines", True, key="cases-zones")
        disc = c4.checkbox("Optic-disc box", True, key="cases-disc")
    return {"cmap": cmap, "alpha": alpha, "zones": zones, "disc": disc}


# ---------------------------------------------------------------------------- one case


def _detail(image_id: str, display: dict) -> None:
    info = queries.case_detail(f.run, image_id)
    if info["image"].empty or info["prediction"].empty:
        st.warning(f"Image {image_id} has no prediction in run {f.run}.")
        return
    img, pred = info["image"].iloc[0], info["prediction"].iloc[0]
    lm = info["landmarks"].iloc[0].to_dict() if not info["landmarks"].empty else None
    verdict = "correct" if pred["correct"] else "incorrect"
    st.subheader(f"{img['label']} → {pred['pred']} ({verdict}, confidence {pred['confidence']:.3f})")
    st.caption(f"image `{image_id}` · `{img['path']}` · eye {img['eye'] or 'unknown'} · split {pred['split']}")
    maps = info["maps"]
    out_dir = queries.run_out_dir(f.run)
    tiles, captions = [images.render_case(img["path"], lm, None, size, zones=display["zones"], disc=display["disc"])], \
        ["photo (model-input frame)"]
    for _, m in maps.iterrows():
        full, problem = images.read_heatmap(m["heatmap_path"], m["heatmap_sha256"], out_dir)
        grid, problem = images.choose_map(full, problem, _grid(m), _number(m["positive_sum"]))
        notes = images.map_notes(m["method"], m["target_label"], grid, positive_sum=_number(m["positive_sum"]),
                                 file_problem=problem)
        tiles.append(images.render_case(img["path"], lm, grid, size, cmap=display["cmap"], alpha=display["alpha"],
                                        zones=display["zones"], disc=display["disc"], label=images.tile_label(notes)))
        captions.append(" · ".join([f"{m['method']} · target {m['target_label']} ({m['target_kind']})"
                                    + ("" if problem is None else " · token grid"), *(n.text for n in notes)]))
    if images.load_photo(img["path"]) is None:
        st.warning("The photo is not readable at its recorded path (moved, or outside the dataset roots); "
                   "maps are shown without it.")
    if maps.empty:
        st.info(f"No explanations for this image: `retcore explain --run {f.run} --split {pred['split']}`.")
    cols = st.columns(min(4, len(tiles)))
    for i, (tile, cap) in enumerate(zip(tiles, captions)):
        cols[i % len(cols)].image(tile, caption=cap, width="stretch")

    left, right = st.columns(2)
    with left:
        st.markdown("**Class probabilities**")
        probs = pd.DataFrame({"class": classes[:len(pred["probs"])], "probability": list(pred["probs"])})
        st.dataframe(probs, hide_index=True, width="stretch",
                     column_config={"probability": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0,
                                                                                   format="%.3f")})
        if not info["quality"].empty:
            st.markdown(f"**Image quality** (grade {lm.get('quality_grade', '–') if lm else '–'})")
            st.dataframe(info["quality"], hide_index=True, width="stretch")
    with right:
        if not info["zones"].empty:
            st.markdown("**Zone scores** (mass share / area share; 1 = no preference)")
            z = info["zones"].pivot_table(index=["zone_set", "zone"], columns="method", values="score").round(3)
            st.dataframe(z, width="stretch")
        if not maps.empty:
            st.markdown("**Map statistics**")
            st.dataframe(maps[["method", "target_label", "positive_sum", "entropy", "gini", "peak_zone"]],
                         hide_index=True, width="stretch")


# ----------------------------------------------------------------------------- gallery


def _gallery(cls: str, display: dict) -> None:
    c1, c2, c3 = st.columns([2, 3, 1])
    order = c1.selectbox("Order", list(queries.ORDERS), key="cases-order",
                         help="; ".join(f"{k}: {v[1]}" for k, v in queries.ORDERS.items()))
    methods = list(f.methods)
    # keyed on the sidebar method: changing it starts the selection again from that method (a kept
    # selection showed one method's maps under another method's center / drift numbers)
    chosen = c2.multiselect("Methods side by side", methods, default=[f.method] if f.method else [],
                            key=f"cases-methods-{f.method}", disabled=not methods,
                            help="Maps drawn per image. The center and drift numbers under each image are those "
                                 "of the sidebar's method.")
    per_kind = c3.number_input("Per group", 2, 24, 8, 2, key="cases-n")
    if not methods:
        st.info(f"Run {f.run} has no explanations yet: photos only. "
                f"Add maps with `retcore explain --run {f.run} --split {f.split}`.")
    if order in ("lowest center score", "highest drift") and not methods:
        st.caption("Without explanations this order falls back to the image id.")
    st.caption("Drift = total-variation distance between the image's `thirds` mass shares (center / left / right) "
               "and the mean shares of its true class. Outlines: FOV circle, central disk of the `thirds` zones "
               "with the left/right divide (cyan), optic-disc box of the `anatomy` zone (green).")
    for kind, tab in zip(queries.KINDS, st.tabs([KIND_TITLES[k] for k in queries.KINDS])):
        with tab:
            rows = queries.case_list(f.run, f.split, f.method, cls, kind, order, classes, limit=int(per_kind))
            if rows.empty:
                note = {"TP": f"No image of class {cls} was predicted correctly.",
                        "FN": f"No {cls} image was missed: class {cls} has no false negatives.",
                        "FP": f"No other class was predicted as {cls}: no false positives."}[kind]
                if kind == "TP":
                    st.info(note)
                else:
                    st.success(note)
                continue
            st.caption(f"{int(rows['n_total'].iloc[0])} {KIND_TITLES[kind].lower()} of {cls}; "
                       f"showing {len(rows)}, {queries.ORDERS[order][1]}.")
            ids = rows["image_id"].tolist()
            lms = _landmarks(ids)
            per_method = {m: queries.image_grids(f.run, ids, m, classes) for m in chosen}
            cols = st.columns(4 if len(chosen) <= 1 else 2)
            for i, row in enumerate(rows.itertuples(index=False)):
                tiles, blank = [], []
                for m in chosen or [None]:
                    grid, label = None, None
                    if m is not None:
                        g = per_method[m]
                        g = g[g["image_id"] == row.image_id]
                        if not g.empty:
                            grid = _grid(g.iloc[0])
                            label = images.tile_label(images.map_notes(
                                m, g.iloc[0]["target_label"], grid, positive_sum=_number(g.iloc[0]["positive_sum"])))
                            if label:
                                blank.append(f"{m}: {label}")
                    tiles.append(images.render_case(row.path, lms.get(row.image_id), grid, size,
                                                    cmap=display["cmap"], alpha=display["alpha"],
                                                    zones=display["zones"], disc=display["disc"], size=240,
                                                    label=label))
                col = cols[i % len(cols)]
                parts = [f"**{row.label} → {row.pred}**", f"conf {row.confidence:.2f}", *blank]
                whose = f" ({f.method})" if chosen != [f.method] else ""
                if pd.notna(row.center):
                    parts.append(f"center {row.center:.2f}{whose}")
                if pd.notna(row.drift):
                    parts.append(f"drift {row.drift:.2f}{whose}")
                col.image(np.hstack(tiles) if len(tiles) > 1 else tiles[0], width="stretch",
                          caption=" · ".join(chosen) if chosen else None)
                col.markdown(" · ".join(parts))
                if col.button("Open", key=f"open-{kind}-{row.image_id}", icon=":material/open_in_full:"):
                    st.query_params["case"] = row.image_id
                    st.rerun()


display = _controls()
case = st.query_params.get("case")
if case:
    if st.button("Back to the gallery", icon=":material/arrow_back:"):
        del st.query_params["case"]
        st.rerun()
    _detail(case, display)
else:
    cls = f.cls
    if cls is None:
        require(classes, "The run has no classes recorded.")
        cls = st.selectbox("Class", classes, key="cases-class",
                           help="Pick a class here, or set the class filter in the sidebar.")
    _gallery(cls, display)
