"""Figures of positional encodings: 1-D tables, 2-D DETR maps, RoPE rotations, and where position enters.

Every function takes numpy arrays and returns a `go.Figure`; none knows a model. Every matrix is drawn by
the heatmap core (`viz.heatmap`): big tables become rasters, and a window of one is placed at its rows and
columns (`row_start`, `col_start`).
"""

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from viz.heatmap import CELL_BUDGET, MARGIN, RASTER_SIDE, heatmap, raster

TITLED = MARGIN | {"t": 60}  # room for subplot titles under the figure's title
POSITION_COLOUR = "#e65100"  # arrows that carry position, in the diagram
CONTENT_COLOUR = "#546e7a"
LIMIT_SAMPLE = 2**20  # entries of a big table the colour limit is read from


def _as_2d(array, name: str) -> np.ndarray:
    """A 2-D array, float32 kept as it is (an 8192 × 4096 table is not copied to float64)."""
    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {array.shape}")
    return array


def colour_limit(pe, percentile: float = 99.0) -> float:
    """The `percentile` of |pe|, read from at most LIMIT_SAMPLE entries spread over the table (the stride
    is not a multiple of the row length, so every channel is sampled); 1 for an empty or zero table."""
    flat = np.asarray(pe).ravel()
    flat = flat[:: flat.size // LIMIT_SAMPLE + 1]
    return (float(np.percentile(np.abs(flat), percentile)) if flat.size else 0.0) or 1.0


def raster_side(shape: tuple[int, int]) -> int:
    """The longest side a raster of `shape` may keep for at most RASTER_SIDE² pixels: a long, narrow table
    (8192 × 16) keeps its 16 columns instead of being pooled down to 1024 × 2."""
    n_rows, n_cols = shape
    factor = max(1, math.ceil(math.sqrt(n_rows * n_cols) / RASTER_SIDE))
    return math.ceil(max(n_rows, n_cols) / factor)


def encoding_heatmap(
    pe, title: str = "", clip_percentile: float = 99.0, row_labels=None, limit: float | None = None,
    row_start: int = 0, col_start: int = 0,
) -> go.Figure:  # fmt: skip
    """pe (N, d): one row per position, one column per channel, through the heatmap core; a window of a
    larger table starts at (row_start, col_start). `row_labels` (e.g. the tokens) name the rows. The colour
    scale is symmetric and saturates at `limit`, by default the `clip_percentile` of |pe|, so that a few
    large entries (learned tables have them) do not wash out the rest; hover shows the true value. Above
    CELL_BUDGET cells the table is a raster of at most RASTER_SIDE² pixels."""
    pe = _as_2d(pe, "the encoding")
    limit = colour_limit(pe, clip_percentile) if limit is None else limit
    style = {
        "title": title, "row_title": "position", "col_title": "channel", "colorscale": "RdBu",
        "zmin": -limit, "zmax": limit,
    }  # fmt: skip
    if pe.size > CELL_BUDGET:
        return raster(pe, row_labels, None, max_side=raster_side(pe.shape), height=560, **style)
    return heatmap(
        pe,
        row_labels,
        None,
        value_name="value",
        row_start=row_start,
        col_start=col_start,
        height=420,
        **style,
    )


def channel_waves(pe, channels: list[int], title: str = "") -> go.Figure:
    """pe (N, d) -> one line per chosen channel: its value against position (only those columns are sent)."""
    pe = _as_2d(pe, "the encoding")
    bad = [c for c in channels if not 0 <= c < pe.shape[1]]
    if bad:
        raise ValueError(f"channels {bad} are outside 0..{pe.shape[1] - 1}")
    positions = np.arange(pe.shape[0], dtype=np.int32)  # 4 bytes a point on the wire
    fig = go.Figure(
        [
            go.Scatter(
                x=positions,
                y=pe[:, c].astype(np.float32),
                mode="lines",
                name=f"channel {c}",
                hovertemplate=f"channel {c}<br>position %{{x}}<br>value %{{y:.4f}}<extra></extra>",
            )
            for c in channels
        ]
    )
    fig.update_layout(title=title, height=320, margin=MARGIN, xaxis_title="position", yaxis_title="value")
    return fig


def similarity_heatmap(
    sim, title: str = "", value_name: str = "dot product", row_start: int = 0, col_start: int = 0,
    zmin: float | None = None, zmax: float | None = None,
) -> go.Figure:  # fmt: skip
    """sim (N, N): similarity between the encodings of position m (row) and n (column), through the heatmap
    core (a raster above CELL_BUDGET cells); a window of a larger matrix starts at (row_start, col_start)."""
    sim = _as_2d(sim, "the similarity matrix")
    if sim.shape[0] != sim.shape[1]:
        raise ValueError(f"a similarity matrix is square, got {sim.shape}")
    return heatmap(
        sim, title=title, row_title="position m", col_title="position n", colorscale="Viridis",
        value_name=value_name, row_start=row_start, col_start=col_start, zmin=zmin, zmax=zmax, height=480,
    )  # fmt: skip


def _panel(matrix: np.ndarray, **style) -> go.Heatmap:
    """One subplot's heatmap trace, built by the heatmap core (hover, float32, rounding), on the figure's
    shared colour axis."""
    return heatmap(matrix, **style).data[0].update(coloraxis="coloraxis")


def channel_maps(pos, channels: list[int], names: list[str] | None = None, title: str = "") -> go.Figure:
    """pos (C, H, W) -> one 2-D map per chosen channel, side by side on a shared colour scale."""
    pos = np.asarray(pos)
    if pos.ndim != 3:
        raise ValueError(f"expected a (channels, H, W) encoding, got shape {pos.shape}")
    bad = [c for c in channels if not 0 <= c < pos.shape[0]]
    if bad or not channels:
        raise ValueError(f"choose channels within 0..{pos.shape[0] - 1}, got {channels}")
    if pos.shape[1] * pos.shape[2] > CELL_BUDGET:
        raise ValueError(f"a {pos.shape[1]} × {pos.shape[2]} map is too big for side-by-side cells")
    names = names or [f"channel {c}" for c in channels]
    if len(names) != len(channels):
        raise ValueError(f"{len(names)} names for {len(channels)} channels")
    fig = make_subplots(rows=1, cols=len(channels), subplot_titles=names, horizontal_spacing=0.03)
    for i, c in enumerate(channels):
        fig.add_trace(_panel(pos[c], row_title="y", col_title="x", value_name=names[i]), row=1, col=i + 1)
    fig.update_yaxes(autorange="reversed", showgrid=False, zeroline=False)
    fig.update_xaxes(showgrid=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, selector=lambda axis: axis.anchor != "x")
    fig.update_layout(
        title=title, height=300, margin=TITLED, coloraxis={"colorscale": "RdBu", "cmin": -1, "cmax": 1}
    )
    return fig


def point_similarity_map(sim, point: tuple[int, int], title: str = "") -> go.Figure:
    """sim (H, W): similarity of each feature-map position to the one at `point` = (y, x), marked."""
    sim = _as_2d(sim, "the similarity map")
    y, x = point
    if not (0 <= y < sim.shape[0] and 0 <= x < sim.shape[1]):
        raise ValueError(f"point {point} is outside the {sim.shape[0]}×{sim.shape[1]} map")
    fig = heatmap(sim, title=title, row_title="y", col_title="x", value_name="cosine", height=380)
    fig.add_trace(
        go.Scatter(
            x=[x],
            y=[y],
            mode="markers",
            marker={"symbol": "x", "size": 12, "color": "red"},
            name="chosen point",
            hoverinfo="skip",
        )
    )
    fig.update_layout(showlegend=False, yaxis={"scaleanchor": "x"})
    return fig


def rope_rotation(pairs, pair_ids: list[int], title: str = "") -> go.Figure:
    """pairs (P, N, 2): a vector's channel pair i at positions 0..N-1 after RoPE, one circle per pair."""
    pairs = np.asarray(pairs, dtype=np.float64)
    if pairs.ndim != 3 or pairs.shape[-1] != 2 or pairs.shape[0] != len(pair_ids):
        raise ValueError(f"expected ({len(pair_ids)}, N, 2) rotated pairs, got {pairs.shape}")
    fig = make_subplots(
        rows=1,
        cols=len(pair_ids),
        horizontal_spacing=0.05,
        subplot_titles=[f"pair {i} (channels {2 * i}, {2 * i + 1})" for i in pair_ids],
    )
    positions = np.arange(pairs.shape[1])
    circle = np.linspace(0, 2 * np.pi, 121)
    for col, (i, xy) in enumerate(zip(pair_ids, pairs, strict=True), start=1):
        radius = float(np.hypot(*xy[0])) or 1.0  # a rotation keeps the pair's length
        fig.add_trace(
            go.Scatter(
                x=radius * np.cos(circle),
                y=radius * np.sin(circle),
                mode="lines",
                line={"width": 1, "color": "#ddd", "dash": "dot"},
                hoverinfo="skip",
            ),
            row=1,
            col=col,
        )
        fig.add_trace(
            go.Scatter(
                x=xy[:, 0],
                y=xy[:, 1],
                mode="markers+lines",
                line={"width": 0.5, "color": "#bbb"},
                marker={"color": positions, "coloraxis": "coloraxis", "size": 6},
                customdata=positions,
                hovertemplate=f"pair {i}<br>position %{{customdata}}<br>(%{{x:.3f}}, %{{y:.3f}})"
                + "<extra></extra>",
            ),
            row=1,
            col=col,
        )
        fig.update_xaxes(range=[-1.15 * radius, 1.15 * radius], row=1, col=col)
        fig.update_yaxes(
            range=[-1.15 * radius, 1.15 * radius], scaleanchor=f"x{col if col > 1 else ''}", row=1, col=col
        )
    fig.update_layout(
        title=title,
        height=330,
        margin=TITLED,
        showlegend=False,
        coloraxis={"colorscale": "Viridis", "colorbar": {"title": "position"}},
    )
    return fig


def offset_profile(offsets, means, spreads, title: str = "") -> go.Figure:
    """Score against the relative offset n - m (top), and its spread along each diagonal (bottom, log)."""
    offsets, means, spreads = (np.asarray(a, dtype=np.float64) for a in (offsets, means, spreads))
    if not offsets.shape == means.shape == spreads.shape or offsets.ndim != 1:
        raise ValueError(
            f"offsets, means and spreads must be 1-D of one length, got "
            f"{offsets.shape}, {means.shape}, {spreads.shape}"
        )
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        subplot_titles=[
            "q·k against the offset n − m",
            "spread (max − min) of q·k over all pairs with that offset",
        ],
    )
    fig.add_trace(
        go.Scatter(
            x=offsets,
            y=means,
            mode="lines",
            name="q·k",
            hovertemplate="offset %{x}<br>q·k %{y:.4f}<extra></extra>",
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=offsets,
            y=np.where(spreads > 0, spreads, np.nan),
            mode="markers",
            name="spread",
            marker={"size": 3},
            hovertemplate="offset %{x}<br>spread %{y:.2e}<extra></extra>",
        ),
        row=2,
        col=1,
    )
    fig.update_yaxes(type="log", exponentformat="power", row=2, col=1)
    fig.update_xaxes(title="offset n − m", row=2, col=1)
    fig.update_layout(title=title, height=480, margin=TITLED, showlegend=False)
    return fig


def statistic_comparison(values: dict[str, np.ndarray], name: str) -> go.Figure:
    """{variant: (L, H) statistic} -> side-by-side layer × head heatmaps on one colour scale, each value
    printed on its cell (2 decimals)."""
    arrays = {k: _as_2d(v, f"the {name} of {k!r}") for k, v in values.items()}
    shapes = {a.shape for a in arrays.values()}
    if len(shapes) != 1:
        raise ValueError(f"every variant needs the same (layers, heads) shape, got {shapes}")
    low = min(float(np.nanmin(a)) for a in arrays.values())
    high = max(float(np.nanmax(a)) for a in arrays.values())
    fig = make_subplots(rows=1, cols=len(arrays), subplot_titles=list(arrays), horizontal_spacing=0.04)
    for col, a in enumerate(arrays.values(), start=1):
        trace = _panel(a, row_title="layer", col_title="head", value_name=name, decimals=2)
        fig.add_trace(trace, row=1, col=col)
    fig.update_xaxes(title="head", dtick=1, showgrid=False)
    fig.update_yaxes(dtick=1, autorange="reversed", showgrid=False)
    fig.update_yaxes(title="layer", row=1, col=1)
    fig.update_layout(
        title=name,
        height=140 + 40 * next(iter(shapes))[0],
        margin=TITLED,
        coloraxis={"colorscale": "Cividis", "cmin": low, "cmax": high},
    )
    return fig


def _box(fig: go.Figure, x: float, y: float, text: str, colour: str, width: float = 1.7) -> None:
    fig.add_shape(
        type="rect",
        x0=x - width / 2,
        x1=x + width / 2,
        y0=y - 0.3,
        y1=y + 0.3,
        line={"color": colour, "width": 2},
        fillcolor="white",
        layer="below",
    )
    fig.add_annotation(x=x, y=y, text=text, showarrow=False, font={"size": 12, "color": "#111"})


def _arrow(fig: go.Figure, start: tuple[float, float], end: tuple[float, float], colour: str) -> None:
    fig.add_annotation(
        x=end[0],
        y=end[1],
        ax=start[0],
        ay=start[1],
        xref="x",
        yref="y",
        axref="x",
        ayref="y",
        text="",
        showarrow=True,
        arrowhead=3,
        arrowwidth=2,
        arrowcolor=colour,
    )


def where_added_diagram(n_layers: int = 2) -> go.Figure:
    """Left: BERT/GPT add the position once, to the input embedding, so it reaches Q, K and V of layer 1
    and later layers only through the residual stream. Right: DETR's encoder adds the 2-D encoding to
    the queries and keys of every layer, and never to the values (S21). Orange arrows carry position."""
    if not 1 <= n_layers <= 6:
        raise ValueError(f"draw between 1 and 6 layers, got {n_layers}")
    fig = go.Figure()
    top = 2 * n_layers + 2.2
    # BERT / GPT: x in 0..4
    _box(fig, 0.9, top, "token embedding", CONTENT_COLOUR)
    _box(fig, 3.1, top, "position embedding", POSITION_COLOUR)
    _box(fig, 2.0, top - 1.2, "⊕  then LayerNorm", POSITION_COLOUR)
    _arrow(fig, (0.9, top - 0.3), (1.7, top - 0.9), CONTENT_COLOUR)
    _arrow(fig, (3.1, top - 0.3), (2.3, top - 0.9), POSITION_COLOUR)
    previous = top - 1.2
    for layer in range(n_layers):
        y = top - 2.4 - 2 * layer
        _box(fig, 2.0, y, f"layer {layer + 1}: Q, K, V = x·W", CONTENT_COLOUR, width=2.6)
        _arrow(fig, (2.0, previous - 0.3), (2.0, y + 0.3), POSITION_COLOUR if layer == 0 else CONTENT_COLOUR)
        previous = y
    # DETR encoder: x in 5..11; position runs down a bus on the right and enters only Q and K
    _box(fig, 6.0, top, "CNN features (src)", CONTENT_COLOUR)
    _box(fig, 10.2, top, "2-D sine pos (S20)", POSITION_COLOUR)
    bus_bottom = top - 1.4 - 2 * (n_layers - 1) + 0.7
    fig.add_shape(
        type="line",
        x0=10.2,
        x1=10.2,
        y0=top - 0.3,
        y1=bus_bottom,
        line={"color": POSITION_COLOUR, "width": 2},
    )
    for layer in range(n_layers):
        y = top - 1.4 - 2 * layer
        _box(fig, 5.6, y, "V = src", CONTENT_COLOUR, width=1.2)
        _box(fig, 7.2, y, "K = src + pos", POSITION_COLOUR, width=1.5)
        _box(fig, 8.8, y, "Q = src + pos", POSITION_COLOUR, width=1.5)
        _box(fig, 7.2, y - 1.0, f"encoder layer {layer + 1} attention", CONTENT_COLOUR, width=3.4)
        source = top - 0.3 if layer == 0 else y + 0.7
        for x in (5.6, 7.2, 8.8):
            _arrow(fig, (6.0, source), (x, y + 0.3), CONTENT_COLOUR)
            _arrow(
                fig,
                (x, y - 0.3),
                (min(max(x, 6.2), 8.2), y - 0.7),
                POSITION_COLOUR if x > 6 else CONTENT_COLOUR,
            )
        for x in (7.2, 8.8):
            _arrow(fig, (10.2, y + 0.7), (x + 0.4, y + 0.3), POSITION_COLOUR)
    fig.add_annotation(
        x=2.0,
        y=top + 0.8,
        text="<b>BERT / GPT</b>: added once, at the input",
        showarrow=False,
        font={"size": 14},
    )
    fig.add_annotation(
        x=7.8,
        y=top + 0.8,
        text="<b>DETR encoder</b>: added to Q and K at every layer, never V",
        showarrow=False,
        font={"size": 14},
    )
    fig.update_xaxes(visible=False, range=[-0.2, 11.2])
    fig.update_yaxes(visible=False, range=[top - 2 * n_layers - 1.0, top + 1.2])
    fig.update_layout(
        height=180 + 110 * n_layers,
        margin={"l": 0, "r": 0, "t": 10, "b": 0},
        plot_bgcolor="white",
        showlegend=False,
    )
    return fig
