"""Encoder self-attention at a feature position, or the reverse, in every layer and head (S18, S21).
The maps of one position are computed from the kept q and k when it is chosen."""

import streamlit as st

from models.detr.api import DetrResult
from models.detr.inspect import cell_extent, encoder_maps
from ui.detr.common import ENCODER, grid_chart, one_head
from ui.export import chart
from ui.widgets import clamped_int, clicked, head_name, layer_head_picker
from viz.detr import Background, attention_overlay

WHERE_TO, WHO_FROM = "where it attends", "which positions attend to it"


def pick_point() -> None:
    """on_select of the encoder figure: a cell's customdata is [row, column, weight]."""
    data = clicked("dp_enc_click")
    if data:
        st.session_state.dp_enc_y, st.session_state.dp_enc_x = int(data[0]), int(data[1])


@st.fragment(key=ENCODER)
def encoder_section(result: DetrResult, bg: Background) -> None:
    family = result.encoder_attention
    st.caption(
        "Every image position attends to every other (S18). At every encoder layer the positional "
        "encoding is added to queries and keys only, never to the values (S21). Choose a feature position "
        "with the controls or by clicking the image."
    )
    c1, c2, c3, c4 = st.columns([1, 1, 2, 1])
    x = clamped_int("x (feature column)", "dp_enc_x", 0, result.w - 1, result.w // 2, c1)
    y = clamped_int("y (feature row)", "dp_enc_y", 0, result.h - 1, result.h // 2, c2)
    layer, head = layer_head_picker(family.n_layers, family.n_heads, key="dp_enc", container=c3, bind=True)
    direction = c4.radio("Direction", [WHERE_TO, WHO_FROM], key="dp_enc_direction", persist_state="session")
    maps = encoder_maps(result, y, x, reverse=direction == WHO_FROM)  # (E, nh, h, w)
    cell = cell_extent(result)
    point = ((x + 0.5) * cell[1], (y + 0.5) * cell[0])
    opacity = st.session_state.dp_opacity
    left, right = st.columns([3, 2])
    with left:
        chart(
            attention_overlay(
                bg,
                one_head(maps[layer], head),
                cell,
                opacity,
                point=point,
                clickable=True,
                title=f"({y}, {x}): {direction}, layer {layer}, {head_name(head)}",
            ),
            key="dp_enc_click",
            on_select=pick_point,
            selection_mode="points",
        )
    if direction == WHO_FROM:
        right.caption("A column of the attention matrix: it need not sum to 1.")
    grid_chart(
        bg,
        maps,
        cell,
        opacity,
        key="dp_enc_grid",
        point=point,
        title=f"Position ({y}, {x}), {direction}: every encoder layer × head",
    )
