"""The one heatmap core: every matrix of the app is drawn here, small ones as cells, big ones as images.

- Masked cells are drawn one way everywhere: left out of the data (NaN) over a rectangle of `MASK_GREY`
  behind the cells (`mask_backing`); hover skips them.
- A matrix of more than `CELL_BUDGET` cells is drawn as a colour-mapped PNG (`raster`): one pixel per
  cell, or max-pooled so that no side passes `RASTER_SIDE`, with token ticks. Its bytes grow with the
  pixels, not with the cells' JSON; a page pairs it with a zoom window drawn by `heatmap`.
- Axes are positions 0..n-1. Hover names a cell from the axis labels (one string per row and per
  column, never one per cell); values printed on cells are rounded (`decimals`).
"""

import base64
import functools
import io
import warnings

import numpy as np
import plotly.graph_objects as go
import torch
from PIL import Image
from plotly.colors import get_colorscale, hex_to_rgb, sample_colorscale

MASK_GREY = "#d9d9d9"  # masked cells, everywhere
MARGIN = {"l": 10, "r": 10, "t": 40, "b": 10}  # every figure's margin
CELL_BUDGET = 256 * 256  # above this many cells a matrix is drawn as a raster image
RASTER_SIDE = 1024  # a raster's longest side, in pixels, at most
MAX_TICK_LABELS = 64  # beyond this, tick labels overlap: ticks are spread out
RASTER_TICKS = 16  # ticks on a raster's axis
POOL_BAND_BYTES = 2 * 2**20  # pool_max reads rows in bands of about this size: its temporaries stay small


def check_matrix(matrix, row_labels=None, col_labels=None, name: str = "matrix") -> np.ndarray:
    """matrix as a 2-D float array whose shape matches the labels (when given)."""
    matrix = np.asarray(matrix, dtype=np.float32 if np.asarray(matrix).dtype == np.float32 else np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"a {name} is 2-D (rows x columns), got shape {matrix.shape}")
    for axis, labels in ((0, row_labels), (1, col_labels)):
        if labels is not None and len(labels) != matrix.shape[axis]:
            raise ValueError(
                f"{name} {matrix.shape} does not match {len(row_labels or ())} row and "
                f"{len(col_labels or ())} column labels"
            )
    return matrix


def mask_of(mask, shape: tuple[int, int]) -> np.ndarray | None:
    """A figure's `mask` (None, or bool broadcastable to `shape`, True = shown) as a (R, C) bool view."""
    return None if mask is None else np.broadcast_to(np.asarray(mask, dtype=bool), shape)


def index_labels(tokens, start: int = 0) -> list[str]:
    """'12 the' for token 12: unique labels for hover and ticks, as tokens repeat."""
    return [f"{start + i} {t}" for i, t in enumerate(tokens)]


def axis(labels, title: str | None, start: int = 0, n: int | None = None) -> dict:
    """A matrix axis over positions start..start+n-1: every label as a tick when they are few, else
    RASTER_TICKS spread out (labels may be None: plain numbers)."""
    n = len(labels) if labels is not None else n
    spec = {"title": title, "showgrid": False, "zeroline": False}
    if labels is None or n == 0:
        return spec
    step = 1 if n <= MAX_TICK_LABELS else int(np.ceil(n / RASTER_TICKS))
    ticks = list(range(0, n, step))
    return spec | {
        "tickmode": "array",
        "tickvals": [start + i for i in ticks],
        "ticktext": [str(labels[i]) for i in ticks],
    }


def heatmap(
    matrix,
    row_labels=None,
    col_labels=None,
    *,
    title: str = "",
    row_title: str | None = None,
    col_title: str | None = None,
    mask=None,
    colorscale="Viridis",
    zmin: float | None = None,
    zmax: float | None = None,
    zmid: float | None = None,
    value_name: str = "value",
    decimals: int | None = None,
    row_start: int = 0,
    col_start: int = 0,
    height: int | None = None,
    showscale: bool = True,
) -> go.Figure:
    """matrix (R, C) -> a heatmap figure; big matrices (more than CELL_BUDGET cells) become a raster.

    mask (R, C) bool, True = shown: False cells are drawn as masked (grey, no hover). `decimals` prints
    each value on its cell, rounded. row_start / col_start place a window of a larger matrix at its
    positions (labels then belong to the window's rows and columns).
    """
    matrix = check_matrix(matrix, row_labels, col_labels)
    if matrix.size > CELL_BUDGET:
        return raster(
            matrix, row_labels, col_labels, title=title, row_title=row_title, col_title=col_title,
            colorscale=colorscale, zmin=zmin, zmax=zmax, zmid=zmid, height=height, mask=mask,
        )  # fmt: skip
    mask = mask_of(mask, matrix.shape)
    if mask is not None:
        matrix = np.where(mask, matrix, np.nan)
    n_rows, n_cols = matrix.shape
    # With labels the axes are categories named by them (unique, e.g. "12 the"): hover reads a cell's
    # row and column names from the axes, R + C strings instead of one string per cell.
    x = list(map(str, col_labels)) if col_labels is not None else np.arange(col_start, col_start + n_cols)
    y = list(map(str, row_labels)) if row_labels is not None else np.arange(row_start, row_start + n_rows)
    trace = {  # a dict, validated once by the figure (a go.Heatmap is validated again when added)
        "type": "heatmap",
        "z": matrix.astype(np.float32),
        "x": x,
        "y": y,
        "colorscale": colorscale,
        "zmin": zmin,
        "zmax": zmax,
        "zmid": zmid,
        "showscale": showscale,
        "hoverongaps": False,
        "hovertemplate": f"{row_title or 'row'} %{{y}}<br>{col_title or 'column'} %{{x}}<br>"
        f"{value_name} %{{z:.4g}}<extra></extra>",
    }
    if decimals is not None:
        trace["texttemplate"] = f"%{{z:.{decimals}f}}"
    x_edges, y_edges = (
        _edges(col_start, n_cols, col_labels is not None),
        _edges(row_start, n_rows, row_labels is not None),
    )
    layout = {  # given to the constructor: fig.update_layout with the same dict took 3x as long
        "title": title,
        "height": height or max(320, min(900, 80 + 22 * max(n_rows, n_cols))),
        "margin": MARGIN,
        # masked (NaN) cells show what lies under the cells: one grey rectangle exactly behind them (the
        # plot's background would also show around the cells, where Streamlit's theme pads the axes)
        "shapes": [mask_backing(x_edges, y_edges)],
        "xaxis": _axis(x, col_title, col_labels is not None) | {"tickangle": -60, "range": x_edges},
        "yaxis": _axis(y, row_title, row_labels is not None) | {"range": y_edges[::-1]},
    }
    return go.Figure([trace], layout=layout)


def mask_backing(x_edges, y_edges, xref: str = "x", yref: str = "y") -> dict:
    """The grey rectangle drawn under a heatmap's cells, which masked cells (NaN) leave visible."""
    return {
        "type": "rect", "layer": "below", "xref": xref, "yref": yref, "fillcolor": MASK_GREY,
        "line": {"width": 0}, "x0": x_edges[0], "x1": x_edges[1], "y0": y_edges[0], "y1": y_edges[1],
    }  # fmt: skip


def masked_colour(layout) -> str | None:
    """The colour masked cells show in a heatmap figure's layout (a dict or a Plotly layout), or None."""
    if not isinstance(layout, dict):
        layout = layout.to_plotly_json()
    below = [s for s in layout.get("shapes", ()) if s.get("type") == "rect" and s.get("layer") == "below"]
    return below[0]["fillcolor"] if below else None


def _edges(start: int, n: int, categorical: bool) -> list[float]:
    first = 0 if categorical else start
    return [first - 0.5, first + n - 0.5]


def _axis(values, title: str | None, categorical: bool) -> dict:
    """A heatmap axis: every category as a tick when they are few, else RASTER_TICKS of them."""
    spec = {"title": title, "showgrid": False, "zeroline": False}
    if not categorical:
        return spec
    step = 1 if len(values) <= MAX_TICK_LABELS else int(np.ceil(len(values) / RASTER_TICKS))
    return spec | {
        "type": "category",
        "tickmode": "array",
        "tickvals": values[::step],
        "ticktext": values[::step],
    }


def label_index(label) -> int:
    """The position a clicked cell's label names ("12 the" -> 12; a number stays itself)."""
    return int(str(label).split(" ", 1)[0])


def block_max(t: torch.Tensor, f: int) -> torch.Tensor:
    """(R, C) -> (ceil(R/f), ceil(C/f)) max over f x f blocks (ragged edges padded with -inf; NaN spreads).
    Rows first, then columns: 8x faster than max_pool2d, which reads one channel poorly."""
    rows, cols = t.shape
    if rows % f or cols % f:
        t = torch.nn.functional.pad(t, (0, -cols % f, 0, -rows % f), value=-torch.inf)
    return t.reshape(-1, f, t.shape[1]).amax(1).reshape(-1, t.shape[1] // f, f).amax(-1)


def pool_max(matrix: np.ndarray, max_side: int = RASTER_SIDE, mask=None) -> tuple[np.ndarray, int]:
    """(R, C) -> (ceil(R/f), ceil(C/f)) max over f x f blocks (NaN and cells where `mask`, (R, C) bool, is
    False ignored; a block with nothing left is NaN), with f the smallest whole factor that brings both
    sides to max_side or below. Returns (pooled, f).

    Rows are pooled a band at a time, masked in one reused buffer (a masked copy of the whole matrix, 64
    MiB at 4,096 tokens, cost more in fresh pages than the pooling itself), over the columns some row of
    the band shows: a causal mask's future is not read."""
    matrix = np.asarray(matrix, dtype=np.float32)
    mask = mask_of(mask, matrix.shape)
    f = max(1, int(np.ceil(max(matrix.shape) / max_side)))
    if f == 1:
        return (matrix if mask is None else np.where(mask, matrix, np.nan)), 1
    n_rows, n_cols = matrix.shape
    band = f * max(1, POOL_BAND_BYTES // (4 * f * n_cols))  # rows at once, whole blocks
    pooled = torch.full((-(-n_rows // f), -(-n_cols // f)), -torch.inf)
    lowest = torch.tensor(-torch.inf)
    buffer = torch.empty(min(band, n_rows) * n_cols) if mask is not None else None
    with warnings.catch_warnings():  # maps shared between sessions are read-only; nothing here writes
        warnings.simplefilter("ignore", UserWarning)
        for r0 in range(0, n_rows, band):
            rows, cols = slice(r0, r0 + band), slice(0, n_cols)
            if mask is not None:
                seen = np.flatnonzero(mask[rows].any(0))
                if len(seen) == 0:
                    continue  # every block of the band stays -inf: NaN
                cols = slice(seen[0] // f * f, -(-(seen[-1] + 1) // f) * f)  # whole blocks
            t = torch.from_numpy(matrix[rows, cols])
            if mask is not None:
                shown = torch.from_numpy(mask[rows, cols])
                t = torch.where(shown, t, lowest, out=buffer[: t.numel()].view(t.shape))
            block = block_max(t, f)
            if block.isnan().any():  # NaN cells in the band: pooled again without them
                block = block_max(t.nan_to_num(nan=-torch.inf, neginf=-torch.inf), f)
            top, left = r0 // f, cols.start // f
            pooled[top : top + block.shape[0], left : left + block.shape[1]] = block
    return pooled.masked_fill_(pooled == -torch.inf, torch.nan).numpy(), f


def colour_lut(colorscale="Viridis", n: int = 256) -> np.ndarray:
    """A Plotly colour scale (name or list) -> (n, 3) uint8 lookup table from its low to its high end."""
    scale = get_colorscale(colorscale) if isinstance(colorscale, str) else colorscale
    if scale and not isinstance(scale[0], (list, tuple)):  # a plain list of colours
        scale = [[i / (len(scale) - 1), c] for i, c in enumerate(scale)]
    colours = sample_colorscale(scale, np.linspace(0, 1, n), colortype="rgb")
    return (
        np.array(
            [
                hex_to_rgb(c)
                if c.startswith("#")
                else [float(v) for v in c[c.index("(") + 1 : -1].split(",")[:3]]
                for c in colours
            ]
        )
        .round()
        .astype(np.uint8)
    )


LEVELS = 255  # palette indices 0..254 are the colour scale; 255 is the mask grey


def quantise(matrix: np.ndarray, zmin: float, zmax: float, mask=None) -> np.ndarray:
    """Values -> palette indices 0..LEVELS-1 over [zmin, zmax] (clipped); NaN, and cells where `mask` is
    False, -> LEVELS (masked)."""
    span = zmax - zmin if zmax > zmin else 1.0
    x = np.subtract(matrix, zmin)  # one temporary, worked on in place; NaN stays NaN
    x /= span
    x *= LEVELS - 1
    np.clip(np.rint(x, out=x), 0, LEVELS - 1, out=x)
    x[np.isnan(x)] = LEVELS
    indices = x.astype(np.uint8)
    if mask is not None:
        np.copyto(indices, LEVELS, where=~np.asarray(mask, dtype=bool))
    return indices


@functools.lru_cache(maxsize=16)
def _palette(colorscale: str) -> list[int]:
    """The PNG palette of a named scale: LEVELS colours, then the mask grey (computed once per scale)."""
    palette = np.vstack([colour_lut(colorscale, LEVELS), np.array(hex_to_rgb(MASK_GREY), np.uint8)])
    return palette.ravel().tolist()


def png_data_uri(indices: np.ndarray, colorscale="Viridis") -> str:
    """(h, w) palette indices -> a data: URI of a palette PNG (one byte per pixel before compression)."""
    image = Image.fromarray(indices, mode="P")
    named = isinstance(colorscale, str)  # a list of colours is not hashable: not cached
    image.putpalette(_palette(colorscale) if named else _palette.__wrapped__(colorscale))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1, compress_type=3)  # zlib's Z_RLE: runs of a colour
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def value_range(matrix: np.ndarray, zmin, zmax, zmid, mask=None) -> tuple[float, float]:
    """The colour range: zmin / zmax where given, else the data's (NaN and cells where `mask` is False
    ignored), centred on zmid."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN matrix
        if mask is None:
            lo = float(np.nanmin(matrix)) if zmin is None else zmin
            hi = float(np.nanmax(matrix)) if zmax is None else zmax
        else:  # np.fmin / np.fmax ignore NaN; `where` reads the mask without a masked copy
            shown = {"axis": None, "where": mask}
            lo = zmin if zmin is not None else float(np.fmin.reduce(matrix, initial=np.inf, **shown))
            hi = zmax if zmax is not None else float(np.fmax.reduce(matrix, initial=-np.inf, **shown))
            lo, hi = (np.nan if np.isinf(lo) else lo), (np.nan if np.isinf(hi) else hi)  # nothing to read
    lo, hi = (0.0 if np.isnan(lo) else lo), (1.0 if np.isnan(hi) else hi)
    if zmid is not None:
        reach = max(abs(hi - zmid), abs(zmid - lo))
        lo, hi = zmid - reach, zmid + reach
    return lo, hi


def raster(
    matrix,
    row_labels=None,
    col_labels=None,
    *,
    title: str = "",
    row_title: str | None = None,
    col_title: str | None = None,
    colorscale="Viridis",
    zmin: float | None = None,
    zmax: float | None = None,
    zmid: float | None = None,
    height: int | None = None,
    max_side: int = RASTER_SIDE,
    mask=None,
) -> go.Figure:
    """matrix (R, C), NaN = masked -> a figure of one colour-mapped PNG (max-pooled to max_side), placed
    at the cells' positions so that ticks, zoom and hover coordinates are rows and columns. mask (R, C)
    bool, True = shown: False cells are drawn as masked, as NaN cells are (without a masked copy)."""
    matrix = check_matrix(matrix, row_labels, col_labels)
    mask = mask_of(mask, matrix.shape)
    if mask is not None and max(matrix.shape) <= max_side:  # a pixel a cell: quantise reads the mask
        pooled, f, shown = matrix, 1, mask
    else:
        (pooled, f), shown = pool_max(matrix, max_side, mask), None
    if zmax is None and mask is not None:  # the pooled maxima hold the maximum: one pass over the cells less
        zmax = float(np.fmax.reduce(pooled, None, initial=-np.inf, where=True if shown is None else shown))
        zmax = None if np.isinf(zmax) else zmax
    lo, hi = value_range(matrix, zmin, zmax, zmid, mask)
    n_rows, n_cols = matrix.shape
    pooled_note = f" · max over {f}×{f} cells per pixel" if f > 1 else ""
    x_range, y_range = [-0.5, n_cols - 0.5], [n_rows - 0.5, -0.5]
    image = {  # a dict, validated once by the figure
        "type": "image",
        "source": png_data_uri(quantise(pooled, lo, hi, shown), colorscale),
        "x0": (f - 1) / 2,
        "dx": f,
        "y0": (f - 1) / 2,
        "dy": f,
        "hovertemplate": f"{row_title or 'row'} %{{y}}, {col_title or 'column'} %{{x}}"
        + (f" (max of {f}×{f} cells)" if f > 1 else "")
        + "<extra></extra>",
    }
    return go.Figure(
        [image],
        layout={  # in the constructor: fig.update_layout took 3x as long
            "title": f"{title}<br><sup>{n_rows} × {n_cols}, colour {lo:.3g} to {hi:.3g}{pooled_note}</sup>",
            "height": height or 760,
            "margin": MARGIN | {"t": 60},
            "xaxis": axis(col_labels, col_title, 0, n_cols) | {"tickangle": -60, "range": x_range},
            "yaxis": axis(row_labels, row_title, 0, n_rows) | {"range": y_range, "scaleanchor": None},
        },
    )


def raster_indices(fig: go.Figure) -> np.ndarray:
    """The palette indices of a raster figure's image (to check what was sent)."""
    uri = fig.data[0].source
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))
