"""Attention matrices as Plotly figures: one head, an overview of every layer x head, a statistic per
head, and the tokens. Every matrix is drawn by the heatmap core, `viz.heatmap`."""

import html

import numpy as np
import plotly.graph_objects as go

from viz.heatmap import MARGIN, heatmap, index_labels


def attention_heatmap(
    matrix: np.ndarray,
    query_labels: list[str],
    key_labels: list[str],
    title: str = "",
    colorscale: str = "Viridis",
    zmin: float | None = 0.0,
    zmax: float | None = None,
    value_name: str = "weight",
    mask: np.ndarray | None = None,
    decimals: int | None = None,
) -> go.Figure:
    """matrix (Tq, Tk): row i is what query i attends to. NaN or mask-False entries are drawn as masked.
    Labels are tokens; they are numbered by position ("3 the") so that repeated tokens stay apart."""
    return heatmap(
        matrix, index_labels(query_labels), index_labels(key_labels), title=title,
        row_title="query (attending)", col_title="key (attended to)", mask=mask, colorscale=colorscale,
        zmin=zmin, zmax=zmax, value_name=value_name, decimals=decimals,
    )  # fmt: skip


def head_overview(thumbnails: np.ndarray, title: str = "") -> go.Figure:
    """thumbnails (L, H, s, s) pooled maps -> one heatmap of every layer x head, laid out in layer and
    head units (thumbnail (l, h) covers x in [h, h + 1), y in [l, l + 1)), and one clickable marker per
    head whose customdata is (layer, head). Values are scaled to 0..255 per thumbnail (one byte a cell)."""
    thumbnails = np.asarray(thumbnails, dtype=np.float32)
    if thumbnails.ndim != 4:
        raise ValueError(f"expected (layers, heads, s, s) thumbnails, got {thumbnails.shape}")
    n_layers, n_heads, s_q, s_k = thumbnails.shape
    peak = thumbnails.max(axis=(2, 3), keepdims=True)
    scaled = np.rint(255 * thumbnails / np.where(peak > 0, peak, 1)).astype(np.uint8)
    z = scaled.transpose(0, 2, 1, 3).reshape(n_layers * s_q, n_heads * s_k)  # (L*s, H*s)
    heads, layers = np.meshgrid(np.arange(n_heads), np.arange(n_layers))
    fig = go.Figure(
        [
            go.Heatmap(
                z=z,
                x=(np.arange(n_heads * s_k) + 0.5) / s_k,
                y=(np.arange(n_layers * s_q) + 0.5) / s_q,
                colorscale="Viridis",
                showscale=False,
                hoverinfo="skip",
            ),
            # one invisible marker per head: a click anywhere on a thumbnail selects the nearest one,
            # and its customdata names the head (heatmap cells cannot be selected)
            go.Scatter(
                x=heads.ravel() + 0.5,
                y=layers.ravel() + 0.5,
                mode="markers",
                marker={"size": 30, "symbol": "square", "opacity": 0},
                customdata=np.stack([layers.ravel(), heads.ravel()], axis=-1),
                hovertemplate="layer %{customdata[0]}, head %{customdata[1]}<br>click to open<extra></extra>",
                showlegend=False,
            ),
        ]
    )
    lines = [
        {"type": "line", "x0": h, "x1": h, "y0": 0, "y1": n_layers, "line": {"color": "white", "width": 2}}
        for h in range(1, n_heads)
    ] + [
        {"type": "line", "x0": 0, "x1": n_heads, "y0": l, "y1": l, "line": {"color": "white", "width": 2}}
        for l in range(1, n_layers)
    ]
    fig.update_layout(
        title=title,
        height=80 + 64 * n_layers,
        shapes=lines,
        margin=MARGIN,
        hoverdistance=-1,  # the nearest head's marker, however far: its thumbnail is under the cursor
        xaxis={"tickvals": np.arange(n_heads) + 0.5, "ticktext": [f"H{h}" for h in range(n_heads)],
               "side": "top", "showgrid": False, "range": [0, n_heads]},
        yaxis={"tickvals": np.arange(n_layers) + 0.5, "ticktext": [f"L{l}" for l in range(n_layers)],
               "showgrid": False, "range": [n_layers, 0]},
    )  # fmt: skip
    return fig


def head_statistic_heatmap(values: np.ndarray, name: str) -> go.Figure:
    """values (L, H) of one per-head statistic, each printed on its cell (2 decimals)."""
    values = np.asarray(values)
    if values.ndim != 2:
        raise ValueError(f"expected (layers, heads), got {values.shape}")
    fig = heatmap(
        values, title=name, row_title="layer", col_title="head", colorscale="Cividis", value_name=name,
        decimals=2, height=120 + 40 * values.shape[0],
    )  # fmt: skip
    fig.update_layout(xaxis={"dtick": 1}, yaxis={"dtick": 1})
    return fig


def token_strip_html(tokens: list[str], special: set[str] = frozenset()) -> str:
    """The tokens as a wrapped row of chips (HTML), special tokens shaded, each with its position.
    One short class per chip (not an inline style): at 4,096 tokens the strip stays near 60 bytes a
    token."""
    chips = "".join(
        f'<span class="{"ts" if token in special else "tk"}" title="position {i}">'
        f"{html.escape(token)}<sub>{i}</sub></span>"
        for i, token in enumerate(tokens)
    )
    style = (
        "<style>.tk,.ts{display:inline-block;margin:2px;padding:1px 6px;border-radius:6px;color:#111;"
        "font-family:monospace;background:#e3f2fd}.ts{background:#ffe0b2}.tk sub,.ts sub{color:#777}</style>"
    )
    return f'{style}<div style="line-height:1.9">{chips}</div>'
