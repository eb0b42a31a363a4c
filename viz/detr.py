"""Figures for DETR: detections over the image, attention maps laid over it, grids of every layer x head,
per-layer predictions, the matching cost matrices. Arrays and labels in, `go.Figure` out; no model here.
Matrices (the matching costs) are drawn by the heatmap core, `viz.heatmap`; the image overlays draw their
own heatmap traces over the picture, with the core's margin and colour tables.

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

from viz.heatmap import MARGIN, colour_lut, heatmap

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


def _outlines(boxes) -> tuple[np.ndarray, np.ndarray]:
    """(B, 4) xyxy -> x and y of every box's closed outline, OUTLINE_POINTS per edge, with a NaN point
    after each box (a gap in the line): (B * OUTLINE,) each. Many boxes then draw as one trace."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x0, y0, x1, y1 = (boxes[:, i : i + 1] for i in range(4))  # (B, 1) each
    t = np.linspace(0, 1, OUTLINE_POINTS, endpoint=False)[None]  # (1, P)
    edge, gap = np.ones_like(t), np.full_like(x0, np.nan)
    xs = np.concatenate([x0 + (x1 - x0) * t, x1 * edge, x1 - (x1 - x0) * t, x0 * edge, x0, gap], 1)
    ys = np.concatenate([y0 * edge, y0 + (y1 - y0) * t, y1 * edge, y1 - (y1 - y0) * t, y0, gap], 1)
    return xs.ravel(), ys.ravel()  # (B * OUTLINE,)


OUTLINE = 4 * OUTLINE_POINTS + 2  # points per box in `_outlines`: four edges, the closing corner, a gap


def _outline(box) -> tuple[np.ndarray, np.ndarray]:
    """xyxy -> points around the box (closed), OUTLINE_POINTS per edge."""
    xs, ys = _outlines([box])
    return xs[:-1], ys[:-1]


def _check_boxes(boxes, n: int | None = None) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) if len(boxes) else np.zeros((0, 4))
    if n is not None and len(boxes) != n:
        raise ValueError(f"{len(boxes)} boxes for {n} labels")
    return boxes


def _box_traces(boxes, colour: str, ids, labels: list[str], width: float, **extra) -> dict:
    """Boxes (B, 4) of one colour as one trace; every point of a box's outline carries the box's id as
    customdata (a click sends it back) and its label as hover text."""
    xs, ys = _outlines(boxes)
    return {
        "type": "scatter",
        "x": xs,
        "y": ys,
        "mode": "lines+markers",
        "customdata": np.repeat(np.asarray(ids, dtype=np.int64), OUTLINE),
        "text": np.repeat(np.asarray(labels, dtype=object), OUTLINE).tolist(),
        "line": {"color": colour, "width": width},
        "marker": {"size": 6, "color": colour, "opacity": 0.01},
        "hovertemplate": "%{text}<extra></extra>",
    } | extra


def detections_figure(
    bg: Background,
    boxes,
    labels: list[str],
    colours: list[int],
    selected: int | None = None,
    height: int = 520,
    title: str = "",
    ids=None,
) -> go.Figure:
    """boxes (D, 4) xyxy pixels with a label each, drawn in the palette colour `colours[i]` (the class),
    the `selected` detection thick. Every point of a box's outline carries `ids[i]` (default i, e.g. the
    query) as customdata, which a click sends back. One trace per colour, the selected box last: a
    hundred boxes draw and serialise as fast as a few."""
    boxes = _check_boxes(boxes, len(labels))
    ids = np.arange(len(labels)) if ids is None else np.asarray(ids)
    if len(ids) != len(labels) or len(colours) != len(labels):
        raise ValueError(f"{len(ids)} ids and {len(colours)} colours for {len(labels)} labels")
    colour_of = [PALETTE[c % len(PALETTE)] for c in colours]
    traces = []
    for colour in dict.fromkeys(colour_of):
        pick = [i for i, c in enumerate(colour_of) if c == colour and i != selected]
        if pick:
            traces.append(_box_traces(boxes[pick], colour, ids[pick], [labels[i] for i in pick], 2))
    if selected is not None:
        traces.append(
            _box_traces(boxes[[selected]], colour_of[selected], ids[[selected]], [labels[selected]], 4)
        )
    notes = [
        {"x": box[0], "y": box[1], "text": label, "showarrow": False, "xanchor": "left", "yanchor": "bottom",
         "font": {"color": "white", "size": 11}, "bgcolor": colour, "borderpad": 1}
        for box, label, colour in zip(boxes, labels, colour_of)
    ]  # fmt: skip
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
                np.stack([rows.ravel(), cols.ravel(), attn.ravel()], -1).astype(np.float32),
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


def _click_targets(x, y, customdata, hover: str, text=None) -> dict:
    """Nearly invisible markers that receive clicks (Plotly selects points, not heatmap cells); a click
    sends the point's customdata back."""
    return {"type": "scatter", "x": x, "y": y, "customdata": customdata, "text": text, "mode": "markers",
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
    row_ids=None,
    col_ids=None,
) -> go.Figure:
    """maps (R, C, h, w): a grid of overlays, one per (row, column), e.g. layer x head. Each tile is
    coloured relative to its own maximum (heads differ in sharpness), sent as one byte a cell. Trace 1
    holds one click target per tile centre (row-major), whose hover names the tile (its row and column
    labels) and its largest weight, and whose customdata is [row id, column id, largest weight]: the ids
    (default the positions; any numbers or strings, e.g. a query or "mean") are what a click sends back.

    The grid is one heatmap with a blank cell between tiles and the image under every tile, so it
    draws and serialises as fast as a single map."""
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim != 4:
        raise ValueError(f"expected maps of shape (rows, cols, h, w), got {maps.shape}")
    rows, cols, h, w = maps.shape
    row_ids = list(range(rows)) if row_ids is None else list(row_ids)
    col_ids = list(range(cols)) if col_ids is None else list(col_ids)
    if (len(row_labels), len(col_labels), len(row_ids), len(col_ids)) != (rows, cols, rows, cols):
        raise ValueError(
            f"{len(row_labels)} row and {len(col_labels)} column labels, {len(row_ids)} row and "
            f"{len(col_ids)} column ids for a {rows}x{cols} grid"
        )
    peak = maps.max(axis=(2, 3), keepdims=True)
    rel = np.divide(maps, peak, out=np.zeros_like(maps), where=peak > 0)
    # one byte a cell, 0..255 of each tile's maximum; the gaps between tiles are 0, which the colour
    # scale draws transparent, as it draws no attention
    z = np.zeros((rows, h + 1, cols, w + 1), dtype=np.uint8)
    z[:, :h, :, :w] = np.rint(255 * rel.transpose(0, 2, 1, 3))  # (R, h, C, w)
    z = z.reshape(rows * (h + 1), cols * (w + 1))[:-1, :-1]
    ch, cw = cell
    tile_h, tile_w = (h + 1) * ch, (w + 1) * cw
    r_idx, c_idx = np.mgrid[0:rows, 0:cols]
    centres_x, centres_y = (c_idx.ravel() * tile_w + w * cw / 2), (r_idx.ravel() * tile_h + h * ch / 2)
    peaks = peak.reshape(rows, cols)
    info = [[row_ids[r], col_ids[c], round(float(peaks[r, c]), 6)] for r in range(rows) for c in range(cols)]
    names = [f"{row_labels[r]}, {col_labels[c]}" for r in range(rows) for c in range(cols)]
    traces = [
        _map_heatmap(z, cell, opacity, 255, showscale=False, hoverinfo="skip"),
        _click_targets(
            centres_x,
            centres_y,
            info,
            "%{text}<br>largest weight %{customdata[2]:.4f}<br>click to open",
            text=names,
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
    margin = MARGIN | {"l": 70, "t": 70}  # room for the row and column labels
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
    paths = np.concatenate([centres[: layer + 1], np.full((1, n, 2), np.nan)])  # (layer + 2, N, 2), a gap
    grey = "rgba(200,200,200,0.8)"
    colour_of = [PALETTE[colours[q] % len(PALETTE)] if is_object[q] else grey for q in range(n)]
    traces = []
    for colour in dict.fromkeys(colour_of):  # one trace of boxes and one of centre paths per colour
        pick = [q for q in range(n) if colour_of[q] == colour]
        solid = colour != grey
        xs, ys = _outlines(boxes[layer, pick])
        traces.append(
            {
                "type": "scatter",
                "x": xs,
                "y": ys,
                "mode": "lines",
                "text": [f"query {q}: {labels[q]}" for q in pick for _ in range(OUTLINE)],
                "hovertemplate": "%{text}<extra></extra>",
                "line": {"color": colour, "width": 2 if solid else 1, "dash": "solid" if solid else "dot"},
            }
        )
        traces.append(
            {
                "type": "scatter",
                "x": paths[:, pick, 0].T.ravel(),  # query by query, each path then a gap
                "y": paths[:, pick, 1].T.ravel(),
                "mode": "lines+markers",
                "line": {"color": colour, "width": 1},
                "marker": {"size": 4},
                "hoverinfo": "skip",
            }
        )
    return _figure(traces, _image_layout(bg, height, title))


def matching_heatmap(
    cost, pred, gt, query_labels: list[str], gt_labels: list[str], title: str = ""
) -> go.Figure:
    """cost (N, M): one part of the matching cost, drawn by the heatmap core with each value printed
    (2 decimals) and centred on 0, and the cells of the Hungarian assignment (pred[k], gt[k]) outlined,
    so that their values stay readable. The parts live on different ranges (class in [-1, 0], GIoU in
    [-2, 2], L1 up to 20), so each has its own figure."""
    cost = np.asarray(cost, dtype=np.float64)
    n, m = len(query_labels), len(gt_labels)
    if cost.shape != (n, m):
        raise ValueError(f"cost {title!r} has shape {cost.shape}, expected ({n}, {m})")
    fig = heatmap(
        cost, query_labels, gt_labels, title=title, row_title="prediction", col_title="ground truth",
        colorscale="RdBu_r", zmid=0.0, value_name="cost", decimals=2, height=max(320, 80 + 22 * n),
    )  # fmt: skip
    for q, j in zip(pred, gt):  # on category axes, shapes take the categories' positions 0..n-1
        fig.add_shape(
            type="rect", xref="x", yref="y", x0=j - 0.5, x1=j + 0.5, y0=q - 0.5, y1=q + 0.5,
            line={"color": "black", "width": 3},
        )  # fmt: skip
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


_INFERNO = colour_lut(sequential.Inferno)  # (256, 3) uint8, the overlay's scale without its alpha


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
