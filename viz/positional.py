"""Figures of positional encodings: 1-D tables, 2-D DETR maps, RoPE rotations, and where position enters.

Every function takes numpy arrays (plus index arrays naming the rows and columns shown, since pages
show subsamples of large tables) and returns a `go.Figure`; none knows a model.
"""

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

MARGIN = {"l": 10, "r": 10, "t": 50, "b": 10}
POSITION_COLOUR = "#e65100"  # arrows that carry position, in the diagram
CONTENT_COLOUR = "#546e7a"


def _as_2d(array, name: str) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {array.shape}")
    return array


def _index(labels, size: int, name: str) -> np.ndarray:
    labels = np.arange(size) if labels is None else np.asarray(labels)
    if labels.shape != (size,):
        raise ValueError(
            f"{name} has {labels.shape[0] if labels.ndim else 0} entries for {size} rows/columns"
        )
    return labels


def encoding_heatmap(
    pe, positions=None, channels=None, title: str = "", clip_percentile: float = 99.0, row_labels=None
) -> go.Figure:
    """pe (N, d): one row per position, one column per channel; `positions`/`channels` name the rows/columns
    shown when they are a subsample; `row_labels` (e.g. the tokens) become the row tick text. The colour
    scale is symmetric and saturates at the `clip_percentile` of |pe|, so that a few large entries (learned
    tables have them) do not wash out the rest; hover shows the true value."""
    pe = _as_2d(pe, "the encoding")
    limit = float(np.percentile(np.abs(pe), clip_percentile)) if pe.size else 1.0
    positions = _index(positions, pe.shape[0], "positions")
    channels = _index(channels, pe.shape[1], "channels")
    fig = go.Figure(
        go.Heatmap(
            z=pe,
            x=channels,
            y=positions,
            colorscale="RdBu",
            zmin=-limit or -1.0,
            zmax=limit or 1.0,
            hovertemplate="position %{y}<br>channel %{x}<br>value %{z:.4f}<extra></extra>",
        )
    )
    yaxis = {"title": "position", "autorange": "reversed"}
    if row_labels is not None:
        if len(row_labels) != pe.shape[0]:
            raise ValueError(f"{len(row_labels)} row labels for {pe.shape[0]} rows")
        yaxis |= {"tickmode": "array", "tickvals": list(positions), "ticktext": list(row_labels)}
    fig.update_layout(title=title, height=420, margin=MARGIN, xaxis_title="channel", yaxis=yaxis)
    return fig


def channel_waves(pe, channels: list[int], positions=None, title: str = "") -> go.Figure:
    """pe (N, d) -> one line per chosen channel: its value against position."""
    pe = _as_2d(pe, "the encoding")
    positions = _index(positions, pe.shape[0], "positions")
    bad = [c for c in channels if not 0 <= c < pe.shape[1]]
    if bad:
        raise ValueError(f"channels {bad} are outside 0..{pe.shape[1] - 1}")
    fig = go.Figure(
        [
            go.Scatter(
                x=positions,
                y=pe[:, c],
                mode="lines",
                name=f"channel {c}",
                hovertemplate=f"channel {c}<br>position %{{x}}<br>value %{{y:.4f}}<extra></extra>",
            )
            for c in channels
        ]
    )
    fig.update_layout(title=title, height=320, margin=MARGIN, xaxis_title="position", yaxis_title="value")
    return fig


def similarity_heatmap(sim, positions=None, title: str = "", value_name: str = "dot product") -> go.Figure:
    """sim (N, N): similarity between the encodings of position m (row) and n (column)."""
    sim = _as_2d(sim, "the similarity matrix")
    if sim.shape[0] != sim.shape[1]:
        raise ValueError(f"a similarity matrix is square, got {sim.shape}")
    positions = _index(positions, sim.shape[0], "positions")
    fig = go.Figure(
        go.Heatmap(
            z=sim,
            x=positions,
            y=positions,
            colorscale="Viridis",
            hovertemplate="m %{y}, n %{x}<br>" + value_name + " %{z:.4f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=title,
        height=420,
        margin=MARGIN,
        xaxis_title="position n",
        yaxis={"title": "position m", "autorange": "reversed"},
    )
    return fig


def channel_maps(pos, channels: list[int], names: list[str] | None = None, title: str = "") -> go.Figure:
    """pos (C, H, W) -> one 2-D map per chosen channel, side by side on a shared colour scale."""
    pos = np.asarray(pos, dtype=np.float64)
    if pos.ndim != 3:
        raise ValueError(f"expected a (channels, H, W) encoding, got shape {pos.shape}")
    bad = [c for c in channels if not 0 <= c < pos.shape[0]]
    if bad or not channels:
        raise ValueError(f"choose channels within 0..{pos.shape[0] - 1}, got {channels}")
    names = names or [f"channel {c}" for c in channels]
    if len(names) != len(channels):
        raise ValueError(f"{len(names)} names for {len(channels)} channels")
    fig = make_subplots(rows=1, cols=len(channels), subplot_titles=names, horizontal_spacing=0.03)
    for i, c in enumerate(channels):
        fig.add_trace(
            go.Heatmap(
                z=pos[c],
                coloraxis="coloraxis",
                hovertemplate=f"{names[i]}<br>y %{{y}}, x %{{x}}<br>value %{{z:.4f}}<extra></extra>",
            ),
            row=1,
            col=i + 1,
        )
    fig.update_yaxes(autorange="reversed")
    fig.update_yaxes(showticklabels=False, selector=lambda axis: axis.anchor != "x")
    fig.update_layout(
        title=title, height=300, margin=MARGIN, coloraxis={"colorscale": "RdBu", "cmin": -1, "cmax": 1}
    )
    return fig


def point_similarity_map(sim, point: tuple[int, int], title: str = "") -> go.Figure:
    """sim (H, W): similarity of each feature-map position to the one at `point` = (y, x), marked."""
    sim = _as_2d(sim, "the similarity map")
    y, x = point
    if not (0 <= y < sim.shape[0] and 0 <= x < sim.shape[1]):
        raise ValueError(f"point {point} is outside the {sim.shape[0]}×{sim.shape[1]} map")
    fig = go.Figure(
        [
            go.Heatmap(
                z=sim, colorscale="Viridis", hovertemplate="y %{y}, x %{x}<br>cosine %{z:.4f}<extra></extra>"
            ),
            go.Scatter(
                x=[x],
                y=[y],
                mode="markers",
                marker={"symbol": "x", "size": 12, "color": "red"},
                name="chosen point",
                hoverinfo="skip",
            ),
        ]
    )
    fig.update_layout(
        title=title,
        height=380,
        margin=MARGIN,
        showlegend=False,
        xaxis_title="x",
        yaxis={"title": "y", "autorange": "reversed", "scaleanchor": "x"},
    )
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
        margin=MARGIN,
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
    fig.update_layout(title=title, height=480, margin=MARGIN, showlegend=False)
    return fig


def statistic_comparison(values: dict[str, np.ndarray], name: str) -> go.Figure:
    """{variant: (L, H) statistic} -> side-by-side layer × head heatmaps on one colour scale."""
    arrays = {k: _as_2d(v, f"the {name} of {k!r}") for k, v in values.items()}
    shapes = {a.shape for a in arrays.values()}
    if len(shapes) != 1:
        raise ValueError(f"every variant needs the same (layers, heads) shape, got {shapes}")
    low = min(float(np.nanmin(a)) for a in arrays.values())
    high = max(float(np.nanmax(a)) for a in arrays.values())
    fig = make_subplots(rows=1, cols=len(arrays), subplot_titles=list(arrays), horizontal_spacing=0.04)
    for col, (variant, a) in enumerate(arrays.items(), start=1):
        fig.add_trace(
            go.Heatmap(
                z=a,
                coloraxis="coloraxis",
                text=np.round(a, 2),
                texttemplate="%{text}",
                hovertemplate=f"{variant}<br>layer %{{y}}, head %{{x}}<br>{name} %{{z:.3f}}<extra></extra>",
            ),
            row=1,
            col=col,
        )
    fig.update_xaxes(title="head", dtick=1)
    fig.update_yaxes(dtick=1, autorange="reversed")
    fig.update_yaxes(title="layer", row=1, col=1)
    fig.update_layout(
        title=name,
        height=140 + 40 * next(iter(shapes))[0],
        margin=MARGIN,
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
