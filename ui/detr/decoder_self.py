"""Decoder self-attention between the N object queries, per layer and head (S17, S18)."""

import streamlit as st

from models.detr.api import DetrResult
from ui.detr.common import DECODER_SELF, one_head, query_names
from ui.export import chart
from ui.widgets import head_name, layer_head_picker
from viz.attention import attention_heatmap


@st.fragment(key=DECODER_SELF)
def decoder_self_section(result: DetrResult) -> None:
    n_layers, n_heads = result.decoder_self.shape[:2]
    st.caption(
        "The N object queries attend to one another (S18): this is how DETR avoids predicting one object "
        "twice without NMS (S17)."
    )
    layer, head = layer_head_picker(n_layers, n_heads, key="dp_dself", bind=True)
    names = query_names(result)  # numbered by the heatmap: "3 circle 0.91"
    chart(
        attention_heatmap(
            one_head(result.decoder_self[layer], head),
            names,
            names,
            title=f"Decoder self-attention, layer {layer}, {head_name(head)}",
        ),
        key="dp_dself",
    )
