"""One query's decoder cross-attention over the image, and the grid of every layer x head (S14–S16)."""

import streamlit as st

from models.detr.api import DetrResult
from models.detr.inspect import cell_extent, share_inside_box, upsample
from ui.detr.common import (
    CROSS,
    DETECTIONS,
    ENCODER,
    as_head,
    grid_chart,
    one_head,
    query_labels,
    rerun_shown,
)
from ui.detr.downloads import download_buttons
from ui.export import chart
from ui.widgets import clicked, head_name, layer_head_picker
from viz.detr import Background, attention_overlay

RAW, UPSAMPLED = "feature map (raw)", "upsampled (bilinear)"
UPSAMPLE_FACTOR = 8  # display cells per feature cell, each way, when upsampled


def pick_tile() -> None:
    """on_select of the layer x head grid: a tile's customdata is [layer, head or "mean", weight]."""
    data = clicked("dp_grid")
    if data:
        st.session_state.dp_layer, st.session_state.dp_head = int(data[0]), as_head(data[1])


def redraw_opacity() -> None:
    """on_change of the opacity: every section that lays a map over the image."""
    rerun_shown(DETECTIONS, CROSS, ENCODER)


@st.fragment(key=CROSS)
def cross_attention_section(result: DetrResult, bg: Background, image) -> None:
    n_layers, n_heads = result.decoder_cross.shape[:2]
    query = st.session_state.dp_query
    st.caption(
        "Each object query asks for something (S15); keys and values are the encoder's memory, the content "
        "of the image (S14); the head mixes the two, and the query's attention lands on its object (S16)."
    )
    c1, c2 = st.columns(2)
    layer, head = layer_head_picker(n_layers, n_heads, key="dp", container=c1, bind=True)
    c3, c4 = c2.columns(2)
    opacity = c3.slider(
        "Opacity", 0.0, 1.0, step=0.05, key="dp_opacity", persist_state="session", on_change=redraw_opacity
    )
    resolution = c4.radio("Resolution", [RAW, UPSAMPLED], key="dp_resolution", persist_state="session")
    maps = result.decoder_cross[:, :, query]  # (L, nh, h, w), a view
    attn = one_head(maps[layer], head)
    cell = cell_extent(result)
    shown, shown_cell = attn, cell
    if resolution == UPSAMPLED:
        k = UPSAMPLE_FACTOR
        shown = upsample(attn, (result.h * k, result.w * k))
        shown_cell = (cell[0] / k, cell[1] / k)
    box = result.layer_boxes[-1, query]
    left, right = st.columns([3, 2])
    with left:
        chart(
            attention_overlay(
                bg,
                shown,
                shown_cell,
                opacity,
                box=box,
                title=f"{query_labels(result)[query]} · layer {layer}, {head_name(head)}",
            ),
            key="dp_overlay",
        )
    with right:
        st.caption(
            f"{share_inside_box(attn, box, cell, result.image_size):.0%} of this map's attention lies inside "
            "the query's box, each feature cell's share spread evenly over the pixels it covers. Feature map "
            f"{result.h} × {result.w}, one cell = {result.stride} pixels of the "
            f"{result.input_size[0]} × {result.input_size[1]} resized input."
        )
        download_buttons(result, image, attn, (query, layer, head), opacity, smooth=resolution == UPSAMPLED)
    st.caption(
        "Below: every layer and head at the raw feature-map resolution, each tile coloured from 0 to its "
        f"own maximum (head {n_heads} is the mean). Click a tile to open it above."
    )
    grid_chart(
        bg,
        maps,
        cell,
        opacity,
        key="dp_grid",
        on_select=pick_tile,
        title=f"Query {query}: every decoder layer × head",
    )
