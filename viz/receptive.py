"""Figures of the receptive-field lab: gradient profiles, timing, 2-D gradient maps and the
conv-as-attention construction (norms and residuals are in viz/norms.py).

Every function takes numpy arrays plus labels, checks their shapes and returns a `go.Figure`; none
knows a model. Matrices are drawn by the heatmap core (`viz.heatmap.heatmap`), several side by side
with `heatmap_panels`.
"""

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from viz.heatmap import MARGIN, heatmap, mask_backing, masked_colour

PALETTE = qualitative.Plotly + qualitative.D3
PIXELS = {"row_title": "y", "col_title": "x"}  # hover names of an image's axes


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def vector(values, size: int | None, name: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or (size is not None and values.size != size):
        want = f"({size},)" if size is not None else "1-D"
        raise ValueError(f"{name} must be {want}, got shape {values.shape}")
    return values


def heatmap_panels(
    panels: list[go.Figure], titles: list[str], cols: int | None = None, title: str = "", **spacing
) -> go.Figure:
    """Figures of the heatmap core, one per panel, laid out in a grid of subplots (row by row, `cols` a
    row): each panel keeps its trace (colours, mask, hover, raster or cells) and its axes; the figure
    takes the core's mask grey and margin, with room above the panels' titles for its own `title`.
    Only the caller knows which panel shows a colour bar."""
    cols = cols or len(panels)
    rows = -(-len(panels) // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, **spacing)
    places = range(len(panels))
    fig.add_traces(
        [p.data[0] for p in panels], rows=[i // cols + 1 for i in places], cols=[i % cols + 1 for i in places]
    )
    axes = {}  # make_subplots numbers the axes row by row: xaxis, xaxis2, ...
    for i, panel in enumerate(panels):
        suffix = str(i + 1) if i else ""
        axes[f"xaxis{suffix}"] = panel.layout.xaxis.to_plotly_json()
        axes[f"yaxis{suffix}"] = panel.layout.yaxis.to_plotly_json()
        if masked_colour(panel.layout):  # the panel's grey backing, on this panel's axes
            x, y = panel.layout.xaxis.range, panel.layout.yaxis.range
            fig.add_shape(mask_backing(x, y, xref=f"x{suffix}", yref=f"y{suffix}"))
    fig.update_layout(axes, title=title, margin=MARGIN | ({"t": 70} if title else {}))
    return fig


def effective_field_figure(gradients: dict, fields: dict, t: int, log: bool = True) -> go.Figure:
    """gradients: model name -> (T,) mean |dy_t/dx_s|; fields: model name -> (first, last) theoretical field.

    Top: each profile divided by its maximum (exact zeros are left out on a log axis: they are the
    positions the output cannot see). Bottom: each model's theoretical field as a bar over s.
    """
    if not gradients:
        raise ValueError("no model to draw")
    if set(fields) != set(gradients):
        raise ValueError(
            f"fields {sorted(fields)} do not name the same models as gradients {sorted(gradients)}"
        )
    length = len(next(iter(gradients.values())))
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.68, 0.32], vertical_spacing=0.04)
    s = np.arange(length)
    for i, (name, grad) in enumerate(gradients.items()):
        grad = vector(grad, length, f"gradient of {name}")
        peak = grad.max()
        shown = grad / peak if peak > 0 else grad
        if log:
            shown = np.where(shown > 0, shown, np.nan)
        fig.add_trace(
            go.Scatter(
                x=s,
                y=shown,
                name=name,
                legendgroup=name,
                mode="lines+markers",
                marker={"size": 4},
                line={"color": colour(i)},
                customdata=grad,
                hovertemplate=f"{name}<br>s=%{{x}}<br>|dy/dx| %{{customdata:.3g}}<extra></extra>",
            ),
            row=1,
            col=1,
        )
        first, last = fields[name]
        fig.add_trace(
            go.Scatter(
                x=[first - 0.4, last + 0.4],
                y=[name, name],
                mode="lines",
                line={"color": colour(i), "width": 9},
                legendgroup=name,
                showlegend=False,
                hovertemplate=f"{name}: theoretical field s = {first}..{last}<extra></extra>",
            ),
            row=2,
            col=1,
        )
    for row in (1, 2):
        fig.add_vline(x=t, line={"dash": "dot", "color": "grey"}, row=row, col=1)
    fig.update_yaxes(title="|∂y_t/∂x_s| / max", type="log" if log else "linear", row=1, col=1)
    fig.update_yaxes(title="theoretical field", autorange="reversed", row=2, col=1)
    fig.update_xaxes(title="input position s", range=[-0.5, length - 0.5], row=2, col=1)
    fig.update_layout(title=f"Effective receptive field of output t = {t}", height=620, margin=MARGIN)
    return fig


def width_vs_depth_figure(depths, effective, theoretical) -> go.Figure:
    """CNN field radius against depth: effective (from gradients), theoretical, and c·√depth fitted."""
    depths = vector(depths, None, "depths")
    effective = vector(effective, depths.size, "effective radii")
    theoretical = vector(theoretical, depths.size, "theoretical radii")
    c = float((effective * np.sqrt(depths)).sum() / depths.sum())  # least squares for effective ≈ c·√L
    dense = np.linspace(depths.min(), depths.max(), 100)
    fig = go.Figure(
        [
            go.Scatter(x=depths, y=theoretical, name="theoretical (half-width)", mode="lines+markers"),
            go.Scatter(x=depths, y=effective, name="effective (RMS distance)", mode="lines+markers"),
            go.Scatter(
                x=dense, y=c * np.sqrt(dense), name=f"{c:.2f}·√depth", mode="lines", line={"dash": "dot"}
            ),
        ]
    )
    fig.update_layout(
        title="1-D CNN: field radius against depth",
        xaxis_title="depth (layers)",
        yaxis_title="radius (positions)",
        height=380,
        margin=MARGIN,
    )
    return fig


def timing_figure(lengths, times: dict, steps: dict, device: str) -> go.Figure:
    """lengths (n,); times and steps: model name -> (n,) seconds and sequential steps, log-log."""
    lengths = vector(lengths, None, "lengths")
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=(f"forward time on {device}", "steps that wait for the one before"),
        horizontal_spacing=0.1,
    )
    for i, (name, seconds) in enumerate(times.items()):
        seconds = vector(seconds, lengths.size, f"times of {name}")
        count = vector(steps[name], lengths.size, f"steps of {name}")
        style = {"color": colour(i)}
        fig.add_trace(
            go.Scatter(
                x=lengths, y=seconds * 1e3, name=name, legendgroup=name, line=style, mode="lines+markers"
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(x=lengths, y=count, name=name, legendgroup=name, showlegend=False, line=style),
            row=1,
            col=2,
        )
    fig.update_xaxes(
        type="log", title="sequence length n", tickvals=lengths, ticktext=[f"{n:g}" for n in lengths]
    )
    fig.update_yaxes(type="log", title="ms", dtick=1, row=1, col=1)
    fig.update_yaxes(type="log", title="sequential steps", dtick=1, row=1, col=2)
    fig.update_layout(height=420, margin=MARGIN)
    return fig


def field_maps_figure(maps, depths, radii, image=None) -> go.Figure:
    """maps (D, H, W) gradient maps of the centre output, one per depth; radii (D,) theoretical half-sides.

    Each map is divided by its maximum; the square the theoretical field covers is outlined. image
    (H, W) in [0, 1], if given, is drawn first.
    """
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim != 3:
        raise ValueError(f"maps must be (depths, H, W), got shape {maps.shape}")
    depths = vector(depths, maps.shape[0], "depths")
    radii = vector(radii, maps.shape[0], "radii")
    h, w = maps.shape[1:]
    panels, titles = [], []
    if image is not None:
        image = np.asarray(image, dtype=np.float64)
        if image.shape != (h, w):
            raise ValueError(f"image {image.shape} does not match the maps {(h, w)}")
        panels.append(heatmap(image, colorscale="gray", showscale=False, value_name="brightness", **PIXELS))
        titles.append("image")
    for i, m in enumerate(maps):
        panels.append(
            heatmap(
                m / m.max(), colorscale="Viridis", zmin=0, zmax=1, showscale=i == len(maps) - 1,
                value_name="share of max", **PIXELS,
            )
        )  # fmt: skip
        titles.append(f"depth {int(depths[i])}")
    title = "2-D CNN: |∂y_centre/∂x| per depth (dotted: theoretical field)"
    fig = heatmap_panels(panels, titles, title=title, horizontal_spacing=0.02)
    cy, cx = h // 2, w // 2
    for i, r in enumerate(radii):
        fig.add_shape(
            type="rect",
            x0=cx - r - 0.5,
            x1=cx + r + 0.5,
            y0=cy - r - 0.5,
            y1=cy + r + 0.5,
            line={"color": "cyan", "dash": "dot"},
            row=1,
            col=i + 1 + len(panels) - len(maps),
        )
    fig.update_xaxes(showticklabels=False, title=None, range=[-0.5, w - 0.5], constrain="domain")
    fig.update_yaxes(showticklabels=False, title=None, constrain="domain")
    for col in range(1, len(panels) + 1):
        fig.update_yaxes(scaleanchor=f"x{col if col > 1 else ''}", row=1, col=col)
    fig.update_layout(height=290)
    return fig


def span_figure(
    cnn_depths, cnn_distances, attention_distances=None, uniform: float | None = None
) -> go.Figure:
    """Mean distance in pixels: the CNN's gradient per depth, and each DETR encoder head per layer.

    attention_distances (L, nh) or None (no DETR available); uniform, if given, is the distance of a
    head that attends to the whole image evenly, drawn as a dashed line.
    """
    cnn_depths = vector(cnn_depths, None, "CNN depths")
    cnn_distances = vector(cnn_distances, cnn_depths.size, "CNN distances")
    fig = make_subplots(
        rows=1,
        cols=2,
        shared_yaxes=True,
        subplot_titles=("CNN effective field", "DETR encoder self-attention"),
        horizontal_spacing=0.04,
    )
    fig.add_trace(
        go.Scatter(x=cnn_depths, y=cnn_distances, mode="lines+markers", name="CNN (gradient)"), row=1, col=1
    )
    if attention_distances is not None:
        attention_distances = np.asarray(attention_distances, dtype=np.float64)
        if attention_distances.ndim != 2:
            raise ValueError(f"attention distances must be (layers, heads), got {attention_distances.shape}")
        n_layers, n_heads = attention_distances.shape
        for h in range(n_heads):
            fig.add_trace(
                go.Scatter(
                    x=np.arange(1, n_layers + 1),
                    y=attention_distances[:, h],
                    mode="markers",
                    marker={"color": colour(h), "size": 9},
                    name=f"head {h}",
                    hovertemplate=f"layer %{{x}} head {h}<br>%{{y:.1f}} px<extra></extra>",
                ),
                row=1,
                col=2,
            )
        fig.update_xaxes(dtick=1, row=1, col=2)
    if uniform is not None:
        fig.add_hline(
            y=uniform,
            line={"dash": "dash", "color": "grey"},
            annotation_text="uniform over the image",
            annotation_position="bottom right",
            row=1,
            col=2,
        )
    fig.update_xaxes(title="CNN depth", row=1, col=1)
    fig.update_xaxes(title="encoder layer", row=1, col=2)
    fig.update_yaxes(title="mean distance (pixels)", row=1, col=1)
    fig.update_layout(height=380, margin=MARGIN)
    return fig


def construction_error_figure(alphas, errors, threshold: float = 1e-3) -> go.Figure:
    """Relative error of the attention-built convolution against the sharpness α, log-log."""
    alphas = vector(alphas, None, "alphas")
    errors = vector(errors, alphas.size, "errors")
    shown = np.where(errors > 0, errors, np.nan)  # an exact 0 cannot sit on a log axis
    fig = go.Figure(
        go.Scatter(
            x=alphas,
            y=shown,
            mode="lines+markers",
            name="max |attention − conv| / max |conv|",
            hovertemplate="α=%{x:.3g}<br>error %{y:.2e}<extra></extra>",
        )
    )
    fig.add_hline(y=threshold, line={"dash": "dot", "color": "grey"}, annotation_text=f"{threshold:g}")
    fig.update_layout(
        title="Attention against the convolution: error vs α",
        xaxis={"type": "log", "title": "sharpness α"},
        yaxis={"type": "log", "title": "relative error", "exponentformat": "power"},
        height=380,
        margin=MARGIN,
    )
    return fig


def head_maps_figure(maps, kernel_size: int) -> go.Figure:
    """maps (K², h, w): the attention of each head from the centre pixel, laid out like the kernel taps."""
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim != 3 or maps.shape[0] != kernel_size**2:
        raise ValueError(f"maps must be ({kernel_size**2}, h, w) for a {kernel_size}x{kernel_size} kernel")
    half = kernel_size // 2
    titles = [f"Δ=({i - half},{j - half})" for i in range(kernel_size) for j in range(kernel_size)]
    h, w = maps.shape[1:]
    panels = [
        heatmap(
            m, colorscale="Blues", zmin=0, zmax=1, showscale=idx == 0, row_start=-(h // 2),
            col_start=-(w // 2), row_title="key offset y", col_title="key offset x", value_name="weight",
        )
        for idx, m in enumerate(maps)
    ]  # fmt: skip
    title = "Each head attends to one kernel offset"
    fig = heatmap_panels(
        panels, titles, cols=kernel_size, title=title, horizontal_spacing=0.03, vertical_spacing=0.08
    )
    fig.update_xaxes(showticklabels=False, title=None)
    fig.update_yaxes(showticklabels=False, title=None)
    fig.update_layout(height=450)
    return fig
