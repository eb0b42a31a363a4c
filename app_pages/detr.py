"""DETR: upload an image (or draw a scene), see the detections and what each object query looks at.

The model runs once per (model, image) and its result is kept once per process (`ui.results`); every
section below is a fragment that reads it, so a control reruns its own section and never the model.
The sections live in `ui/detr/`.
"""

import streamlit as st

from ui.detr.common import TAB_KEY, TABS
from ui.detr.cross_attention import RAW, cross_attention_section
from ui.detr.decoder_self import decoder_self_section
from ui.detr.detections import detections_section
from ui.detr.encoder import WHERE_TO, encoder_section
from ui.detr.matching import matching_section
from ui.detr.pickers import (
    detr_result,
    image_background,
    image_picker,
    model_caption,
    model_picker,
    reset_for,
    shapes_notice,
)
from ui.detr.positional import positional_section
from ui.detr.predictions import layer_predictions_section
from ui.detr.relevance import relevance_section

DEFAULTS = {
    "dp_threshold": 0.7,
    "dp_opacity": 0.6,
    "dp_resolution": RAW,
    "dp_seed": 0,
    "dp_scene_size": 128,
    "dp_enc_direction": WHERE_TO,
}


def main() -> None:
    st.title("DETR: what each object query looks at")
    st.caption(
        "DETR puts a transformer after a CNN and predicts a set of N boxes in one shot, with no anchors and "
        "no non-maximum suppression (S17). Keys and values come from the encoder's image memory (S14), each "
        "object query asks for one object (S15), and cross-attention draws that object out (S16)."
    )
    for key, value in DEFAULTS.items():
        st.session_state.setdefault(key, value)
    picked = model_picker()
    if picked is None:
        return
    detector, model_key = picked
    model_caption(detector, model_key)
    chosen = image_picker()
    if chosen is None:
        return
    image_key, image, scene = chosen
    shapes_notice(model_key, scene)
    try:
        result = detr_result(detector, model_key, image_key, image)
    except (RuntimeError, ValueError) as err:
        st.error(f"DETR could not run on this image: {err}")
        return
    bg = image_background(image_key, image)
    reset_for(result, (model_key, image_key))

    detections_section(result, bg)
    sections = (
        lambda: cross_attention_section(result, bg, image),
        lambda: layer_predictions_section(result, bg),
        lambda: encoder_section(result, bg),
        lambda: decoder_self_section(result),
        lambda: matching_section(result, bg, scene),
        lambda: positional_section(result, detector.config.d_model),
    )
    # Stateful tabs: a visit draws the open tab's section only; opening another reruns the page, whose
    # model result is kept, and draws that one
    for tab, section in zip(st.tabs(list(TABS), key=TAB_KEY, on_change="rerun"), sections, strict=True):
        with tab:
            if tab.open:
                section()
    relevance_section(detector, model_key, image_key, image, result, bg)


main()
