"""The widgets every page shares: the device, a layer/head picker, clamped numbers, and a matrix view.

Each returns what the user chose. Widgets whose value a page writes through `st.session_state` are
declared `persist_state="session"` (a widget hidden for one run would otherwise come back showing its
default while the script keeps the written value: streamlit/streamlit#9082).
"""

import numpy as np
import streamlit as st

from models.maps import REDUCTIONS
from ui.export import chart
from viz.export import matrix_figure, zoom_figure
from viz.heatmap import CELL_BUDGET, mask_of

MEAN, MAX = REDUCTIONS  # the head picker's two sentinels: "mean" and "max" over heads
ZOOM_WIDTH = 128  # tokens a side of the zoom window, by default
MAX_ZOOM_WIDTH = 256  # and at most: 65,536 cells with hover


def device() -> str:
    """The torch device chosen in the sidebar (app.py's picker)."""
    return st.session_state.get("device", "cpu")


def clicked(key: str) -> list | None:
    """In an on_select callback: the customdata of the point clicked in the chart `key`, as a list, or None
    when nothing is selected. The browser sends a row of a numpy array as {"0": a, "1": b}, a list as a
    list, one value as itself."""
    points = st.session_state[key].selection.points
    if not points or "customdata" not in points[0]:
        return None
    data = points[0]["customdata"]
    if isinstance(data, dict):
        return [data[str(i)] for i in range(len(data))]
    return list(data) if isinstance(data, (list, tuple)) else [data]


def head_name(head) -> str:
    return f"head {head}" if isinstance(head, (int, np.integer)) else f"{head} over heads"


def _keep_in(key: str, options: list, default) -> None:
    """Set the widget's state to `default` when it holds no value or one that is not an option now."""
    if st.session_state.get(key) not in options:
        st.session_state[key] = default


def layer_head_picker(
    n_layers: int,
    n_heads: int,
    key: str,
    reductions: bool = True,
    default: tuple[int, int | str] = (0, 0),
    container=None,
    bind: bool = False,
) -> tuple[int, int | str]:
    """Two select boxes side by side -> (layer, head); head is an int, or MEAN / MAX when offered.

    The state lives under f"{key}_layer" and f"{key}_head", so a click elsewhere (an overview
    thumbnail) can set them before the widgets are drawn. With `bind`, both are in the page's URL
    (?{key}_layer=layer 3&{key}_head=head 5), so that a link reopens the same head."""
    left, right = (container or st).columns(2)
    layer = layer_picker(n_layers, key, default[0], left, bind)
    return layer, head_picker(n_heads, key, reductions, default[1], right, bind)


def layer_picker(n_layers: int, key: str, default: int = 0, container=None, bind: bool = False) -> int:
    """The layer select box of `layer_head_picker`, alone (its state under f"{key}_layer")."""
    layers = list(range(n_layers))
    _keep_in(f"{key}_layer", layers, min(default, n_layers - 1))
    return (container or st).selectbox(
        "Layer", layers, key=f"{key}_layer", persist_state="session", format_func=lambda i: f"layer {i}",
        **_url(bind),
    )  # fmt: skip


def head_picker(
    n_heads: int,
    key: str,
    reductions: bool = True,
    default: int | str = 0,
    container=None,
    bind: bool = False,
) -> int | str:
    """The head select box of `layer_head_picker`, alone (its state under f"{key}_head")."""
    heads = [*range(n_heads), *(REDUCTIONS if reductions else ())]
    _keep_in(f"{key}_head", heads, default if default in heads else 0)
    return (container or st).selectbox(
        "Head", heads, key=f"{key}_head", persist_state="session", format_func=head_name, **_url(bind)
    )


def _url(bind: bool) -> dict:
    """A widget's arguments that put its value in the page's URL, when `bind`."""
    return {"bind": "query-params"} if bind else {}


def clamped_int(
    label: str,
    key: str,
    low: int,
    high: int,
    default: int,
    container=None,
    help: str | None = None,
    on_change=None,
) -> int:
    """A whole-number input whose value is always in [low, high], even when the range shrinks."""
    value = st.session_state.get(key, default)
    st.session_state[key] = int(min(max(value if isinstance(value, (int, float)) else default, low), high))
    return int(
        (container or st).number_input(
            label,
            min_value=low,
            max_value=high,
            step=1,
            key=key,
            persist_state="session",
            help=help,
            on_change=on_change,
        )
    )


def query_key_picker(tokens: list[str], key: str) -> tuple[int, int]:
    """A causal pair of positions: a query (the last token first) and a key at most the query (the one
    before it first), with the pair's tokens in a caption."""
    left, right = st.columns(2)
    i = clamped_int("Query token (position)", f"{key}_i", 0, len(tokens) - 1, len(tokens) - 1, left)
    j = clamped_int("Key token (position, at most the query)", f"{key}_j", 0, i, max(0, i - 1), right)
    st.caption(f"query {i}: {tokens[i]!r} · key {j}: {tokens[j]!r}")
    return i, j


def matrix_view(
    matrix: np.ndarray,
    row_tokens: list[str],
    col_tokens: list[str],
    key: str,
    title: str,
    row_title: str = "query (attending)",
    col_title: str = "key (attended to)",
    view: dict | None = None,
    whole=None,
    **style,
) -> None:
    """Draw a (Tq, Tk) matrix: as one interactive heatmap when it has at most CELL_BUDGET cells, else as
    a raster of the whole plus a zoom window (start row, start column, width) drawn with hover.

    Each figure's Export holds the matrix it draws and its tokens (ui.export.chart), with `view` (the page's
    view config) and `whole` (a callable giving the whole input's arrays) when the page gives them. A `mask`
    in style ((Tq, Tk) bool, True = shown) draws the other cells grey, as NaN cells are, without a masked
    copy of the matrix; the Export then holds it beside the matrix."""
    n_rows, n_cols = matrix.shape
    arrays = {"matrix": matrix, "row_tokens": list(row_tokens), "col_tokens": list(col_tokens)}
    mask = mask_of(style.get("mask"), matrix.shape)
    if mask is not None:
        arrays["mask"] = mask
    export = {"view": view, "whole": whole}
    if n_rows * n_cols <= CELL_BUDGET:
        fig = matrix_figure(matrix, row_tokens, col_tokens, title, row_title, col_title, **style)
        chart(fig, key=f"{key}_map", arrays=arrays, **export)
        return
    left, zoom = st.columns(2)
    fig = matrix_figure(
        matrix, row_tokens, col_tokens, title, row_title, col_title, **style | {"height": 640}
    )
    chart(fig, key=f"{key}_raster", where=left, arrays=arrays, **export)
    with zoom:
        c1, c2, c3 = st.columns(3)
        width = clamped_int("Zoom width", f"{key}_zw", 8, min(MAX_ZOOM_WIDTH, n_rows, n_cols), ZOOM_WIDTH, c3)
        q0 = clamped_int("First query", f"{key}_zq", 0, n_rows - width, 0, c1)
        k0 = clamped_int("First key", f"{key}_zk", 0, n_cols - width, 0, c2)
        window = matrix[q0 : q0 + width, k0 : k0 + width]
        zoomed = {
            "matrix": window, "row_tokens": list(row_tokens[q0 : q0 + width]),
            "col_tokens": list(col_tokens[k0 : k0 + width]), "first_query": q0, "first_key": k0,
        }  # fmt: skip
        if mask is not None:
            zoomed["mask"] = arrays["mask"][q0 : q0 + width, k0 : k0 + width]
        fig = zoom_figure(matrix, row_tokens, col_tokens, q0, k0, width, row_title, col_title, **style)
        chart(fig, key=f"{key}_zoom", arrays=zoomed, **export)
