"""Figures of RoPE on a real model's queries and keys: channel pairs turned, scores by offset, decay.

Every function takes numpy arrays and returns a `go.Figure`; none knows a model (`models.rope_probe`
computes what they draw).
"""

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from viz.heatmap import MARGIN

TITLED = MARGIN | {"t": 70}
COLOURS = {"q": "#1565c0", "k": "#c62828"}


def pair_rotation(before: dict, after: dict, pair_ids: list[int], angles: dict, title: str = "") -> go.Figure:
    """before, after: {"q": (P, 2), "k": (P, 2)} the chosen pairs of one query and one key, before and
    after RoPE; angles {"q": (P,), "k": (P,)} radians each pair turned. One panel per pair: each vector an
    arrow from the origin, dotted before, solid after. Traces are named "q before", "q after", … with one
    point per panel (x, y), so the drawn values can be read back."""
    for name in ("q", "k"):
        for part in (before, after):
            if np.shape(part[name]) != (len(pair_ids), 2):
                raise ValueError(f"expected ({len(pair_ids)}, 2) pairs of {name}, got {np.shape(part[name])}")
    fig = make_subplots(
        rows=1,
        cols=len(pair_ids),
        horizontal_spacing=0.04,
        subplot_titles=[
            f"pair {c}: q turned {angles['q'][i]:.2f} rad, k {angles['k'][i]:.2f}"
            for i, c in enumerate(pair_ids)
        ],
    )
    for col, c in enumerate(pair_ids, start=1):
        i = col - 1
        radius = max(float(np.hypot(*before[n][i])) for n in ("q", "k")) or 1.0
        for name in ("q", "k"):
            for stage, part, dash in (("before", before, "dot"), ("after", after, "solid")):
                x, y = (float(v) for v in part[name][i])
                fig.add_trace(
                    go.Scatter(
                        x=[0.0, x],
                        y=[0.0, y],
                        mode="lines+markers",
                        name=f"{name} {stage}",
                        legendgroup=f"{name} {stage}",
                        showlegend=col == 1,
                        line={"color": COLOURS[name], "dash": dash, "width": 2},
                        marker={"size": [0, 8], "symbol": "circle" if stage == "after" else "circle-open"},
                        hovertemplate=f"pair {c}, {name} {stage}<br>(%{{x:.4f}}, %{{y:.4f}})<extra></extra>",
                    ),
                    row=1,
                    col=col,
                )
        lim = 1.15 * radius
        fig.update_xaxes(range=[-lim, lim], zeroline=True, row=1, col=col)
        fig.update_yaxes(range=[-lim, lim], scaleanchor=f"x{col if col > 1 else ''}", row=1, col=col)
    fig.update_layout(title=title, height=340, margin=TITLED, legend={"orientation": "h", "y": -0.15})
    return fig


def drawn_pairs(fig: go.Figure, name: str) -> np.ndarray:
    """(P, 2): the points of the traces called `name` ("q after", …), one per panel, as drawn."""
    return np.array([[trace.x[-1], trace.y[-1]] for trace in fig.data if trace.name == name])


def offset_scores(offsets, scores, starts: list[int], title: str = "") -> go.Figure:
    """scores (S, D): q·k/√dh at offset Δ (query Δ tokens after the key) with the key at each start s."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (len(starts), len(offsets)):
        raise ValueError(f"expected scores of shape ({len(starts)}, {len(offsets)}), got {scores.shape}")
    fig = go.Figure()
    for s, row, dash in zip(starts, scores, ("solid", "dash", "dot", "dashdot"), strict=False):
        fig.add_trace(
            go.Scatter(
                x=offsets,
                y=row,
                mode="lines",
                name=f"key at {s}, query at {s} + Δ",
                line={"dash": dash},
                hovertemplate=f"key at {s}<br>Δ %{{x}}<br>score %{{y:.5f}}<extra></extra>",
            )
        )
    fig.update_layout(
        title=title,
        height=360,
        margin=TITLED,
        xaxis_title="offset Δ = query position − key position",
        yaxis_title="q·k / √d_head",
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def decay_and_attention(distances, bound, attention, title: str = "", attention_name: str = "") -> go.Figure:
    """Left: RoPE's decay bound against distance (from the model's θ); right: the model's mean attention
    weight at each distance (log scale)."""
    distances = np.asarray(distances)
    bound, attention = np.asarray(bound, dtype=np.float64), np.asarray(attention, dtype=np.float64)
    if bound.shape != distances.shape or attention.ndim != 1:
        raise ValueError(f"bound {bound.shape} must match distances {distances.shape}; attention must be 1-D")
    fig = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.1,
        subplot_titles=["RoPE's bound on |q·k| (RoFormer §3.4.3)", attention_name or "mean attention"],
    )
    fig.add_trace(
        go.Scatter(
            x=distances, y=bound, mode="lines", name="bound",
            hovertemplate="distance %{x}<br>(1/(r/2)) Σ|S_j| %{y:.3f}<extra></extra>",
        ),
        row=1, col=1,
    )  # fmt: skip
    fig.add_trace(
        go.Scatter(
            x=np.arange(len(attention)), y=np.where(attention > 0, attention, np.nan), mode="lines",
            name="attention", hovertemplate="distance %{x}<br>mean weight %{y:.2e}<extra></extra>",
        ),
        row=1, col=2,
    )  # fmt: skip
    fig.update_xaxes(title="relative distance (tokens)", type="log", row=1, col=1)
    fig.update_xaxes(title="distance query − key (tokens)", type="log", row=1, col=2)
    fig.update_yaxes(title="relative upper bound", row=1, col=1)
    fig.update_yaxes(title="mean weight", type="log", exponentformat="power", row=1, col=2)
    fig.update_layout(title=title, height=380, margin=TITLED, showlegend=False)
    return fig
