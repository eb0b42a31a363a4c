"""Figures for the encoder-decoder: masked self-attention with its mask drawn, per-step rows, next-token bars.

Numpy arrays and labels in, Plotly figures out; every matrix is drawn by the heatmap core (`viz.heatmap`).
"""

import numpy as np
import plotly.graph_objects as go

from viz.attention import attention_heatmap
from viz.heatmap import MARGIN, heatmap, index_labels


def masked_attention_heatmap(probs: np.ndarray, mask: np.ndarray, query_labels: list[str],
                             key_labels: list[str], title: str = "") -> go.Figure:  # fmt: skip
    """probs (Tq, Tk) after softmax, mask (Tq, Tk) bool True = may attend.

    Allowed entries are coloured by weight; masked ones (the -inf before the softmax, exactly 0 after) are
    drawn as the core draws every mask: cells of the one mask grey, without hover.
    """
    probs = np.asarray(probs, dtype=np.float32)
    mask = np.asarray(mask, dtype=bool)
    if probs.shape != mask.shape:
        raise ValueError(f"probs {probs.shape} and mask {mask.shape} must have the same shape")
    return attention_heatmap(probs, query_labels, key_labels, title=title, mask=mask)


def head_rows_heatmap(rows: np.ndarray, key_labels: list[str], title: str = "") -> go.Figure:
    """rows (nh, Tk): one query's attention in every head (a row per head), e.g. one decoding step, each
    weight printed on its cell (2 decimals)."""
    rows = np.asarray(rows)
    if rows.ndim != 2:
        raise ValueError(f"expected (heads, keys), got shape {rows.shape}")
    return heatmap(
        rows, [f"head {h}" for h in range(rows.shape[0])], index_labels(key_labels), title=title,
        row_title="head", col_title="key (attended to)", zmin=0.0, zmax=1.0, value_name="weight",
        decimals=2, height=140 + 28 * rows.shape[0],
    )  # fmt: skip


def next_token_bar(probs: np.ndarray, labels: list[str], chosen: int, title: str = "") -> go.Figure:
    """probs (V,) of the next token, the greedy choice `chosen` highlighted."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 1 or len(probs) != len(labels):
        raise ValueError(f"expected {len(labels)} probabilities, got shape {probs.shape}")
    if not 0 <= chosen < len(labels):
        raise ValueError(f"chosen index {chosen} is outside 0..{len(labels) - 1}")
    colours = ["#1f77b4"] * len(labels)
    colours[chosen] = "#d62728"
    fig = go.Figure(
        go.Bar(
            x=list(range(len(labels))),
            y=probs,
            marker_color=colours,
            customdata=labels,
            hovertemplate="%{customdata}: p = %{y:.4f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=title,
        height=260,
        xaxis={"tickmode": "array", "tickvals": list(range(len(labels))), "ticktext": labels},
        yaxis={"title": "probability", "range": [0, 1]},
        margin=MARGIN,
    )
    return fig
