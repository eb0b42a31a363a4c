"""Figures for DETR: detections over the image, attention maps laid over it, grids of every layer x head,
per-layer predictions, the matching cost matrices. Arrays and labels in, `go.Figure` out; no model here.

Coordinates are pixels of the displayed image, y downwards. A feature map (h, w) is drawn as a
heatmap whose cells are `cell = (cell_h, cell_w)` pixels, so raw attention (one cell per feature
position) and an upsampled map (k x k cells per position) overlay the same pixels. The image is sent
once per figure as a small JPEG data URI (`Background`), which keeps a redraw to a few milliseconds.
"""

import base64
import io
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from PIL import Image
from plotly.colors import hex_to_rgb, qualitative, sequential
from plotly.subplots import make_subplots

MARGIN = {"l": 10, "r": 10, "t": 40, "b": 10}
PALETTE = qualitative.Plotly
OUTLINE_POINTS = 9  # clickable markers per box edge: a click anywhere on the outline picks the box


def _alpha(t: np.ndarray) -> np.ndarray:
    """Opacity of the overlay colour at relative weight t in [0, 1]: little attention leaves the
    image visible, the peak covers it."""
    return np.sqrt(t)


def _inferno_with_alpha() -> list:
    """Inferno stops as rgba, transparent at 0. Spelled out because plotly.js knows no "Inferno" by
    name and these figures skip the validation that would expand it."""
    stops = sequential.Inferno
    ts = np.linspace(0, 1, len(stops))
    return [
        [float(t), f"rgba({r},{g},{b},{_alpha(t):.3f})"] for t, (r, g, b) in zip(ts, map(hex_to_rgb, stops))
    ]


COLORSCALE = _inferno_with_alpha()


@dataclass(frozen=True)
class Background:
    """An image ready to sit under figures: its data URI and its size in pixels."""

    uri: str  # at most 1024 pixels a side
    thumb: str  # at most 160 pixels a side, for grids of many tiles
    height: int
    width: int


def _data_uri(image: np.ndarray, max_side: int, quality: int = 85) -> str:
    pil = Image.fromarray(image)
    if max(pil.size) > max_side:
        pil.thumbnail((max_side, max_side), Image.BILINEAR)
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def background(image: np.ndarray, max_side: int = 1024) -> Background:
    """(H, W, 3) uint8 -> `Background` (JPEG, at most `max_side` pixels a side; drawn at full size)."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got shape {image.shape} dtype {image.dtype}")
    return Background(
        _data_uri(image, max_side), _data_uri(image, 160, quality=75), image.shape[0], image.shape[1]
    )


def _figure(data: list[dict], layout: dict) -> go.Figure:
    """A figure from plain trace and layout dicts, without Plotly's per-property validation.

    Validation costs more than everything else in a redraw (about 100 ms for a grid of 54 tiles);
    these specs are fixed by this module and covered by its tests, so it is skipped."""
    return go.Figure({"data": data, "layout": layout}, _validate=False)


def _image_layout(bg: Background, height: int, title: str, **extra) -> dict:
    """Layout with the image under the data, pixel axes, y downwards, square pixels."""
    image = {
        "source": bg.uri,
        "xref": "x",
        "yref": "y",
        "x": 0,
        "y": 0,
        "sizex": bg.width,
        "sizey": bg.height,
        "sizing": "stretch",
        "layer": "below",
    }
    return {
        "images": [image],
        "xaxis": {"range": [0, bg.width], "showgrid": False, "zeroline": False, "constrain": "domain"},
        "yaxis": {
            "range": [bg.height, 0],
            "showgrid": False,
            "zeroline": False,
            "scaleanchor": "x",
            "constrain": "domain",
        },
        "title": {"text": title},
        "height": height,
        "margin": MARGIN,
        "showlegend": False,
        "dragmode": "pan",
        "plot_bgcolor": "white",
    } | extra


def _outline(box) -> tuple[np.ndarray, np.ndarray]:
    """xyxy -> points around the box (closed), OUTLINE_POINTS per edge."""
    x0, y0, x1, y1 = box
    t = np.linspace(0, 1, OUTLINE_POINTS, endpoint=False)
    xs = np.concatenate(
        [x0 + (x1 - x0) * t, np.full_like(t, x1), x1 - (x1 - x0) * t, np.full_like(t, x0), [x0]]
    )
    ys = np.concatenate(
        [np.full_like(t, y0), y0 + (y1 - y0) * t, np.full_like(t, y1), y1 - (y1 - y0) * t, [y0]]
    )
    return xs, ys


def _check_boxes(boxes, n: int | None = None) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) if len(boxes) else np.zeros((0, 4))
    if n is not None and len(boxes) != n:
        raise ValueError(f"{len(boxes)} boxes for {n} labels")
    return boxes


def detections_figure(
    bg: Background,
    boxes,
    labels: list[str],
    colours: list[int],
    selected: int | None = None,
    height: int = 520,
    title: str = "",
) -> go.Figure:
    """boxes (D, 4) xyxy pixels with a label each; trace i + 0 is detection i (for click selection).
    `colours[i]` indexes the palette (the class); the `selected` detection is drawn thick."""
    boxes = _check_boxes(boxes, len(labels))
    traces, notes = [], []
    for i, (box, label) in enumerate(zip(boxes, labels)):
        colour = PALETTE[colours[i] % len(PALETTE)]
        xs, ys = _outline(box)
        traces.append(
            {
                "type": "scatter",
                "x": xs,
                "y": ys,
                "mode": "lines+markers",
                "name": label,
                "line": {"color": colour, "width": 4 if i == selected else 2},
                "marker": {"size": 6, "color": colour, "opacity": 0.01},
                "hovertemplate": f"{label}<extra></extra>",
            }
        )
        notes.append(
            {
                "x": box[0],
                "y": box[1],
                "text": label,
                "showarrow": False,
                "xanchor": "left",
                "yanchor": "bottom",
                "font": {"color": "white", "size": 11},
                "bgcolor": colour,
                "borderpad": 1,
            }
        )
    return _figure(traces, _image_layout(bg, height, title, annotations=notes))


def _check_map(attn, name: str = "attention map") -> np.ndarray:
    attn = np.asarray(attn, dtype=np.float32)
    if attn.ndim != 2:
        raise ValueError(f"the {name} must be 2-D (h, w), got shape {attn.shape}")
    return attn


def _map_heatmap(z, cell: tuple[float, float], opacity: float, zmax: float | None, **extra) -> dict:
    """A heatmap trace laid over the image: each value covers `cell` = (height, width) pixels from the
    top left, transparent where the weight is low (COLORSCALE)."""
    ch, cw = cell
    return {
        "type": "heatmap",
        "z": z,
        "x0": cw / 2,
        "dx": cw,
        "y0": ch / 2,
        "dy": ch,
        "colorscale": COLORSCALE,
        "opacity": opacity,
        "zmin": 0,
        "zmax": zmax,
        **extra,
    }


def attention_overlay(
    bg: Background,
    attn,
    cell: tuple[float, float],
    opacity: float = 0.6,
    box=None,
    point: tuple[float, float] | None = None,
    title: str = "",
    height: int = 520,
    zmax: float | None = None,
    clickable: bool = False,
) -> go.Figure:
    """attn (a, b) over the image, each value covering `cell` = (height, width) pixels from the top
    left; an optional box (xyxy) and point (x, y) in pixels are marked. Hover shows the weight.

    With `clickable`, an invisible marker sits at every cell centre and carries the hover: Plotly
    reports clicks on scatter points only, not on heatmap cells, and with no hover cut-off a click
    anywhere picks the nearest centre, i.e. the cell under the pointer (trace 1, point index a * b)."""
    attn = _check_map(attn)
    if not 0 <= opacity <= 1:
        raise ValueError(f"opacity must be within 0..1, got {opacity}")
    ch, cw = cell
    traces = [
        _map_heatmap(
            attn,
            cell,
            opacity,
            zmax,
            hovertemplate="x %{x:.0f}, y %{y:.0f} px<br>weight %{z:.4f}<extra></extra>",
            colorbar={"thickness": 12, "title": {"text": "weight", "side": "right"}},
        )
    ]
    extra = {}
    if clickable:
        rows, cols = np.mgrid[0 : attn.shape[0], 0 : attn.shape[1]]
        traces[0]["hoverinfo"] = "skip"
        traces.append(
            _click_targets(
                (cols.ravel() + 0.5) * cw,
                (rows.ravel() + 0.5) * ch,
                np.stack([rows.ravel(), cols.ravel(), attn.ravel()], -1),
                "cell (%{customdata[0]}, %{customdata[1]})<br>weight %{customdata[2]:.4f}",
            )
        )
        extra = {"hoverdistance": -1}
    if box is not None:
        xs, ys = _outline(np.asarray(box, dtype=np.float64))
        traces.append(
            {
                "type": "scatter",
                "x": xs,
                "y": ys,
                "mode": "lines",
                "line": {"color": "cyan", "width": 2},
                "hoverinfo": "skip",
            }
        )
    if point is not None:
        traces.append(
            {
                "type": "scatter",
                "x": [point[0]],
                "y": [point[1]],
                "mode": "markers",
                "hoverinfo": "skip",
                "marker": {
                    "symbol": "x",
                    "size": 14,
                    "color": "cyan",
                    "line": {"width": 2, "color": "black"},
                },
            }
        )
    return _figure(traces, _image_layout(bg, height, title, **extra))


def _click_targets(x, y, customdata, hover: str) -> dict:
    """Nearly invisible markers that receive clicks (Plotly selects points, not heatmap cells)."""
    return {"type": "scatter", "x": x, "y": y, "customdata": customdata, "mode": "markers",
            "marker": {"size": 6, "color": "white", "opacity": 0.01},
            "hovertemplate": hover + "<extra></extra>"}  # fmt: skip


def map_grid(
    bg: Background,
    maps,
    row_labels: list[str],
    col_labels: list[str],
    cell: tuple[float, float],
    opacity: float = 0.6,
    point: tuple[float, float] | None = None,
    title: str = "",
    tile_width: int = 150,
    names: tuple[str, str] = ("layer", "column"),
) -> go.Figure:
    """maps (R, C, h, w): a grid of overlays, one per (row, column), e.g. layer x head. Each tile is
    coloured relative to its own maximum (heads differ in sharpness). Trace 1 holds one click target
    per tile centre (row-major), whose hover names the tile and its largest weight.

    The grid is one heatmap with a blank cell between tiles and the image under every tile, so it
    draws and serialises as fast as a single map."""
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim != 4:
        raise ValueError(f"expected maps of shape (rows, cols, h, w), got {maps.shape}")
    rows, cols, h, w = maps.shape
    if (len(row_labels), len(col_labels)) != (rows, cols):
        raise ValueError(
            f"{len(row_labels)} row and {len(col_labels)} column labels for a {rows}x{cols} grid"
        )
    peak = maps.max(axis=(2, 3), keepdims=True)
    rel = np.divide(maps, peak, out=np.zeros_like(maps), where=peak > 0)
    z = np.full((rows, h + 1, cols, w + 1), np.nan, dtype=np.float32)
    z[:, :h, :, :w] = rel.transpose(0, 2, 1, 3)  # (R, h, C, w)
    z = z.reshape(rows * (h + 1), cols * (w + 1))[:-1, :-1]
    ch, cw = cell
    tile_h, tile_w = (h + 1) * ch, (w + 1) * cw
    r_idx, c_idx = np.mgrid[0:rows, 0:cols]
    centres_x, centres_y = (c_idx.ravel() * tile_w + w * cw / 2), (r_idx.ravel() * tile_h + h * ch / 2)
    info = np.stack([r_idx.ravel(), c_idx.ravel(), maps.max(axis=(2, 3)).ravel()], -1)
    traces = [
        _map_heatmap(z, cell, opacity, 1, showscale=False, hoverinfo="skip"),
        _click_targets(
            centres_x,
            centres_y,
            info,
            f"{names[0]} %{{customdata[0]}}, {names[1]} "
            "%{customdata[1]}<br>largest weight %{customdata[2]:.4f}<br>click to open",
        ),
    ]
    tiles = [
        {
            "source": bg.thumb,
            "xref": "x",
            "yref": "y",
            "x": c * tile_w,
            "y": r * tile_h,
            "sizex": bg.width,
            "sizey": bg.height,
            "sizing": "stretch",
            "layer": "below",
        }
        for r in range(rows)
        for c in range(cols)
    ]
    if point is not None:
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "hoverinfo": "skip",
                "x": [c * tile_w + point[0] for r in range(rows) for c in range(cols)],
                "y": [r * tile_h + point[1] for r in range(rows) for c in range(cols)],
                "marker": {"symbol": "x", "size": 7, "color": "cyan"},
            }
        )
    margin = {"l": 70, "r": 10, "t": 70, "b": 10}
    plot_w = cols * tile_width
    layout = {
        "images": tiles,
        "xaxis": {
            "range": [0, cols * tile_w - cw],
            "tickvals": [(c + 0.5) * tile_w for c in range(cols)],
            "ticktext": col_labels,
            "side": "top",
            "showgrid": False,
            "zeroline": False,
            "constrain": "domain",
        },
        "yaxis": {
            "range": [rows * tile_h - ch, 0],
            "tickvals": [(r + 0.5) * tile_h for r in range(rows)],
            "ticktext": row_labels,
            "showgrid": False,
            "zeroline": False,
            "scaleanchor": "x",
            "constrain": "domain",
        },
        "title": {"text": title},
        "margin": margin,
        "showlegend": False,
        "plot_bgcolor": "white",
        "hoverdistance": -1,
        "width": int(margin["l"] + margin["r"] + plot_w),
        "height": int(margin["t"] + margin["b"] + plot_w * (rows * tile_h - ch) / (cols * tile_w - cw)),
    }
    return _figure(traces, layout)


def layer_predictions(
    bg: Background,
    boxes,
    labels: list[str],
    colours: list[int],
    is_object,
    layer: int,
    height: int = 520,
    title: str = "",
) -> go.Figure:
    """boxes (L, N, 4) xyxy of all N queries after every decoder layer: the boxes after `layer`
    (queries predicting "no object" thin and dotted) and each query's box centre path through the layers."""
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim != 3 or boxes.shape[2] != 4:
        raise ValueError(f"expected boxes of shape (layers, queries, 4), got {boxes.shape}")
    n_layers, n = boxes.shape[:2]
    is_object = np.asarray(is_object, dtype=bool)
    if len(labels) != n or len(colours) != n or is_object.shape != (n,):
        raise ValueError(
            f"{len(labels)} labels, {len(colours)} colours, {is_object.shape} flags for {n} queries"
        )
    if not 0 <= layer < n_layers:
        raise ValueError(f"layer {layer} is outside 0..{n_layers - 1}")
    centres = np.stack([(boxes[..., 0] + boxes[..., 2]) / 2, (boxes[..., 1] + boxes[..., 3]) / 2], -1)
    traces = []
    for q in range(n):
        colour = PALETTE[colours[q] % len(PALETTE)] if is_object[q] else "rgba(200,200,200,0.8)"
        xs, ys = _outline(boxes[layer, q])
        solid = bool(is_object[q])
        traces.append(
            {
                "type": "scatter",
                "x": xs,
                "y": ys,
                "mode": "lines",
                "hovertemplate": f"query {q}: {labels[q]}<extra></extra>",
                "line": {"color": colour, "width": 2 if solid else 1, "dash": "solid" if solid else "dot"},
            }
        )
        traces.append(
            {
                "type": "scatter",
                "x": centres[: layer + 1, q, 0],
                "y": centres[: layer + 1, q, 1],
                "mode": "lines+markers",
                "line": {"color": colour, "width": 1},
                "marker": {"size": 4},
                "hoverinfo": "skip",
            }
        )
    return _figure(traces, _image_layout(bg, height, title))


def matching_heatmaps(
    costs: dict[str, np.ndarray], pred, gt, query_labels: list[str], gt_labels: list[str], title: str = ""
) -> go.Figure:
    """costs name -> (N, M) matrix; the Hungarian assignment (pred[k], gt[k]) is circled on each.
    Each matrix has its own colour bar: the parts live on different ranges (class in [-1, 0], GIoU in
    [-2, 2], L1 up to 20)."""
    names = list(costs)
    mats = [np.asarray(costs[k], dtype=np.float64) for k in names]
    n, m = len(query_labels), len(gt_labels)
    for k, mat in zip(names, mats):
        if mat.shape != (n, m):
            raise ValueError(f"cost {k!r} has shape {mat.shape}, expected ({n}, {m})")
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, horizontal_spacing=0.07)
    for i, mat in enumerate(mats):
        fig.add_trace(
            go.Heatmap(
                z=mat,
                colorscale="RdBu_r",
                zmid=0,
                colorbar={"x": fig.layout[f"xaxis{i + 1}"].domain[1] + 0.003, "thickness": 8, "len": 0.9},
                customdata=np.stack(np.meshgrid(query_labels, gt_labels, indexing="ij"), -1),
                hovertemplate="%{customdata[0]}<br>→ %{customdata[1]}<br>cost %{z:.3f}<extra></extra>",
            ),
            row=1,
            col=i + 1,
        )
        fig.add_trace(
            go.Scatter(
                x=list(gt),
                y=list(pred),
                mode="markers",
                hoverinfo="skip",
                marker={"symbol": "circle-open", "size": 11, "color": "black", "line": {"width": 2}},
            ),
            row=1,
            col=i + 1,
        )
    fig.update_yaxes(
        autorange="reversed", tickvals=list(range(n)), ticktext=query_labels, showticklabels=False
    )
    fig.update_yaxes(showticklabels=True, row=1, col=1)
    fig.update_xaxes(tickvals=list(range(m)), ticktext=gt_labels, tickangle=-45)
    fig.update_layout(
        title=title,
        height=max(320, 60 + 16 * n),
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
        showlegend=False,
    )
    return fig


def matching_scene(
    bg: Background, gt_boxes, gt_labels: list[str], pred_boxes, pred, gt, height: int = 520, title: str = ""
) -> go.Figure:
    """Ground-truth boxes (dashed white) and the matched predictions (coloured), linked centre to centre."""
    gt_boxes = _check_boxes(gt_boxes, len(gt_labels))
    pred_boxes = np.asarray(pred_boxes, dtype=np.float64)
    traces = []
    for j, box in enumerate(gt_boxes):
        xs, ys = _outline(box)
        traces.append(
            {
                "type": "scatter",
                "x": xs,
                "y": ys,
                "mode": "lines",
                "line": {"color": "white", "width": 2, "dash": "dash"},
                "hovertemplate": f"ground truth {j}: {gt_labels[j]}<extra></extra>",
            }
        )
    for k, (q, j) in enumerate(zip(pred, gt)):
        colour = PALETTE[k % len(PALETTE)]
        xs, ys = _outline(pred_boxes[q])
        traces.append(
            {
                "type": "scatter",
                "x": xs,
                "y": ys,
                "mode": "lines",
                "line": {"color": colour, "width": 2},
                "hovertemplate": f"query {q} → ground truth {j}<extra></extra>",
            }
        )
        pc, gc = pred_boxes[q], gt_boxes[j]
        traces.append(
            {
                "type": "scatter",
                "x": [(pc[0] + pc[2]) / 2, (gc[0] + gc[2]) / 2],
                "y": [(pc[1] + pc[3]) / 2, (gc[1] + gc[3]) / 2],
                "mode": "lines+markers",
                "line": {"color": colour, "width": 2},
                "hoverinfo": "skip",
            }
        )
    return _figure(traces, _image_layout(bg, height, title))


def _lut(colorscale: list[str]) -> np.ndarray:
    """A Plotly sequential scale (list of colours) -> (256, 3) float lookup table."""
    rgb = np.array(
        [
            hex_to_rgb(c)
            if c.startswith("#")
            else tuple(int(v) for v in c[c.index("(") + 1 : -1].split(",")[:3])
            for c in colorscale
        ],
        float,
    )
    t = np.linspace(0, 1, len(rgb))
    s = np.linspace(0, 1, 256)
    return np.stack([np.interp(s, t, rgb[:, k]) for k in range(3)], -1)


_INFERNO = _lut(sequential.Inferno)


def overlay_rgb(
    image, attn, extent: tuple[float, float], opacity: float = 0.6, smooth: bool = True
) -> np.ndarray:
    """The image with `attn` (h, w) blended over it, for a PNG download: the map covers `extent` =
    (height, width) pixels from the top left (it can pass the image's edge), resized bilinearly
    (`smooth`) or as blocks, one per feature cell, and
    coloured and made opaque as the overlay's scale, 0 to its maximum. -> (H, W, 3) uint8."""
    image = np.asarray(image)
    attn = _check_map(attn)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {image.shape}")
    big = (int(round(extent[1])), int(round(extent[0])))  # PIL size is (width, height)
    up = np.asarray(Image.fromarray(attn, mode="F").resize(big, Image.BILINEAR if smooth else Image.NEAREST))[
        : image.shape[0], : image.shape[1]
    ]
    peak = up.max()
    rel = np.clip(up / peak if peak > 0 else up * 0, 0, 1)
    colour = _INFERNO[(rel * 255).astype(np.uint8)]
    alpha = (opacity * _alpha(rel))[..., None]
    return np.clip(image * (1 - alpha) + colour * alpha, 0, 255).astype(np.uint8)
