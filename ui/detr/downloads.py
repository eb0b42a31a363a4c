"""Downloads: the overlay on show as a PNG, and every attention tensor of the run as `.npz`. Both are built
only when clicked."""

import io

import numpy as np
import streamlit as st
from PIL import Image

from models.detr.api import DetrResult
from models.detr.inspect import cell_extent
from ui.widgets import head_name
from viz.detr import overlay_rgb


def npz_bytes(result: DetrResult) -> bytes:
    buf = io.BytesIO()
    np.savez(
        buf,
        encoder=result.encoder,  # (E, nh, h, w, h, w), computed now from q and k
        decoder_self=result.decoder_self,  # (L, nh, N, N)
        decoder_cross=result.decoder_cross,  # (L, nh, N, h, w)
        layer_probs=result.layer_probs,  # (L, N, K + 1)
        layer_boxes=result.layer_boxes,  # (L, N, 4) xyxy pixels
        class_names=np.array(result.class_names),
    )
    return buf.getvalue()


def png_bytes(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def download_buttons(
    result: DetrResult, image: np.ndarray, attn: np.ndarray, shown: tuple, opacity: float, smooth: bool
) -> None:
    """attn (h, w) the map on show; shown = (query, layer, head) names the file."""
    query, layer, head = shown
    cell = cell_extent(result)
    extent = (result.h * cell[0], result.w * cell[1])
    d1, d2 = st.columns(2)
    d1.download_button(
        "Overlay (PNG)",
        lambda: png_bytes(overlay_rgb(image, attn, extent, opacity, smooth=smooth)),
        file_name=f"detr_query{query}_layer{layer}_{head_name(head).replace(' ', '_')}.png",
        mime="image/png",
        on_click="ignore",
        key="dp_png",
    )
    d2.download_button(
        "Attention tensors (.npz)",
        lambda: npz_bytes(result),
        file_name="detr_attention.npz",
        mime="application/octet-stream",
        on_click="ignore",
        key="dp_npz",
    )
