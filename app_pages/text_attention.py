"""Text attention: every layer and head of a real pretrained encoder, on the user's text, at any length.

The model runs once per (model, text) on its fast path, keeping q and k (`capture=LAZY`); a head's map is
computed when it is shown. Layer, head and zoom changes rerun only the head view's fragment; the overview,
the statistics and the value-weighted norms, which need every map of a layer or more, are computed when
their tab is opened.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st

from models.attention import LAZY
from models.bert import ModelLoadError, TextModel
from models.explain.capture import attention_modules
from models.explain.value_norms import Attention
from models.hf_generic import HFModel
from models.maps import STATISTICS, AttentionMaps
from models.readout import readout
from ui.export import chart
from ui.hub import MULTILINGUAL, SUGGESTIONS, model_field, named_model
from ui.links import explain_link
from ui.models import get_text_model
from ui.results import computed, digest
from ui.share import seed_text, share_param, share_text, text_digest, url_once, view_state
from ui.uploads import UPLOAD_MB, UploadError, decode_text
from ui.value_norms import EXPLANATION as VALUE_NORMS
from ui.value_norms import Attentions, value_norms_view
from ui.widgets import clicked, device, head_name, layer_head_picker, matrix_view
from viz.attention import head_overview, head_statistic_heatmap, token_strip_html

EXAMPLE = (
    "The animal didn't cross the street because it was too tired. "
    "多头注意力可以理解为注意力做多次，每次注意的点不一样。"
)
EMBEDDED, BY_NAME = "Embedded all-MiniLM-L6-v2", "A BERT-family model by name or path"
THUMBNAIL = 32  # overview cells a side per head
HEADS = "Heads"  # the first tab
WHOLE_EXPORT_BYTES = 2**30  # the whole input's maps are offered as one .npz up to this size


@dataclass
class TextAttention:
    """One forward of one text: its wordpieces and every head's map on demand."""

    tokens: list[str]
    n_dropped: int  # wordpieces cut because the text was longer than the model's positions
    maps: AttentionMaps
    key: str  # the digest of (model, text) that keeps this result
    modules: list[Attention] | None  # the model's attention layers (W_O, b_O); None for a transformers model

    @property
    def nbytes(self) -> int:
        return self.maps.nbytes


def attention_of(model: TextModel, text: str) -> TextAttention:
    """The text's attention, computed once per (model, text) per process and shared by sessions."""

    def run() -> TextAttention:
        encoding = model.encode(text)
        output = model.run(encoding.ids, capture=LAZY)
        family = readout(encoder=output.attentions)["encoder"]
        modules = attention_modules(model)["encoder"] if isinstance(model, TextModel) else None
        return TextAttention(encoding.tokens, encoding.n_dropped, AttentionMaps(family), key, modules)

    key = digest("text", model.name, str(model.device), id(model.model), text)
    return computed(key, run, spinner="Running the model…")


def read_upload() -> None:
    """on_change of the uploader: put the text file into the text area, or say why not."""
    upload = st.session_state.get("text_upload")
    st.session_state.upload_error = None
    if upload is None:
        return
    try:
        st.session_state.text_input = decode_text(upload.getvalue(), upload.name)
    except UploadError as err:
        st.session_state.upload_error = str(err)


def model_picker() -> TextModel | None:
    linked = url_once("model")  # a link's ?model= (a name or path) picks that model
    if linked:
        st.session_state.model_source, st.session_state.model_path = BY_NAME, linked
    with st.sidebar:
        source = st.radio("Model", [EMBEDDED, BY_NAME], key="model_source")
        if source == BY_NAME:
            name, revision = model_field("model_path", SUGGESTIONS["encoder"])
            if not name:
                st.info(
                    "Type a Hugging Face name (such as bert-base-multilingual-cased) or the path of a "
                    "BERT-format directory (config.json, model.safetensors, tokenizer.json)."
                )
                return None
            return named_model(name, revision, kind="encoder")
    try:
        return get_text_model("", device())
    except ModelLoadError as err:
        st.error(f"Cannot load the model: {err}")
        return None


def use_multilingual() -> None:
    """on_click of the [UNK] notice's button: switch to the multilingual BERT."""
    st.session_state.model_source = BY_NAME
    st.session_state.model_path = MULTILINGUAL


def text_input() -> str:
    seed_text("text_input")
    st.session_state.setdefault("text_input", EXAMPLE)
    st.text_area("Text (any language)", key="text_input", persist_state="session", height=110)
    st.file_uploader(
        "…or upload a .txt file (UTF-8 or UTF-16)",
        type=["txt"],
        key="text_upload",
        on_change=read_upload,
        max_upload_size=UPLOAD_MB["text"],
    )
    if st.session_state.get("upload_error"):
        st.error(st.session_state.upload_error)
    return st.session_state.text_input


def notices(result: TextAttention, model: TextModel | HFModel) -> None:
    if isinstance(model, HFModel):
        st.info(model.notice)
    if result.n_dropped:
        limit = model.config.max_position_embeddings
        st.warning(
            f"The input is longer than the model's {limit} positions: the last "
            f"{result.n_dropped} wordpieces were dropped (the final [SEP] is kept)."
        )
    n_unknown = result.tokens.count("[UNK]")
    if n_unknown:
        st.info(
            f"{n_unknown} word(s) are not in this model's vocabulary and became [UNK]; they still take "
            "part in attention. (MiniLM's English vocabulary has the common Chinese characters only.)"
        )
    words = [t for t in result.tokens if t not in model.special_tokens]
    if words and n_unknown > len(words) / 2:
        st.warning(
            f"Most of this text ({n_unknown} of {len(words)} wordpieces) is [UNK] for {model.name}: its "
            f"vocabulary does not cover this language. A multilingual model such as {MULTILINGUAL} "
            "(104 languages) reads it."
        )
        st.button(f"Use {MULTILINGUAL}", key="use_multilingual", on_click=use_multilingual)


def open_from_overview() -> None:
    """on_select of the overview: the clicked thumbnail's head opens in the Heads tab."""
    data = clicked("overview")  # [layer, head]
    if data is not None:
        st.session_state.ta_layer, st.session_state.ta_head = int(data[0]), int(data[1])
        st.session_state.ta_tab = HEADS
        st.session_state.ta_opened = True


@st.fragment
def head_view(result: TextAttention) -> None:
    """The chosen layer and head, or the mean or max over heads."""
    maps = result.maps
    layer, head = layer_head_picker(maps.n_layers, maps.n_heads, key="ta", bind=True)
    matrix = maps.head(layer, head)
    note = " (rows no longer sum to 1)" if head == "max" else ""
    matrix_view(
        matrix, result.tokens, result.tokens, "head", f"Layer {layer}, {head_name(head)}{note}", zmin=0.0,
        view=view_config(layer, head), whole=whole_maps(result),
    )  # fmt: skip


def view_config(layer: int, head: int | str) -> dict:
    """What the Export menu saves with the view: enough to draw it again (`state`) and to read it."""
    text = st.session_state.text_input
    state = view_state("model_source", "model_path", "text_input", "ta_layer", "ta_head", "ta_tab")
    model = st.session_state.get("ta_model")
    return {"page": "text_attention", "model": model, "layer": layer, "head": head,
            "input_digest": text_digest(text), "text": text, "state": state}  # fmt: skip


def whole_maps(result: TextAttention):
    """A callable giving every head's map of the input (layers, heads, T, T) for the Export menu, or None
    when that would pass WHOLE_EXPORT_BYTES."""
    maps, n = result.maps, len(result.tokens)
    if maps.n_layers * maps.n_heads * n * n * 4 > WHOLE_EXPORT_BYTES:
        return None
    return lambda: {
        "maps": np.stack([maps.layer(layer) for layer in range(maps.n_layers)]),
        "tokens": result.tokens,
    }


@st.fragment
def overview(result: TextAttention) -> None:
    """A thumbnail of every layer x head; a click opens one in the Heads tab."""
    if st.session_state.pop("ta_opened", False):
        st.rerun()  # the Heads tab is outside this fragment: the whole page switches to it
    summary = summary_of(result)
    st.caption("Pooled thumbnails, each scaled to its own maximum. Click one to open it.")
    chart(
        head_overview(summary["thumbnails"]),
        key="overview",
        on_select=open_from_overview,
        selection_mode="points",
    )


def summary_of(result: TextAttention) -> dict:
    n = result.maps.n_layers * result.maps.n_heads
    with st.spinner(f"Computing all {n} maps once, for the overview and the statistics…"):
        return result.maps.summary(THUMBNAIL)


def stats_table(stats: dict) -> pd.DataFrame:
    n_layers, n_heads = stats["entropy"].shape
    rows = {"layer": np.repeat(np.arange(n_layers), n_heads), "head": np.tile(np.arange(n_heads), n_layers)}
    return pd.DataFrame(rows | {name: values.ravel() for name, values in stats.items()})


@st.fragment
def statistics_view(result: TextAttention) -> None:
    stats = summary_of(result)["statistics"]
    with st.expander("What the statistics mean"):
        st.markdown("\n".join(f"- **{name}**: {meaning}" for name, meaning in STATISTICS.items()))
    statistic = st.selectbox("Statistic to map", list(STATISTICS), key="statistic")
    chart(head_statistic_heatmap(stats[statistic], statistic), key="stat_heatmap")
    st.dataframe(stats_table(stats), hide_index=True, height=300)


def value_view(result: TextAttention) -> None:
    """Kobayashi et al.'s value-weighted norms of a layer and head, beside α."""
    with st.expander("What the value norms compute"):
        st.markdown(VALUE_NORMS)
    if result.modules is None:
        st.info(
            "This model runs through transformers, which hands back only the attention weights; the value "
            "norms need each head's values and the output projection, which the app reads from models it "
            "runs itself (the embedded MiniLM, or a BERT-format checkpoint by name or path)."
        )
        return
    attentions = Attentions(result.maps, result.modules, result.tokens, result.tokens)
    value_norms_view(result.key, {"encoder": attentions}, "ta")


TABS = {
    HEADS: head_view,
    "Every layer × head": overview,
    "Per-head statistics": statistics_view,
    "Value-weighted norms": value_view,
}


def main() -> None:
    st.title("Text attention")
    st.caption(
        "Every layer and head of a real pretrained encoder. Multi-head attention is attention done several "
        "times, each head attending to different things (S11)."
    )
    model = model_picker()
    if model is None:
        return
    st.session_state.ta_model = model.name
    by_name = st.session_state.get("model_source") == BY_NAME
    share_param("model", st.session_state.get("model_path", "").strip() if by_name else None)
    text = text_input()
    share_text("text_input", text, EXAMPLE)
    if not text.strip():
        st.info("Type or upload some text to see its attention.")
        return
    result = attention_of(model, text)
    notices(result, model)
    maps = result.maps
    st.markdown(
        f"**{len(result.tokens)} wordpieces** · {model.name} · {maps.n_layers} layers × {maps.n_heads} heads"
    )
    with st.expander("Wordpieces", expanded=len(result.tokens) <= 512):
        st.html(token_strip_html(result.tokens, model.special_tokens))
    # Stateful tabs: only the open one runs, so the first view of an input computes one map; the
    # overview and the statistics stream every head once, when their tab is opened.
    tabs = st.tabs(list(TABS), key="ta_tab", on_change="rerun", bind="query-params")
    for tab, view in zip(tabs, TABS.values(), strict=True):
        with tab:
            if tab.open:
                view(result)
    explain_link()


main()
