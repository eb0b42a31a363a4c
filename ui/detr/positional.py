"""The 2-D sine positional encoding of this image's feature map (S20, S21)."""

import streamlit as st

from models.detr.api import DetrResult
from models.detr.inspect import positional_encoding
from models.positional import detr_channel_name
from ui.detr.common import POSITIONAL
from ui.export import chart
from viz.positional import channel_maps


@st.fragment(key=POSITIONAL)
def positional_section(result: DetrResult, d_model: int) -> None:
    pos = positional_encoding(result, d_model)  # (d, h, w)
    d = pos.shape[0]
    st.caption(
        "DETR encodes position in y and x separately because image features are 2-D (S20): the first half "
        "of the channels are sines and cosines of y, the second half of x. This encoding is added to Q and "
        "K at every encoder layer (S21). More on the [positional-encodings page](/positional)."
    )
    channel = st.slider("Channel", 0, d - 1, key="dp_pos_channel", persist_state="session")
    partner = (channel + d // 2) % d
    names = [f"{c}: {detr_channel_name(c, d // 2)}" for c in (channel, partner)]
    chart(
        channel_maps(
            pos,
            [channel, partner],
            names,
            title=f"This image's {result.h} × {result.w} feature map: channel {channel} and its "
            f"{'x' if channel < d // 2 else 'y'} partner",
        ),
        key="dp_pos",
    )
