"""The detections at a threshold, every query in a table, and the strip of what each detection looks at.
A box, a row, a tile or the select box chooses the query the cross-attention section shows."""

import numpy as np
import pandas as pd
import streamlit as st

from models.detr.api import DetrResult
from models.detr.inspect import cell_extent, detections, is_object, scores_labels
from ui.detr.common import CROSS, DETECTIONS, query_labels, rerun_shown, show_query
from ui.export import chart
from ui.widgets import clicked
from viz.detr import Background, detections_figure, map_grid

MAX_STRIP = 12  # detections drawn side by side at most


def pick_detection() -> None:
    """on_select of the detections figure: every point of a box's outline carries its query."""
    data = clicked("dp_detections")
    if data:
        show_query(data[0])


def pick_query_row() -> None:
    """on_select of the table of queries, whose row r is query r."""
    rows = st.session_state.dp_query_table.selection.rows
    if rows:
        show_query(rows[0])


def pick_strip_tile() -> None:
    """on_select of the strip: a tile's customdata is [row, query, largest weight]."""
    data = clicked("dp_strip")
    if data:
        show_query(data[1])


def redraw_query() -> None:
    """on_change of the query select box: the cross-attention section shows the new query too."""
    rerun_shown(DETECTIONS, CROSS)


@st.fragment(key=DETECTIONS)
def detections_section(result: DetrResult, bg: Background) -> None:
    st.slider("Score threshold", 0.0, 1.0, step=0.01, key="dp_threshold", persist_state="session")
    scores, labels = scores_labels(result)
    shown = [int(q) for q in detections(result, st.session_state.dp_threshold)]
    query = st.session_state.dp_query
    fig = detections_figure(
        bg,
        result.layer_boxes[-1, shown],
        [f"q{q} {result.class_names[labels[q]]} {scores[q]:.2f}" for q in shown],
        [int(labels[q]) for q in shown],
        selected=shown.index(query) if query in shown else None,
        title=f"{len(shown)} detection{'' if len(shown) == 1 else 's'} at score ≥ "
        f"{st.session_state.dp_threshold:.2f} (no NMS, S17)",
        ids=shown,
    )
    left, right = st.columns([3, 2])
    with left:
        chart(fig, key="dp_detections", on_select=pick_detection, selection_mode="points")
        if not shown:
            st.info("No query passes the threshold; lower it, or pick any query from the list.")
    with right:
        query_table(result)
    if shown:
        strip(result, bg, shown)


def query_table(result: DetrResult) -> None:
    scores, labels = scores_labels(result)
    n = len(scores)
    real = is_object(result)
    st.markdown(f"**All {n} queries** (grey: the query predicts “no object”)")
    table = pd.DataFrame(
        {
            "query": np.arange(n),
            "prediction": [result.class_names[labels[q]] if real[q] else "no object" for q in range(n)],
            "score": scores,
            "p(no object)": result.layer_probs[-1, :, -1],
        }
    )
    styled = table.style.apply(
        lambda row: ["" if real[row.name] else "color: #aaa"] * len(row), axis=1
    ).format({"score": "{:.3f}", "p(no object)": "{:.3f}"})
    st.dataframe(
        styled,
        hide_index=True,
        height=330,
        key="dp_query_table",
        on_select=pick_query_row,
        selection_mode="single-row",
    )
    labels_text = query_labels(result)
    st.selectbox(
        "Query to inspect",
        range(n),
        key="dp_query",
        persist_state="session",
        bind="query-params",
        format_func=lambda q: labels_text[q],
        on_change=redraw_query,
    )


def strip(result: DetrResult, bg: Background, shown: list[int]) -> None:
    """The last layer's head-mean map of the best MAX_STRIP detections, side by side."""
    _, labels = scores_labels(result)
    queries = shown[:MAX_STRIP]
    maps = result.decoder_cross[-1][:, queries].mean(0)  # (D, h, w) last layer, mean of heads
    fig = map_grid(
        bg,
        maps[None],
        ["last layer"],
        [f"q{q} {result.class_names[labels[q]]}" for q in queries],
        cell_extent(result),
        st.session_state.dp_opacity,
        title="What each detection looks at",
        tile_width=min(150, 1000 // len(queries)),
        col_ids=queries,
    )
    chart(fig, key="dp_strip", width="content", on_select=pick_strip_tile, selection_mode="points")
    best = f", the best {MAX_STRIP}" if len(shown) > MAX_STRIP else ""
    st.caption(f"Last decoder layer, mean of heads{best}; click one to inspect it below.")
