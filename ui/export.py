"""Every figure of the app goes through `chart`: st.plotly_chart plus an Export popover.

The popover is stateful (`on_change="rerun"`): while closed it is one button, and nothing of the export is
built or sent, so a click elsewhere costs what it cost before. Opened, it offers download buttons whose data
are callables: a file is made only when its button is pressed (Streamlit runs the callable then, on its own
thread), and `on_click="ignore"` keeps the download from rerunning the page. The files themselves are made by
viz/export.py, which the command line (scripts/export.py) uses too.
"""

import re
from functools import partial

import streamlit as st

from ui.share import current_view
from viz.export import (
    config_json,
    figure_arrays,
    matrix_png,
    npz_bytes,
    standalone_html,
    static_export_available,
    static_image,
)

SCALES = [1, 2, 3, 4]


def chart(
    fig, key: str, *, where=None, arrays: dict | None = None, view: dict | None = None, whole=None, **kwargs
):
    """Draw the figure with st.plotly_chart (in `where`, a column or container, else the page) and an Export
    popover under it. `arrays`: what the .npz holds (default: the figure's traces' z, x and y); `view`: the
    view config (page, model, input, layer, head, ...) saved as JSON and inside the .npz; `whole`: a callable
    returning the whole input's arrays, offered as a second .npz. Returns what st.plotly_chart returns."""
    target = where if where is not None else st
    event = target.plotly_chart(fig, key=key, **kwargs)
    export_menu(fig, key, target, arrays=arrays, view=view, whole=whole)
    return event


def file_stem(key: str, view: dict | None) -> str:
    parts = [str(view[k]) for k in ("page", "model", "layer", "head") if view and k in view] or [key]
    return re.sub(r"[^A-Za-z0-9._-]+", "-", "_".join(parts)).strip("-") or "figure"


def export_menu(fig, key: str, where, *, arrays=None, view=None, whole=None) -> None:
    menu = where.popover(
        "Export", icon=":material/download:", type="tertiary", key=f"{key}__export", on_change="rerun"
    )
    if not menu.open:
        return
    view = view if view is not None else current_view()
    stem = file_stem(key, view)
    download = partial(menu.download_button, on_click="ignore", width="stretch")
    if static_export_available():
        scale = menu.segmented_control(
            "PNG scale", SCALES, default=2, key=f"{key}__scale", format_func="{}×".format
        )
        scale = scale or 2
        download("PNG", partial(static_image, fig, "png", scale), f"{stem}@{scale}x.png", "image/png",
                 key=f"{key}__png")  # fmt: skip
        download("SVG", partial(static_image, fig, "svg"), f"{stem}.svg", "image/svg+xml", key=f"{key}__svg")
    else:
        menu.caption("PNG and SVG need kaleido and chromium (see the README).")
        if arrays is not None and "matrix" in arrays:
            cells = partial(matrix_png, arrays["matrix"])
            download("PNG (one pixel a cell)", cells, f"{stem}.png", "image/png", key=f"{key}__mpng")
    download("HTML (interactive, offline)", partial(standalone_html, fig), f"{stem}.html", "text/html",
             key=f"{key}__html")  # fmt: skip
    data = partial(npz_bytes, arrays, view) if arrays is not None else partial(figure_npz, fig, view)
    download("Data (.npz)", data, f"{stem}.npz", "application/octet-stream", key=f"{key}__npz")
    if whole is not None:
        download("Whole input (.npz)", partial(whole_npz, whole, view), f"{stem}_all.npz",
                 "application/octet-stream", key=f"{key}__all")  # fmt: skip
    download("View config (.json)", partial(config_json, view), f"{stem}.json", "application/json",
             key=f"{key}__json")  # fmt: skip


def figure_npz(fig, view) -> bytes:
    return npz_bytes(figure_arrays(fig), view)


def whole_npz(whole, view) -> bytes:
    return npz_bytes(whole(), view)
