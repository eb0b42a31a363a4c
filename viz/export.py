"""Figures and views as files: PNG and SVG through Plotly's static export (kaleido driving the local
chromium, offline), standalone HTML with plotly.js embedded, the view's arrays as .npz, and the view config
(JSON) that reopens a view in the app. No Streamlit here: the app (ui/export.py) and the command line
(scripts/export.py) call the same functions.
"""

import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import plotly
import plotly.graph_objects as go

from viz.heatmap import (
    CELL_BUDGET,
    LEVELS,
    MASK_GREY,
    colour_lut,
    heatmap,
    index_labels,
    mask_of,
    quantise,
    raster,
    value_range,
)

CONFIG_VERSION = 1
DEFAULT_SIZE = (900, 700)  # width, height in CSS pixels of a figure that does not set its own
CHROMIUMS = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


class ExportError(RuntimeError):
    """A file could not be made; the message says why and what to do."""


def browser_path() -> str | None:
    """The chrome kaleido should drive: $BROWSER_PATH, else Debian's chromium; never a download."""
    for path in (os.environ.get("BROWSER_PATH"), *CHROMIUMS):
        if path and shutil.which(path):
            return path
    return None


def static_export_available() -> bool:
    try:
        import kaleido  # noqa: F401
    except ImportError:
        return False
    return browser_path() is not None


def figure_size(fig: go.Figure) -> tuple[int, int]:
    """The figure's (width, height) in CSS pixels: its own layout's, else DEFAULT_SIZE."""
    return int(fig.layout.width or DEFAULT_SIZE[0]), int(fig.layout.height or DEFAULT_SIZE[1])


def _kaleido():
    """kaleido, pointed at the local chrome; ExportError saying what to install when either is missing."""
    path = browser_path()
    try:
        import kaleido
    except ImportError as err:
        raise ExportError("PNG and SVG export need kaleido (pip install 'kaleido>=1').") from err
    if path is None:
        raise ExportError("PNG and SVG export need chromium: apt-get install chromium, or set BROWSER_PATH.")
    os.environ["BROWSER_PATH"] = path
    return kaleido


def static_image(fig: go.Figure, fmt: str = "png", scale: float = 1.0) -> bytes:
    """PNG or SVG bytes of the figure, (width × scale) × (height × scale) pixels for a PNG.

    kaleido 1.x renders in a headless chrome; we give it the plotly.js of the installed plotly package and
    no MathJax (whose default is a CDN URL), so nothing is fetched."""
    if fmt not in ("png", "svg"):
        raise ValueError(f"static export makes png or svg, not {fmt!r}")
    kaleido = _kaleido()
    width, height = figure_size(fig)
    opts = {"format": fmt, "width": width, "height": height, "scale": scale}
    kopts = {"mathjax": False, "plotlyjs": str(PLOTLY_JS)}
    return kaleido.calc_fig_sync(fig.to_dict(), opts=opts, kopts=kopts)


def standalone_html(fig: go.Figure) -> str:
    """One HTML file of the interactive figure that works with no network: plotly.js is inside it."""
    return fig.to_html(include_plotlyjs=True, full_html=True, config={"displaylogo": False})


def matrix_png(matrix: np.ndarray, colorscale="Viridis", scale: int = 1) -> bytes:
    """The matrix as an RGB PNG, one square of scale × scale pixels per cell, drawn by us (no browser): the
    fallback where static export cannot run. NaN cells are grey."""
    from PIL import Image

    matrix = np.asarray(matrix, dtype=np.float64)
    lo, hi = value_range(matrix, None, None, None)
    grey = [int(MASK_GREY[i : i + 2], 16) for i in (1, 3, 5)]
    lut = np.vstack([colour_lut(colorscale, LEVELS), [grey]]).astype(np.uint8)  # index LEVELS: masked
    rgb = lut[quantise(matrix, lo, hi)]
    rgb = np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)
    buffer = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def figure_arrays(fig: go.Figure) -> dict[str, np.ndarray]:
    """What a figure shows, when the page gave no arrays: every trace's z (and x, y) as arrays."""
    arrays = {}
    for i, trace in enumerate(fig.data):
        for name in ("z", "x", "y"):
            value = getattr(trace, name, None)
            if value is not None:
                arrays[f"trace{i}_{name}"] = np.asarray(value)
    return arrays


def _storable(value) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype == object:  # token lists and labels: unicode, so the file loads without pickle
        array = np.asarray([str(v) for v in np.ravel(array)]).reshape(array.shape)
    return array


def npz_bytes(arrays: dict, view: dict | None = None) -> bytes:
    """An .npz of the arrays (numbers as they are; strings as unicode arrays) plus the view config as
    a JSON string under 'view'. np.load(..., allow_pickle=False) reads it."""
    contents = {name: _storable(value) for name, value in arrays.items()}
    if view is not None:
        contents["view"] = np.asarray(config_json(view))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **contents)
    return buffer.getvalue()


def config_json(view: dict) -> str:
    """The view config as JSON text: {"version", "page", ...the page's view state}."""
    if "page" not in view:
        raise ValueError("a view config names its page")
    return json.dumps({"version": CONFIG_VERSION, **view}, ensure_ascii=False, indent=1, default=_plain)


def read_config(data: bytes | str) -> dict:
    """A view config from JSON text; ValueError saying what is wrong with it otherwise."""
    try:
        view = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"not a view config: the file is not JSON ({err})") from err
    if not isinstance(view, dict) or not isinstance(view.get("page"), str):
        raise ValueError("not a view config: it has no 'page'")
    if view.get("version") != CONFIG_VERSION:
        raise ValueError(f"view config version {view.get('version')!r}; this app reads {CONFIG_VERSION}")
    return view


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} cannot go into a view config")


def png_size(data: bytes) -> tuple[int, int]:
    from PIL import Image

    return Image.open(io.BytesIO(data)).size


def matrix_figure(matrix, row_tokens, col_tokens, title: str, row_title: str, col_title: str, **style):
    """The figure the app draws for a whole (R, C) matrix: a heatmap with hover up to CELL_BUDGET cells,
    else a raster image (ui.widgets.matrix_view shows a zoom window beside it)."""
    rows, cols = index_labels(row_tokens), index_labels(col_tokens)
    if matrix.size <= CELL_BUDGET:
        return heatmap(matrix, rows, cols, title=title, row_title=row_title, col_title=col_title, **style)
    kept = {k: v for k, v in style.items() if k in ("colorscale", "zmin", "zmax", "zmid", "height", "mask")}
    return raster(matrix, rows, cols, title=title, row_title=row_title, col_title=col_title, **kept)


def zoom_figure(
    matrix, row_tokens, col_tokens, q0: int, k0: int, width: int, row_title: str, col_title: str, **style
):
    """The zoom window beside a raster (ui.widgets.matrix_view): rows q0.. and columns k0.. of an (R, C)
    matrix, `width` a side, as cells with hover. A `mask` in style is the whole matrix's, (R, C)."""
    rows, cols = slice(q0, q0 + width), slice(k0, k0 + width)
    if style.get("mask") is not None:
        style["mask"] = mask_of(style["mask"], matrix.shape)[rows, cols]
    return heatmap(
        matrix[rows, cols], index_labels(row_tokens[rows], q0), index_labels(col_tokens[cols], k0),
        title=f"Zoom: queries {q0}–{q0 + width - 1}, keys {k0}–{k0 + width - 1}",
        row_title=row_title, col_title=col_title, **{"height": 560} | style,
    )  # fmt: skip


def write_static(jobs, progress=None) -> None:
    """Write many PNG and SVG files with one headless chrome: jobs are (figure, path, "png" | "svg",
    scale); `progress` (a callable) is called once per job as it starts. Raises ExportError when kaleido or
    chromium is missing, or with the first file that failed."""
    kaleido = _kaleido()

    def specs():
        for fig, target, fmt, scale in jobs:
            if progress is not None:
                progress()
            width, height = figure_size(fig)
            opts = {"format": fmt, "width": width, "height": height, "scale": scale}
            yield {"fig": fig.to_dict(), "path": str(target), "opts": opts}

    errors = kaleido.write_fig_from_object_sync(specs(), kopts={"mathjax": False, "plotlyjs": str(PLOTLY_JS)})
    if errors:
        raise ExportError(f"{len(errors)} file(s) could not be drawn: {errors[0]}")
