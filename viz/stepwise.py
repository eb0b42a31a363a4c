"""Heatmaps of the tensors inside one attention: tokens x channels (X, Q, K, V, A·V) in either orientation.

Like viz.attention, axes are integer positions with labels as tick text, and NaN (masked) entries are
left as gaps over a grey background, so a masked entry never looks like a very negative number.
"""

import numpy as np
import plotly.graph_objects as go

from viz.heatmap import axis

MASKED_GREY = "#c8c8c8"  # the plot background, which shows through NaN (masked) cells


def char_labels(tokens: list[str]) -> list[str]:
    """Readable tick labels for character tokens: a visible mark for space and newline."""
    return [{" ": "␣", "\n": "⏎"}.get(tok, tok) for tok in tokens]


def labelled_heatmap(
    matrix: np.ndarray,
    row_labels: list[str],
    col_labels: list[str],
    row_title: str,
    col_title: str,
    title: str = "",
    colorscale: str = "RdBu",
    zmid: float | None = 0.0,
    zmin: float | None = None,
    zmax: float | None = None,
    value_name: str = "value",
    height: int | None = None,
    row_ticks: bool = True,
    col_ticks: bool = True,
) -> go.Figure:
    """matrix (R, C) with one label per row and column; NaN cells are drawn grey (masked).

    row_ticks / col_ticks False leave that axis to Plotly's numeric ticks (for channel indices).
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape != (len(row_labels), len(col_labels)):
        raise ValueError(
            f"matrix of shape {matrix.shape} does not match "
            f"{len(row_labels)} row and {len(col_labels)} column labels"
        )
    r_idx, c_idx = np.meshgrid(np.arange(len(row_labels)), np.arange(len(col_labels)), indexing="ij")
    customdata = np.stack(
        [np.asarray(row_labels, dtype=object)[r_idx], np.asarray(col_labels, dtype=object)[c_idx]], axis=-1
    )
    finite = matrix[np.isfinite(matrix)]
    if zmid is not None and finite.size and zmin is None and zmax is None:
        bound = float(np.abs(finite).max()) or 1.0  # symmetric around zmid so that white means 0
        zmin, zmax = zmid - bound, zmid + bound
    fig = go.Figure(
        go.Heatmap(
            z=matrix,
            customdata=customdata,
            hovertemplate=(
                f"{row_title} %{{y}}: %{{customdata[0]}}<br>{col_title} %{{x}}: %{{customdata[1]}}<br>"
                f"{value_name} %{{z:.4f}}<extra></extra>"
            ),
            colorscale=colorscale,
            zmin=zmin,
            zmax=zmax,
            hoverongaps=False,
        )
    )
    rows, cols = matrix.shape
    fig.update_layout(
        title=title,
        height=height or max(260, min(700, 90 + 14 * rows)),
        xaxis=axis(col_labels if col_ticks else None, col_title, n=len(col_labels)),
        yaxis=axis(row_labels if row_ticks else None, row_title, n=len(row_labels))
        | {"autorange": "reversed"},
        plot_bgcolor=MASKED_GREY,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
    )
    return fig


def tokens_by_channels(
    matrix: np.ndarray, tokens: list[str], channel_name: str, title: str = "", value_name: str = "value"
) -> go.Figure:
    """(T, C) activations: tokens down the side, channels across, the channel axis named (e.g. "d = 384")."""
    matrix = np.asarray(matrix)
    if matrix.ndim != 2:
        raise ValueError(f"expected (tokens, channels), got shape {matrix.shape}")
    channels = [str(c) for c in range(matrix.shape[1])]
    return labelled_heatmap(
        matrix, tokens, channels, "token", channel_name, title, value_name=value_name, col_ticks=False
    )


def channels_by_tokens(
    matrix: np.ndarray, tokens: list[str], channel_name: str, title: str = "", value_name: str = "value"
) -> go.Figure:
    """(C, T) activations in the columns-as-tokens convention: channels down the side, tokens across."""
    matrix = np.asarray(matrix)
    if matrix.ndim != 2:
        raise ValueError(f"expected (channels, tokens), got shape {matrix.shape}")
    channels = [str(c) for c in range(matrix.shape[0])]
    return labelled_heatmap(
        matrix, channels, tokens, channel_name, "token", title, value_name=value_name, row_ticks=False
    )


def outline(
    fig: go.Figure, row: int | None = None, col: int | None = None, color: str = "#e4572e"
) -> go.Figure:
    """Draw a box around one row or one column of a heatmap (the chosen query), in place."""
    z = np.asarray(fig.data[0].z)
    rows, cols = z.shape
    if row is not None:
        if not 0 <= row < rows:
            raise ValueError(f"row {row} is outside 0..{rows - 1}")
        fig.add_shape(
            type="rect", x0=-0.5, x1=cols - 0.5, y0=row - 0.5, y1=row + 0.5, line={"color": color, "width": 2}
        )
    if col is not None:
        if not 0 <= col < cols:
            raise ValueError(f"column {col} is outside 0..{cols - 1}")
        fig.add_shape(
            type="rect", x0=col - 0.5, x1=col + 0.5, y0=-0.5, y1=rows - 0.5, line={"color": color, "width": 2}
        )
    return fig


def mark_column_groups(fig: go.Figure, group: int, color: str = "#222") -> go.Figure:
    """Vertical lines every `group` columns (the head boundaries of a concatenation), in place."""
    rows, cols = np.asarray(fig.data[0].z).shape
    if group <= 0 or cols % group:
        raise ValueError(f"{cols} columns do not split into groups of {group}")
    for c in range(group, cols, group):
        fig.add_vline(x=c - 0.5, line={"color": color, "width": 1.5})
    return fig


def weight_heatmap(weight: np.ndarray, row_name: str, col_name: str, title: str = "") -> go.Figure:
    """A weight matrix (in, out) as used in X W: input channels down the side, output channels across."""
    weight = np.asarray(weight)
    if weight.ndim != 2:
        raise ValueError(f"expected a 2-D weight matrix, got shape {weight.shape}")
    rows, cols = (list(map(str, range(n))) for n in weight.shape)
    return labelled_heatmap(
        weight, rows, cols, row_name, col_name, title, value_name="weight", row_ticks=False, col_ticks=False
    )
