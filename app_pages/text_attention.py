"""Text attention: every layer and head of a real pretrained encoder, on the user's text."""

import numpy as np
import pandas as pd
import streamlit as st

from models.attention_stats import STATISTICS, head_statistics
from models.bert import ModelLoadError, TextModel
from ui.models import get_text_model
from ui.uploads import UploadError, decode_text
from viz.attention import attention_heatmap, head_grid, head_statistic_heatmap, token_strip_html

EXAMPLE = (
    "The animal didn't cross the street because it was too tired. "
    "多头注意力可以理解为注意力做多次，每次注意的点不一样。"
)
HEAD_MEAN, HEAD_MAX = "mean over heads", "max over heads"


@st.cache_data(max_entries=8, show_spinner="Running the model…")
def compute_attention(_model: TextModel, model_key: tuple, text: str) -> dict:
    """Tokens and the (L, H, T, T) attention probabilities of `text`; cached per (model, text)."""
    encoding = _model.encode(text)
    output = _model.run(encoding.ids, capture=True)
    probs = np.stack([r.probs[0].float().cpu().numpy() for r in output.attentions])  # (L, H, T, T)
    return {"tokens": encoding.tokens, "n_dropped": encoding.n_dropped, "probs": probs}


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


def open_from_overview() -> None:
    """on_select of the overview: the clicked thumbnail becomes the chosen layer and head."""
    points = st.session_state.overview.selection.points
    if points:
        n_heads = st.session_state.n_heads
        trace = points[0]["curve_number"]
        st.session_state.layer, st.session_state.head = divmod(trace, n_heads)


def model_picker() -> TextModel | None:
    with st.sidebar:
        source = st.radio("Model", ["Embedded all-MiniLM-L6-v2", "Local BERT directory"], key="model_source")
        path = ""
        if source == "Local BERT directory":
            path = st.text_input(
                "Directory with config.json, model.safetensors and tokenizer.json", key="model_path"
            ).strip()
            if not path:
                st.info("Give the path of a Hugging Face BERT-format directory.")
                return None
    try:
        return get_text_model(path, st.session_state.get("device", "cpu"))
    except ModelLoadError as err:
        st.error(f"Cannot load the model: {err}")
        return None


def stats_table(stats: dict) -> pd.DataFrame:
    n_layers, n_heads = stats["entropy"].shape
    rows = {"layer": np.repeat(np.arange(n_layers), n_heads), "head": np.tile(np.arange(n_heads), n_layers)}
    return pd.DataFrame(rows | {name: values.ravel() for name, values in stats.items()})


st.title("Text attention")
st.caption(
    "Every layer and head of a real pretrained encoder. Multi-head attention is attention done several "
    "times, each head attending to different things (S11)."
)
text_model = model_picker()
if text_model is None:
    st.stop()
st.session_state.setdefault("text_input", EXAMPLE)
st.text_area("Text (any language)", key="text_input", persist_state="session", height=110)
st.file_uploader(
    "…or upload a .txt file (UTF-8 or UTF-16)", type=["txt"], key="text_upload", on_change=read_upload
)
if st.session_state.get("upload_error"):
    st.error(st.session_state.upload_error)

text = st.session_state.text_input
if not text.strip():
    st.info("Type or upload some text to see its attention.")
    st.stop()

model_key = (text_model.name, str(text_model.device), id(text_model.model))
result = compute_attention(text_model, model_key, text)
tokens, probs = result["tokens"], result["probs"]
n_layers, n_heads, n_tokens = probs.shape[0], probs.shape[1], probs.shape[-1]
st.session_state.n_heads = n_heads
if result["n_dropped"]:
    limit = text_model.config.max_position_embeddings
    st.warning(
        f"The input is longer than the model's {limit} positions: the last "
        f"{result['n_dropped']} wordpieces were dropped (the final [SEP] is kept)."
    )
n_unknown = tokens.count("[UNK]")
if n_unknown:
    st.info(
        f"{n_unknown} word(s) are not in this model's vocabulary and became [UNK]; they still take part "
        "in attention. (MiniLM's English vocabulary has the common Chinese characters only.)"
    )
st.markdown(f"**{n_tokens} wordpieces** · {text_model.name} · {n_layers} layers × {n_heads} heads")
st.html(token_strip_html(tokens, text_model.special_tokens))

left, right = st.columns(2)
layer = left.selectbox("Layer", range(n_layers), key="layer", persist_state="session")
head = right.selectbox(
    "Head",
    [*range(n_heads), HEAD_MEAN, HEAD_MAX],
    key="head",
    persist_state="session",
    format_func=lambda h: f"head {h}" if isinstance(h, int) else h,
)
if head == HEAD_MEAN:
    matrix, label = probs[layer].mean(0), "mean over heads"
elif head == HEAD_MAX:
    matrix, label = probs[layer].max(0), "max over heads (rows no longer sum to 1)"
else:
    matrix, label = probs[layer, head], f"head {head}"
st.plotly_chart(
    attention_heatmap(matrix, tokens, tokens, title=f"Layer {layer}, {label}"), key="head_heatmap"
)

stats = head_statistics(probs, tokens)
overview_tab, stats_tab = st.tabs(["Model overview", "Per-head statistics"])
with overview_tab:
    st.caption("Every layer × head (pooled thumbnails). Click one to open it above.")
    st.plotly_chart(
        head_grid(probs),
        key="overview",
        on_select=open_from_overview,
        selection_mode="points",
    )
with stats_tab:
    with st.expander("What the statistics mean"):
        st.markdown("\n".join(f"- **{name}**: {meaning}" for name, meaning in STATISTICS.items()))
    statistic = st.selectbox("Statistic to map", list(STATISTICS), key="statistic")
    st.plotly_chart(head_statistic_heatmap(stats[statistic], statistic), key="stat_heatmap")
    st.dataframe(stats_table(stats), hide_index=True, height=300)
