"""Heatmaps of the tensors inside one attention: tokens x channels (X, Q, K, V, A·V) in either orientation.

Every matrix is drawn by the heatmap core (`viz.heatmap.heatmap`): token axes are numbered ("3 the") so
that repeated tokens stay apart, channel axes are plain positions, masked entries are drawn the core's one
way (grey, no hover), and matrices past its cell budget become rasters.
"""

import numpy as np
import plotly.graph_objects as go

from viz.heatmap import check_matrix, heatmap, index_labels, mask_of


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
    mask: np.ndarray | None = None,
    decimals: int | None = None,
) -> go.Figure:
    """matrix (R, C) with one label per row and column; mask (R, C) bool, False (or a NaN value) = masked.

    With zmid and no zmin / zmax the colours are symmetric around zmid over the shown values, so that the
    middle colour means zmid. row_ticks / col_ticks False leave that axis to plain positions (channels).
    `decimals` prints each value on its cell, rounded.
    """
    matrix = check_matrix(matrix, row_labels, col_labels)
    shown = matrix if mask is None else matrix[mask_of(mask, matrix.shape)]
    finite = shown[np.isfinite(shown)]
    if zmid is not None and finite.size and zmin is None and zmax is None:
        bound = float(np.abs(finite - zmid).max()) or 1.0
        zmin, zmax = zmid - bound, zmid + bound
    return heatmap(
        matrix,
        index_labels(row_labels) if row_ticks else None,
        index_labels(col_labels) if col_ticks else None,
        title=title,
        row_title=row_title,
        col_title=col_title,
        mask=mask,
        colorscale=colorscale,
        zmin=zmin,
        zmax=zmax,
        value_name=value_name,
        decimals=decimals,
        height=height or max(260, min(700, 90 + 14 * matrix.shape[0])),
    )


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


def grid_shape(fig: go.Figure) -> tuple[int, int]:
    """(rows, columns) of the matrix a core figure draws: a heatmap's z, or a raster's axis ranges."""
    trace = fig.data[0]
    if trace.type == "heatmap":
        return np.shape(trace.z)
    return round(fig.layout.yaxis.range[0] + 0.5), round(fig.layout.xaxis.range[1] + 0.5)


def outline(
    fig: go.Figure, row: int | None = None, col: int | None = None, color: str = "#e4572e"
) -> go.Figure:
    """Draw a box around one row or one column of a heatmap (the chosen query), in place."""
    rows, cols = grid_shape(fig)
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
    _, cols = grid_shape(fig)
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
