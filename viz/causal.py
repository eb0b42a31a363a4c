"""Figures for causal attention: the mask drawn over a heatmap, induction targets marked on it, and
generation one row per step. The heatmaps are the core's (`viz.attention.attention_heatmap`)."""

import numpy as np
import plotly.graph_objects as go

from viz.attention import attention_heatmap
from viz.heatmap import index_labels


def causal_mask_path(t: int) -> str:
    """SVG path of the cells above the diagonal (key j > query i) of a T x T heatmap, as a staircase."""
    if t < 2:
        raise ValueError(f"a causal mask hides something only for T >= 2, got {t}")
    points = [(0.5, -0.5)]
    for k in range(t - 1):
        points += [(k + 0.5, k + 0.5), (k + 1.5, k + 0.5)]  # row k hides keys from k + 1 on
    points.append((t - 0.5, -0.5))
    return "M " + " L ".join(f"{x},{y}" for x, y in points) + " Z"


def overlay_causal_mask(
    fig: go.Figure, t: int, label: str = "causal mask: −∞ before softmax, 0 after"
) -> go.Figure:
    """Hatch the upper triangle of a T x T heatmap (in place), with a legend entry naming it."""
    if t < 2:
        return fig
    fig.add_shape(
        type="path",
        path=causal_mask_path(t),
        line={"color": "#e4572e", "width": 2},
        fillcolor="rgba(228, 87, 46, 0.18)",
    )
    marker = {"color": "rgba(228, 87, 46, 0.6)", "symbol": "square"}
    # an empty trace, so that the overlay gets a legend entry
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", marker=marker, name=label, showlegend=True))
    # the legend sits in the top-right corner, inside the masked triangle it describes
    fig.update_layout(
        legend={
            "x": 0.98,
            "y": 0.98,
            "xanchor": "right",
            "yanchor": "top",
            "bgcolor": "rgba(255,255,255,0.85)",
        }
    )
    return fig


def mark_targets(
    fig: go.Figure, targets: list[int | None], tokens: list[str], name: str = "induction target"
) -> go.Figure:
    """Circle cell (i, targets[i]) of a T x T attention heatmap drawn with `tokens` (in place).

    The points name the cells by the heatmap's own axis labels ("3 a"): its axes are categories.
    """
    if len(targets) != len(tokens):
        raise ValueError(f"{len(targets)} targets for {len(tokens)} tokens")
    labels = index_labels(tokens)
    cells = [(i, j) for i, j in enumerate(targets) if j is not None]
    if cells:
        fig.add_trace(
            go.Scatter(
                x=[labels[j] for _, j in cells],
                y=[labels[i] for i, _ in cells],
                mode="markers",
                marker={"symbol": "circle-open", "color": "#ff4fa3", "size": 7},
                name=name,
                hoverinfo="skip",
            )
        )
        n = len(tokens)  # markers would pad the axes' autorange: keep them on the cells
        fig.update_xaxes(range=[-0.5, n - 0.5], autorange=False)
        fig.update_yaxes(range=[n - 0.5, -0.5], autorange=False)
    return fig


def generation_rows(rows: list[np.ndarray], tokens: list[str], n_prompt: int, title: str = "") -> go.Figure:
    """One row per generated token: its query's attention over the tokens before it (NaN beyond).

    rows[s] has length n_prompt + s (the sequence when step s predicted token n_prompt + s); tokens holds
    the whole generated sequence. Stacked, the rows form the lower triangle of a causal attention matrix.
    """
    if not rows:
        raise ValueError("no generation steps to draw")
    width = n_prompt + len(rows) - 1
    for step, row in enumerate(rows):
        if len(row) != n_prompt + step:
            raise ValueError(f"step {step} should attend over {n_prompt + step} tokens, got {len(row)}")
    if len(tokens) < width + 1:
        raise ValueError(f"{len(tokens)} tokens cannot label {len(rows)} steps after a prompt of {n_prompt}")
    matrix = np.full((len(rows), width), np.nan)
    for step, row in enumerate(rows):
        matrix[step, : len(row)] = row
    queries = [f"→{tokens[n_prompt + s]} (from {tokens[n_prompt + s - 1]})" for s in range(len(rows))]
    fig = attention_heatmap(matrix, queries, tokens[:width], title=title)
    fig.update_yaxes(title="step: predicted token (from the query)")
    return fig
