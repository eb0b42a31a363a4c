"""Figures of the norms and residual panels: which axes layer norm and batch norm average over, on
real activations, and token vectors through a deep attention stack with and without the skip.

Every function takes numpy arrays plus labels, checks their shapes and returns a `go.Figure`.
"""

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from viz.heatmap import axis
from viz.receptive import MARGIN, colour, vector


def norm_axes_figure(before, after_layer, after_batch, token_labels, row: int, channel: int) -> go.Figure:
    """Three (N, d) activations (real tokens x channels): before, after layer norm, after batch norm.

    The row `row` outlined is what layer norm averages over (one token, all channels); the column
    `channel` is what batch norm averages over (one channel, every token of the batch).
    """
    before, after_layer, after_batch = (
        np.asarray(a, dtype=np.float64) for a in (before, after_layer, after_batch)
    )
    if before.ndim != 2 or before.shape != after_layer.shape or before.shape != after_batch.shape:
        raise ValueError(
            f"the three activations must share one (N, d) shape: {before.shape}, {after_layer.shape}"
        )
    n, d = before.shape
    if len(token_labels) != n:
        raise ValueError(f"{len(token_labels)} token labels for {n} rows")
    fig = make_subplots(
        rows=1,
        cols=3,
        shared_yaxes=True,
        horizontal_spacing=0.02,
        subplot_titles=("activations", "layer norm: each row alone", "batch norm: each column alone"),
    )
    labels = np.broadcast_to(np.asarray(token_labels, dtype=object)[:, None], (n, d))
    for col, z in enumerate((before, after_layer, after_batch), start=1):
        lim = float(np.percentile(np.abs(z), 99)) or 1.0
        fig.add_trace(
            go.Heatmap(
                z=z,
                customdata=labels,
                colorscale="RdBu",
                zmid=0,
                zmin=-lim,
                zmax=lim,
                showscale=False,
                hovertemplate="token %{y}: %{customdata}<br>channel %{x}<br>%{z:.3f}<extra></extra>",
            ),
            row=1,
            col=col,
        )
        fig.add_shape(
            type="rect",
            x0=-0.5,
            x1=d - 0.5,
            y0=row - 0.5,
            y1=row + 0.5,
            line={"color": "black"},
            row=1,
            col=col,
        )
        fig.add_shape(
            type="rect",
            x0=channel - 0.5,
            x1=channel + 0.5,
            y0=-0.5,
            y1=n - 0.5,
            line={"color": "green"},
            row=1,
            col=col,
        )
    fig.update_yaxes(autorange="reversed", **axis(token_labels, None), row=1, col=1)
    fig.update_xaxes(title="channel")
    fig.update_layout(height=max(360, 60 + 12 * n), margin=MARGIN)
    return fig


def norm_stats_figure(stats: dict) -> go.Figure:
    """stats: label -> dict of token_mean, token_std (N,) and channel_mean, channel_std (d,)."""
    fig = make_subplots(
        rows=2,
        cols=2,
        subplot_titles=(
            "mean of each token",
            "std of each token",
            "mean of each channel",
            "std of each channel",
        ),
        vertical_spacing=0.2,
    )
    places = {"token_mean": (1, 1), "token_std": (1, 2), "channel_mean": (2, 1), "channel_std": (2, 2)}
    for i, (label, values) in enumerate(stats.items()):
        for key, (r, c) in places.items():
            y = vector(values[key], None, f"{label} {key}")
            fig.add_trace(
                go.Scatter(
                    x=np.arange(y.size),
                    y=y,
                    mode="lines",
                    name=label,
                    legendgroup=label,
                    showlegend=key == "token_mean",
                    line={"color": colour(i), "width": 1.5},
                ),
                row=r,
                col=c,
            )
    fig.update_xaxes(title="token", row=1)
    fig.update_xaxes(title="channel", row=2)
    fig.update_layout(height=520, margin=MARGIN)
    return fig


def residual_figure(traces: dict) -> go.Figure:
    """traces: label -> dict of cosine, effective_rank, grad_norm, each (L+1,) indexed by layer."""
    fig = make_subplots(
        rows=1,
        cols=3,
        subplot_titles=(
            "cosine between tokens",
            "effective rank",
            "gradient norm ‖∂L/∂X_l‖",
        ),
        horizontal_spacing=0.09,
    )
    for i, (label, trace) in enumerate(traces.items()):
        for col, key in enumerate(("cosine", "effective_rank", "grad_norm"), start=1):
            y = vector(trace[key], None, f"{label} {key}")
            fig.add_trace(
                go.Scatter(
                    x=np.arange(y.size),
                    y=y,
                    mode="lines+markers",
                    name=label,
                    legendgroup=label,
                    showlegend=col == 1,
                    line={"color": colour(i)},
                ),
                row=1,
                col=col,
            )
    fig.update_xaxes(title="layer (0 = input)")
    fig.update_yaxes(type="log", row=1, col=3)
    fig.update_layout(height=380, margin=MARGIN)
    return fig
