"""The causal page for a decoder read through transformers (`models.hf_generic`: OPT, Phi, GPT-NeoX, …):
its attention on the user's text, one head at a time, with the notice that its stages are not available.

The model runs once per text (kept by `ui.results`); the layer and head pickers rerun only their fragment.
"""

import streamlit as st

from models.hf_generic import HFModel
from models.maps import AttentionMaps
from models.readout import readout
from ui.results import computed, digest
from ui.widgets import head_name, layer_head_picker, matrix_view

EXAMPLE = "The cat sat on the mat because it was warm. The cat sat on the"


def hf_sections(model: HFModel) -> None:
    cfg = model.config
    st.markdown(
        f"**{model.name}** ({cfg.model_type}, read through transformers): {cfg.n_layers} layers × "
        f"{cfg.n_heads} heads; inputs up to {cfg.max_position_embeddings} tokens."
    )
    st.info(model.notice)
    st.session_state.setdefault("cdh_text", EXAMPLE)
    text = st.text_area("Text", key="cdh_text", persist_state="session", height=100)
    if not text.strip():
        st.info("Type some text to see its attention.")
        return
    encoding = model.encode(text)
    if encoding.n_dropped:
        st.warning(
            f"The last {encoding.n_dropped} tokens were dropped: the model reads "
            f"{cfg.max_position_embeddings}."
        )

    def run() -> AttentionMaps:
        return AttentionMaps(readout(decoder_self=model.run(encoding.ids).attentions)["decoder_self"])

    key = digest("hf-causal", model.name, str(model.device), id(model.model), text)
    head_view(computed(key, run, spinner="Running the model…"), encoding.tokens)


@st.fragment
def head_view(maps: AttentionMaps, tokens: list[str]) -> None:
    layer, head = layer_head_picker(maps.n_layers, maps.n_heads, key="cdh")
    matrix_view(
        maps.head(layer, head), tokens, tokens, "cdh_map", f"layer {layer}, {head_name(head)}", zmin=0.0
    )
