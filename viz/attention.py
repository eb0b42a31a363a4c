"""Attention matrices as Plotly figures: one head, a grid of every layer x head, a statistic per head.

Axes are integer positions with the tokens as tick text, because tokens repeat and Plotly would
merge equal category names. Masked entries are passed as NaN and drawn as gaps, not as a colour.
"""

import html

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

MAX_TICK_LABELS = 64  # beyond this, tick labels overlap; hover still names every token
THUMBNAIL_SIZE = 48  # thumbnails of the overview are pooled down to at most this many cells a side


def _check_matrix(matrix: np.ndarray, query_labels, key_labels) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"an attention matrix is 2-D (queries x keys), got shape {matrix.shape}")
    if matrix.shape != (len(query_labels), len(key_labels)):
        raise ValueError(
            f"matrix {matrix.shape} does not match {len(query_labels)} query and {len(key_labels)} key labels"
        )
    return matrix


def token_axis(labels, title: str | None, label_ticks: bool = True) -> dict:
    """A heatmap axis: its title, and a tick naming each label when they are few enough to read."""
    axis = {"title": title}
    if label_ticks and len(labels) <= MAX_TICK_LABELS:
        axis |= {"tickmode": "array", "tickvals": list(range(len(labels))), "ticktext": list(labels)}
    return axis


def attention_heatmap(
    matrix: np.ndarray,
    query_labels: list[str],
    key_labels: list[str],
    title: str = "",
    colorscale: str = "Viridis",
    zmin: float | None = 0.0,
    zmax: float | None = None,
    value_name: str = "weight",
) -> go.Figure:
    """matrix (Tq, Tk): row i is what query i attends to. NaN entries (masked) are left blank."""
    matrix = _check_matrix(matrix, query_labels, key_labels)
    q_idx, k_idx = np.meshgrid(np.arange(len(query_labels)), np.arange(len(key_labels)), indexing="ij")
    queries = np.asarray(query_labels, dtype=object)[q_idx]
    keys = np.asarray(key_labels, dtype=object)[k_idx]
    fig = go.Figure(
        go.Heatmap(
            z=matrix,
            customdata=np.stack([queries, keys], axis=-1),
            hovertemplate=(
                "query %{y}: %{customdata[0]}<br>key %{x}: %{customdata[1]}<br>"
                + value_name
                + " %{z:.4f}<extra></extra>"
            ),
            colorscale=colorscale,
            zmin=zmin,
            zmax=zmax,
            hoverongaps=False,
        )
    )
    size = max(320, min(900, 60 + 22 * max(len(query_labels), len(key_labels))))
    fig.update_layout(
        title=title,
        height=size,
        xaxis=token_axis(key_labels, "key (attended to)") | {"tickangle": -60},
        yaxis=token_axis(query_labels, "query (attending)") | {"tickangle": 0, "autorange": "reversed"},
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
    )
    return fig


def pool_square(matrix: np.ndarray, size: int) -> np.ndarray:
    """Average-pool the last two axes down to at most `size` cells each (for thumbnails)."""
    t_q, t_k = matrix.shape[-2:]
    rows = np.array_split(np.arange(t_q), min(size, t_q))
    cols = np.array_split(np.arange(t_k), min(size, t_k))
    pooled = np.stack([matrix[..., r, :].mean(-2) for r in rows], axis=-2)
    return np.stack([pooled[..., c].mean(-1) for c in cols], axis=-1)


def head_grid(probs: np.ndarray, title: str = "", thumbnail_size: int = THUMBNAIL_SIZE) -> go.Figure:
    """probs (L, H, T, T) -> an L x H grid of thumbnails, one trace per head (trace index = l * H + h)."""
    probs = np.asarray(probs)
    if probs.ndim != 4 or probs.shape[-1] != probs.shape[-2]:
        raise ValueError(f"expected (layers, heads, T, T), got {probs.shape}")
    n_layers, n_heads = probs.shape[:2]
    thumbs = pool_square(probs, thumbnail_size)
    fig = make_subplots(
        rows=n_layers,
        cols=n_heads,
        horizontal_spacing=0.004,
        vertical_spacing=0.01,
        row_titles=[f"L{layer}" for layer in range(n_layers)],
        column_titles=[f"H{head}" for head in range(n_heads)],
    )
    for layer in range(n_layers):
        for head in range(n_heads):
            fig.add_trace(
                go.Heatmap(
                    z=thumbs[layer, head],
                    coloraxis="coloraxis",
                    hovertemplate=f"layer {layer}, head {head}<extra></extra>",
                ),
                row=layer + 1,
                col=head + 1,
            )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed")
    fig.update_layout(
        title=title,
        height=70 + 62 * n_layers,
        coloraxis={"colorscale": "Viridis", "cmin": 0, "showscale": False},
        margin={"l": 10, "r": 30, "t": 60, "b": 10},
    )
    return fig


def head_statistic_heatmap(values: np.ndarray, name: str) -> go.Figure:
    """values (L, H) of one per-head statistic."""
    values = np.asarray(values)
    if values.ndim != 2:
        raise ValueError(f"expected (layers, heads), got {values.shape}")
    fig = go.Figure(
        go.Heatmap(
            z=values,
            x=list(range(values.shape[1])),
            y=list(range(values.shape[0])),
            colorscale="Cividis",
            text=np.round(values, 2),
            texttemplate="%{text}",
            hovertemplate="layer %{y}, head %{x}<br>" + name + " %{z:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=name,
        height=120 + 40 * values.shape[0],
        xaxis={"title": "head", "dtick": 1},
        yaxis={"title": "layer", "dtick": 1, "autorange": "reversed"},
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
    )
    return fig


def token_strip_html(tokens: list[str], special: set[str] = frozenset()) -> str:
    """The tokens as a wrapped row of chips (HTML), special tokens shaded, each with its position."""
    chips = []
    for i, token in enumerate(tokens):
        background = "#ffe0b2" if token in special else "#e3f2fd"
        chips.append(
            f'<span title="position {i}" style="display:inline-block;margin:2px;padding:1px 6px;'
            f'border-radius:6px;background:{background};color:#111;font-family:monospace">'
            f"{html.escape(token)}<sub style='color:#777'>{i}</sub></span>"
        )
    return '<div style="line-height:1.9">' + "".join(chips) + "</div>"
