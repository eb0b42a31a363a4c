"""Figures of the norms and residual panels: which axes layer norm and batch norm average over, on
real activations, and token vectors through a deep attention stack with and without the skip.

Every function takes numpy arrays plus labels, checks their shapes and returns a `go.Figure`.
"""

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from viz.heatmap import MARGIN, heatmap, index_labels
from viz.receptive import colour, heatmap_panels, vector


def norm_axes_figure(before, after_layer, after_batch, token_labels, row: int, channel: int) -> go.Figure:
    """Three (N, d) activations (real tokens x channels): before, after layer norm, after batch norm.

    The row `row` outlined is what layer norm averages over (one token, all channels); the column
    `channel` is what batch norm averages over (one channel, every token of the batch).
    """
    before, after_layer, after_batch = (np.asarray(a) for a in (before, after_layer, after_batch))
    if before.ndim != 2 or before.shape != after_layer.shape or before.shape != after_batch.shape:
        raise ValueError(
            f"the three activations must share one (N, d) shape: {before.shape}, {after_layer.shape}"
        )
    n, d = before.shape
    if len(token_labels) != n:
        raise ValueError(f"{len(token_labels)} token labels for {n} rows")
    rows = index_labels(token_labels)  # "12 0:the": tokens repeat, positions do not
    panels = []
    for z in (before, after_layer, after_batch):
        lim = float(np.percentile(np.abs(z), 99)) or 1.0
        panels.append(
            heatmap(
                z, rows, None, colorscale="RdBu", zmid=0, zmin=-lim, zmax=lim, showscale=False,
                row_title="token", col_title="channel",
            )
        )  # fmt: skip
    titles = ["activations", "layer norm: each row alone", "batch norm: each column alone"]
    fig = heatmap_panels(panels, titles, shared_yaxes=True, horizontal_spacing=0.02)
    for col in (1, 2, 3):
        place = {"type": "rect", "row": 1, "col": col}
        fig.add_shape(x0=-0.5, x1=d - 0.5, y0=row - 0.5, y1=row + 0.5, line={"color": "black"}, **place)
        fig.add_shape(
            x0=channel - 0.5, x1=channel + 0.5, y0=-0.5, y1=n - 0.5, line={"color": "green"}, **place
        )
    fig.update_yaxes(title=None)
    fig.update_layout(height=max(360, 60 + 12 * n))
    return fig


def line_panels(series: dict, panels: dict, cols: int, mode: str = "lines", width: float = 2, **spacing):
    """series: label -> dict of key -> (n,) values; panels: key -> subplot title, row by row, `cols` a
    row. Every panel draws one line per label, in the label's colour, with one legend entry per label."""
    rows = -(-len(panels) // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=list(panels.values()), **spacing)
    for i, (label, values) in enumerate(series.items()):
        for j, key in enumerate(panels):
            y = vector(values[key], None, f"{label} {key}")
            fig.add_trace(
                go.Scatter(
                    x=np.arange(y.size),
                    y=y,
                    mode=mode,
                    name=label,
                    legendgroup=label,
                    showlegend=j == 0,
                    line={"color": colour(i), "width": width},
                ),
                row=j // cols + 1,
                col=j % cols + 1,
            )
    fig.update_layout(margin=MARGIN)
    return fig


def norm_stats_figure(stats: dict) -> go.Figure:
    """stats: label -> dict of token_mean, token_std (N,) and channel_mean, channel_std (d,)."""
    panels = {
        "token_mean": "mean of each token",
        "token_std": "std of each token",
        "channel_mean": "mean of each channel",
        "channel_std": "std of each channel",
    }
    fig = line_panels(stats, panels, cols=2, width=1.5, vertical_spacing=0.2)
    fig.update_xaxes(title="token", row=1)
    fig.update_xaxes(title="channel", row=2)
    fig.update_layout(height=520)
    return fig


def residual_figure(traces: dict) -> go.Figure:
    """traces: label -> dict of cosine, effective_rank, grad_norm, each (L+1,) indexed by layer."""
    panels = {
        "cosine": "cosine between tokens",
        "effective_rank": "effective rank",
        "grad_norm": "gradient norm ‖∂L/∂X_l‖",
    }
    fig = line_panels(traces, panels, cols=3, mode="lines+markers", horizontal_spacing=0.09)
    fig.update_xaxes(title="layer (0 = input)")
    fig.update_yaxes(type="log", row=1, col=3)
    fig.update_layout(height=380)
    return fig
