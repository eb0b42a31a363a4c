"""Step by step: the real tensors of one attention, from X to W_o, for MiniLM or our causal GPT."""

import numpy as np
import pandas as pd
import streamlit as st
import torch

from models.errors import ModelLoadError
from models.gpt_io import encoding_notices
from models.stepwise import attention_stages, capture_call, record_differences
from ui.models import get_model
from viz.attention import attention_heatmap
from viz.stepwise import (
    MASKED_GREY,
    channels_by_tokens,
    char_labels,
    labelled_heatmap,
    mark_column_groups,
    outline,
    tokens_by_channels,
    weight_heatmap,
)

MINILM, GPT = "MiniLM (bidirectional encoder)", "gpt-stdlib (causal decoder)"
REGISTRY = {MINILM: ("all-MiniLM-L6-v2", "encoder"), GPT: ("gpt-stdlib", "causal")}  # choice -> name, kind
EXAMPLE = "The cat sat on the mat because it was tired."
MAX_CHARS = 600


def tokenize(model, name: str, text: str) -> tuple[list[int], list[str]]:
    """Ids and display labels; warns about what the tokenizer dropped or could not read."""
    if name == MINILM:
        enc = model.encode(text)
        if enc.n_dropped:
            st.warning(
                f"The text is longer than MiniLM's 512 positions: "
                f"the last {enc.n_dropped} wordpieces were dropped."
            )
        return enc.ids, enc.tokens
    enc = model.tokenizer.encode(text, max_len=model.config.block_size)
    for notice in encoding_notices(enc, model.config.block_size):
        st.warning(notice)
    return enc.ids, char_labels(enc.tokens)


@st.cache_data(max_entries=16, show_spinner="Running the model…")
def compute_stages(_model, model_key: tuple, ids: tuple[int, ...], layer: int):
    """Every stage of layer `layer`'s attention on `ids`, and its gap to the model's own record."""
    net = _model.model
    module = net.layers[layer].attention
    input_ids = torch.tensor([ids], device=_model.device)
    with torch.no_grad():
        call = capture_call(module, lambda: net(input_ids, capture=True))
    stages = attention_stages(module, call)
    arrays = {k: (v.cpu().numpy() if isinstance(v, torch.Tensor) else v) for k, v in vars(stages).items()}
    return arrays, record_differences(stages, call)


def symmetric(fig):
    """Centre a diverging colour scale of a heatmap on 0."""
    z = np.asarray(fig.data[0].z, dtype=float)
    bound = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1.0
    fig.data[0].update(zmin=-bound, zmax=bound, colorscale="RdBu")
    return fig


def score_heatmap(matrix, labels, title, value_name, query, diverging=True, height=380):
    fig = attention_heatmap(matrix, labels, labels, title=title, zmin=None, value_name=value_name)
    fig.update_layout(plot_bgcolor=MASKED_GREY, height=height)
    if diverging:
        symmetric(fig)
    return outline(fig, row=query)


st.title("Step by step")
st.caption(
    "One attention of a real model, every tensor in the order it is computed: X, Q, K, V, QKᵀ, the "
    "scaling, the mask, the softmax, A·V, the concatenation of heads and W_o. Every number is recomputed "
    "here in plain torch from what the layer received, and checked against the model's own capture at the "
    "bottom."
)
with st.expander("Which claims of the notes this page shows"):
    st.markdown(
        "- **S4** d is the number of channels: X has d columns; Q, K, V of one head have "
        "d_head = d / heads.\n"
        "- **S13** the mask is applied after the scaling and before the softmax; on QKᵀ of a causal model it "
        "keeps the lower triangle.\n"
        "- **S5** rows as tokens, A = softmax(QKᵀ/√d_head) and output A·V; columns as tokens, A = KᵀQ and "
        "output V·A — the same numbers, transposed."
    )

name = st.sidebar.radio("Model", [MINILM, GPT], key="sbs_model")
try:
    registry_name, kind = REGISTRY[name]
    model = get_model(registry_name, st.session_state.get("device", "cpu"), kind=kind)
except ModelLoadError as err:
    st.error(
        f"Cannot load {name}: {err}. The causal model's weights are made by `python -m scripts.train_gpt`."
    )
    st.stop()

st.session_state.setdefault("sbs_text", EXAMPLE)
st.text_area("Text", key="sbs_text", persist_state="session", max_chars=MAX_CHARS, height=80)
text = st.session_state.sbs_text
if not text.strip():
    st.info("Type some text to follow its attention step by step.")
    st.stop()
ids, labels = tokenize(model, name, text)
n_tokens = len(ids)

net = model.model
n_layers, n_heads = len(net.layers), net.layers[0].attention.n_heads
for key, limit in (("sbs_layer", n_layers), ("sbs_head", n_heads)):
    if st.session_state.get(key, 0) >= limit:  # a choice left over from another model or a longer text
        st.session_state[key] = limit - 1
# the query choice belongs to one tokenised text: a new text or model starts again from its last token
query_key = f"sbs_query_{name}_{hash(tuple(ids))}"
st.session_state.setdefault(query_key, n_tokens - 1)
left, middle, right = st.columns(3)
layer = left.selectbox("Layer", range(n_layers), key="sbs_layer", persist_state="session")
head = middle.selectbox("Head", range(n_heads), key="sbs_head", persist_state="session")
query = right.selectbox(
    "Query token",
    range(n_tokens),
    key=query_key,
    persist_state="session",
    format_func=lambda i: f"{i}: {labels[i]}",
)

s, gaps = compute_stages(model, (name, str(model.device), id(net)), tuple(ids), layer)
d, dh = s["x"].shape[1], s["q"].shape[-1]
head_cols = f"channel of head {head} (d_head = {dh})"

st.header("1 · X: what the attention reads (S4)")
if name == MINILM:
    source = f"the output of layer {layer - 1}" if layer else "the embeddings (after their LayerNorm)"
    st.markdown(f"MiniLM is post-norm: X is {source}.")
else:
    st.markdown(f"The GPT is pre-norm: X = LayerNorm₁ of the residual stream entering block {layer}.")
st.markdown(f"**{n_tokens} tokens × d = {d} channels.** The chosen query row is outlined.")
st.plotly_chart(outline(tokens_by_channels(s["x"], labels, f"channel (d = {d})", "X"), row=query), key="x")

st.header(f"2 · Q, K, V of head {head} (S4)")
st.markdown(
    f"Q = X W_q + b_q keeps the head's {dh} columns of W_q (d × d_head = {d} × {dh}); K and V likewise. "
    f"{n_heads} heads × d_head {dh} = d {d}."
)
columns = st.columns(3)
for column, key in zip(columns, ("q", "k", "v"), strict=True):
    fig = tokens_by_channels(s[key][head], labels, head_cols, f"{key.upper()} = X W_{key}")
    column.plotly_chart(outline(fig, row=query) if key == "q" else fig, key=f"{key}_fig")
with st.expander(f"The weights that made them: head {head}'s columns of W_q, W_k, W_v (d × d_head)"):
    head_slice = slice(head * dh, (head + 1) * dh)
    for column, key in zip(st.columns(3), ("q", "k", "v"), strict=True):
        w = s[f"w_{key}"][:, head_slice]
        fig = weight_heatmap(w, f"input channel (d = {d})", head_cols, f"W_{key}[:, head {head}]")
        column.plotly_chart(fig, key=f"w_{key}_fig")

st.header("3 · Scores, scaling, mask, softmax (S13)")
masked_view = np.where(s["mask"][head], s["masked"][head], np.nan)
n_masked = int((~s["mask"][head]).sum())
top = st.columns(2)
top[0].plotly_chart(score_heatmap(s["scores"][head], labels, "QKᵀ", "QKᵀ", query), key="scores")
top[1].plotly_chart(
    score_heatmap(s["scaled"][head], labels, f"× 1/√d_head = 1/√{dh} = {s['scale']:.4f}", "scaled", query),
    key="scaled",
)
bottom = st.columns(2)
bottom[0].plotly_chart(
    score_heatmap(masked_view, labels, "mask: masked entries set to −∞ (grey)", "masked", query), key="masked"
)
probs_view = np.where(s["mask"][head], s["probs"][head], np.nan)
bottom[1].plotly_chart(
    score_heatmap(probs_view, labels, "softmax over each row (A)", "weight", query, diverging=False),
    key="probs",
)
if n_masked:
    st.markdown(
        f"The mask removes **{n_masked}** of {n_tokens * n_tokens} entries, applied *after* the scaling and "
        f"*before* the softmax: they are −∞ there, so their weight after the softmax is exactly "
        f"{float(np.abs(s['probs'][head][~s['mask'][head]]).max()):g}."
    )
else:
    st.markdown("MiniLM attends in both directions: with one unpadded text its mask keeps every entry.")
row = pd.DataFrame(
    {
        "key": [f"{j}: {labels[j]}" for j in range(n_tokens)],
        "QKᵀ": s["scores"][head][query],
        "×1/√d_head": s["scaled"][head][query],
        "masked": s["masked"][head][query],
        "softmax": s["probs"][head][query],
    }
)
st.markdown(f"Query **{query}: {labels[query]}**, every stage of its row:")
st.dataframe(row, hide_index=True, height=240)

st.header("4 · The head's output A·V")
st.markdown(f"Row i is Σⱼ Aᵢⱼ Vⱼ: a weighted mean of value rows, {n_tokens} × d_head {dh}.")
st.plotly_chart(
    outline(tokens_by_channels(s["heads"][head], labels, head_cols, "A·V"), row=query), key="heads"
)

st.header("5 · All heads: concatenate, then W_o")
st.markdown(
    f"The {n_heads} head outputs side by side make {n_tokens} × {d} (lines mark the heads); "
    f"output = Concat · W_o + b_o with W_o of {d} × {d}."
)
concat = mark_column_groups(
    tokens_by_channels(s["concat"], labels, f"channel (d = {d})", "Concat(heads)"), dh
)
st.plotly_chart(concat, key="concat")
with st.expander(f"W_o ({d} × {d}), drawn transposed: column block h multiplies head h's output"):
    st.plotly_chart(
        mark_column_groups(
            weight_heatmap(s["w_o"].T, f"output channel (d = {d})", f"concat channel (d = {d})", "W_oᵀ"), dh
        ),
        key="w_o_fig",
    )
st.plotly_chart(
    tokens_by_channels(s["output"], labels, f"channel (d = {d})", "output = Concat W_o + b_o"), key="output"
)

st.header("6 · Two conventions, the same numbers (S5)")
rows_side, cols_side = st.columns(2)
with rows_side:
    st.markdown("**Rows as tokens**: A = softmax(QKᵀ/√d_head), output A·V")
    st.plotly_chart(
        score_heatmap(probs_view, labels, "A (query rows)", "weight", query, diverging=False, height=460),
        key="rows_a",
    )
    st.plotly_chart(
        tokens_by_channels(s["heads"][head], labels, head_cols, "A·V (tokens × d_head)"), key="rows_av"
    )
with cols_side:
    st.markdown("**Columns as tokens**: Q, K, V are d_head × tokens; A = KᵀQ/√d_head, output V·A")
    probs_cols = np.where(s["mask"][head].T, s["probs_columns"][head], np.nan)
    fig = labelled_heatmap(
        probs_cols,
        labels,
        labels,
        "key",
        "query",
        "A (query columns, each sums to 1)",
        "Viridis",
        zmid=None,
        zmin=0.0,
        height=460,
    )
    st.plotly_chart(outline(fig, col=query), key="cols_a")
    st.plotly_chart(
        channels_by_tokens(s["heads_columns"][head], labels, head_cols, "V·A (d_head × tokens)"),
        key="cols_va",
    )
a_gap = np.abs(s["probs_columns"][head] - s["probs"][head].T).max()
st.markdown(f"Largest difference between the two: A {a_gap:.1e}, output {gaps['V·A vs (A·V)ᵀ']:.1e}.")

st.header("Check: recomputed here vs the model's own capture")
st.dataframe(
    pd.DataFrame({"stage": list(gaps), "largest |difference|": list(gaps.values())}), hide_index=True
)
