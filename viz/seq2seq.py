"""Figures for the encoder-decoder: masked self-attention with its mask drawn, per-step rows, next-token bars.

Numpy arrays and labels in, Plotly figures out; heatmaps are `viz.attention.attention_heatmap`.
"""

import numpy as np
import plotly.graph_objects as go

from viz.attention import attention_heatmap

MASK_GREY = "#b0b0b0"


def masked_attention_heatmap(probs: np.ndarray, mask: np.ndarray, query_labels: list[str],
                             key_labels: list[str], title: str = "") -> go.Figure:  # fmt: skip
    """probs (Tq, Tk) after softmax, mask (Tq, Tk) bool True = may attend.

    Allowed entries are coloured by weight; masked ones are drawn as grey cells (the -inf before the
    softmax, exactly 0 after), as a second trace, so that the mask itself is visible.
    """
    probs = np.asarray(probs, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    if probs.shape != mask.shape:
        raise ValueError(f"probs {probs.shape} and mask {mask.shape} must have the same shape")
    fig = attention_heatmap(np.where(mask, probs, np.nan), query_labels, key_labels, title=title)
    fig.add_trace(
        go.Heatmap(
            z=np.where(mask, np.nan, 1.0),
            colorscale=[[0, MASK_GREY], [1, MASK_GREY]],
            showscale=False,
            hoverongaps=False,
            hovertemplate="masked: -inf before the softmax, weight 0 after<extra></extra>",
        )
    )
    return fig


def head_rows_heatmap(rows: np.ndarray, key_labels: list[str], title: str = "") -> go.Figure:
    """rows (nh, Tk): one query's attention in every head (a row per head), e.g. one decoding step."""
    rows = np.asarray(rows)
    if rows.ndim != 2:
        raise ValueError(f"expected (heads, keys), got shape {rows.shape}")
    fig = attention_heatmap(
        rows, [f"head {h}" for h in range(rows.shape[0])], key_labels, title=title, zmax=1.0
    )
    fig.update_layout(height=140 + 28 * rows.shape[0], yaxis_title="head")
    return fig


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
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
    )
    return fig
