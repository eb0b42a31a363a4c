"""Step by step: the real tensors of one attention, from X to W_o, for MiniLM or our causal GPT.

The model runs once per (model, text), every layer's attention captured in that one forward; a layer's
stages are recomputed in plain torch when it is shown, and kept. Layer, head and query rerun only the
stage view's fragment, never the model.
"""

import numpy as np
import pandas as pd
import streamlit as st
import torch

from models.errors import ModelLoadError
from models.gpt_io import encoding_notices
from models.stepwise import AttentionCall, attention_stages, capture_calls, record_differences
from ui.export import chart
from ui.llama_models import llama_choice
from ui.llama_steps import llama_steps
from ui.models import get_model
from ui.results import computed, digest
from ui.widgets import clamped_int, device, layer_head_picker
from viz.stepwise import (
    channels_by_tokens,
    char_labels,
    labelled_heatmap,
    mark_column_groups,
    outline,
    tokens_by_channels,
    weight_heatmap,
)

MINILM, GPT = "MiniLM (bidirectional encoder)", "gpt-stdlib (causal decoder)"
LLAMA = "a Llama-family decoder (RoPE, grouped-query attention)"
REGISTRY = {MINILM: ("all-MiniLM-L6-v2", "encoder"), GPT: ("gpt-stdlib", "causal")}  # choice -> name, kind
EXAMPLE = "The cat sat on the mat because it was tired."
MAX_CHARS = 600
PRINT_VALUES_UP_TO = 16  # tokens: up to this many, the score grids print their values on the cells
QUERY, KEY = "query (attending)", "key (attended to)"
STAGES = ["1 · X", "2 · Q, K, V", "3 · Scores → softmax", "4 · A·V", "5 · Concat, W_o", "6 · Two conventions"]


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


def input_key(model, ids: list[int]) -> str:
    return digest("step_by_step", model.name, str(model.device), id(model.model), ids)


def forward(model, ids: list[int]) -> list[AttentionCall]:
    """What every layer's attention received and returned, from one forward per (model, text)."""

    def run() -> list[AttentionCall]:
        net = model.model
        input_ids = torch.tensor([ids], device=model.device)
        with torch.no_grad():
            return capture_calls(
                [block.attention for block in net.layers], lambda: net(input_ids, capture=True)
            )

    return computed(input_key(model, ids), run, spinner="Running the model…")


def layer_stages(model, ids: list[int], calls: list[AttentionCall], layer: int) -> dict:
    """{"stages": every stage of layer `layer` as arrays, "gaps": its gap to the model's own record}."""

    def run() -> dict:
        module = model.model.layers[layer].attention
        stages = attention_stages(module, calls[layer])
        arrays = {}
        for name, value in vars(stages).items():
            if isinstance(value, torch.Tensor):
                value = value.cpu().numpy()
                value.setflags(write=False)  # shared by sessions
            arrays[name] = value
        return {"stages": arrays, "gaps": record_differences(stages, calls[layer])}

    return computed(input_key(model, ids) + f"/layer {layer}", run)


def score_heatmap(matrix, labels, title, value_name, query, mask=None, diverging=True, height=380):
    """One (T, T) stage of the chosen head, masked entries grey, the query's row outlined."""
    fig = labelled_heatmap(
        matrix, labels, labels, QUERY, KEY, title,
        colorscale="RdBu" if diverging else "Viridis", zmid=0.0 if diverging else None,
        zmin=None if diverging else 0.0, value_name=value_name, height=height, mask=mask,
        decimals=2 if len(labels) <= PRINT_VALUES_UP_TO else None,
    )  # fmt: skip
    return outline(fig, row=query)


def claims() -> None:
    st.title("Step by step")
    st.caption(
        "One attention of a real model, every tensor in the order it is computed: X, Q, K, V, QKᵀ, the "
        "scaling, the mask, the softmax, A·V, the concatenation of heads and W_o. Every number is recomputed "
        "here in plain torch from what the layer received, and checked against the model's own capture at "
        "the bottom."
    )
    with st.expander("Which claims of the notes this page shows"):
        st.markdown(
            "- **S4** d is the number of channels: X has d columns; Q, K, V of one head have "
            "d_head = d / heads.\n"
            "- **S13** the mask is applied after the scaling and before the softmax; on QKᵀ of a causal "
            "model it keeps the lower triangle.\n"
            "- **S5** rows as tokens, A = softmax(QKᵀ/√d_head) and output A·V; columns as tokens, A = KᵀQ "
            "and output V·A — the same numbers, transposed."
        )


def model_choice():
    """(choice, loaded model), or (choice, None) after an error message."""
    name = st.sidebar.radio("Model", [MINILM, GPT, LLAMA], key="sbs_model")
    if name == LLAMA:
        return name, llama_choice("sbs_llama")
    registry_name, kind = REGISTRY[name]
    try:
        return name, get_model(registry_name, device(), kind=kind)
    except ModelLoadError as err:
        st.error(
            f"Cannot load {name}: {err}. "
            "The causal model's weights are made by `python -m scripts.train_gpt`."
        )
        return name, None


def text_choice() -> str:
    st.session_state.setdefault("sbs_text", EXAMPLE)
    st.text_area("Text", key="sbs_text", persist_state="session", max_chars=MAX_CHARS, height=80)
    return st.session_state.sbs_text


def start_query_at_the_end(name: str, ids: list[int]) -> None:
    """A new text or model starts the query choice again from its last token."""
    tokenised = digest(name, ids)
    if st.session_state.get("sbs_query_of") != tokenised:
        st.session_state.sbs_query_of = tokenised
        st.session_state.sbs_query = len(ids) - 1


def x_section(s: dict, name: str, layer: int, labels: list[str], query: int) -> None:
    d = s["x"].shape[1]
    st.header("1 · X: what the attention reads (S4)")
    if name == MINILM:
        source = f"the output of layer {layer - 1}" if layer else "the embeddings (after their LayerNorm)"
        st.markdown(f"MiniLM is post-norm: X is {source}.")
    else:
        st.markdown(f"The GPT is pre-norm: X = LayerNorm₁ of the residual stream entering block {layer}.")
    st.markdown(f"**{len(labels)} tokens × d = {d} channels.** The chosen query row is outlined.")
    chart(outline(tokens_by_channels(s["x"], labels, f"channel (d = {d})", "X"), row=query), key="x")


def qkv_section(s: dict, head: int, labels: list[str], query: int) -> None:
    n_heads, _, dh = s["q"].shape
    d = s["x"].shape[1]
    head_cols = f"channel of head {head} (d_head = {dh})"
    st.header(f"2 · Q, K, V of head {head} (S4)")
    st.markdown(
        f"Q = X W_q + b_q keeps the head's {dh} columns of W_q (d × d_head = {d} × {dh}); K and V likewise. "
        f"{n_heads} heads × d_head {dh} = d {d}."
    )
    for column, key in zip(st.columns(3), ("q", "k", "v"), strict=True):
        fig = tokens_by_channels(s[key][head], labels, head_cols, f"{key.upper()} = X W_{key}")
        chart(outline(fig, row=query) if key == "q" else fig, key=f"{key}_fig", where=column)
    with st.expander(f"The weights that made them: head {head}'s columns of W_q, W_k, W_v (d × d_head)"):
        head_slice = slice(head * dh, (head + 1) * dh)
        for column, key in zip(st.columns(3), ("q", "k", "v"), strict=True):
            w = s[f"w_{key}"][:, head_slice]
            fig = weight_heatmap(w, f"input channel (d = {d})", head_cols, f"W_{key}[:, head {head}]")
            chart(fig, key=f"w_{key}_fig", where=column)


def scores_section(s: dict, head: int, labels: list[str], query: int) -> None:
    mask, dh, n_tokens = s["mask"][head], s["q"].shape[-1], len(labels)
    st.header("3 · Scores, scaling, mask, softmax (S13)")
    top = st.columns(2)
    chart(score_heatmap(s["scores"][head], labels, "QKᵀ", "QKᵀ", query), key="scores", where=top[0])
    chart(
        score_heatmap(
            s["scaled"][head], labels, f"× 1/√d_head = 1/√{dh} = {s['scale']:.4f}", "scaled", query
        ),
        key="scaled",
        where=top[1],
    )
    bottom = st.columns(2)
    chart(
        score_heatmap(
            s["masked"][head], labels, "mask: masked entries set to −∞ (grey)", "masked", query, mask=mask
        ),
        key="masked",
        where=bottom[0],
    )
    chart(
        score_heatmap(
            s["probs"][head], labels, "softmax over each row (A)", "weight", query, mask=mask, diverging=False
        ),
        key="probs",
        where=bottom[1],
    )
    n_masked = int((~mask).sum())
    if n_masked:
        st.markdown(
            f"The mask removes **{n_masked}** of {n_tokens * n_tokens} entries, applied *after* the scaling "
            f"and *before* the softmax: they are −∞ there, so their weight after the softmax is exactly "
            f"{float(np.abs(s['probs'][head][~mask]).max()):g}."
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


def output_section(s: dict, head: int, labels: list[str], query: int) -> None:
    dh = s["q"].shape[-1]
    st.header("4 · The head's output A·V")
    st.markdown(f"Row i is Σⱼ Aᵢⱼ Vⱼ: a weighted mean of value rows, {len(labels)} × d_head {dh}.")
    fig = tokens_by_channels(s["heads"][head], labels, f"channel of head {head} (d_head = {dh})", "A·V")
    chart(outline(fig, row=query), key="heads")


def concat_section(s: dict, labels: list[str]) -> None:
    n_heads, _, dh = s["q"].shape
    d = s["x"].shape[1]
    st.header("5 · All heads: concatenate, then W_o")
    st.markdown(
        f"The {n_heads} head outputs side by side make {len(labels)} × {d} (lines mark the heads); "
        f"output = Concat · W_o + b_o with W_o of {d} × {d}."
    )
    concat = tokens_by_channels(s["concat"], labels, f"channel (d = {d})", "Concat(heads)")
    chart(mark_column_groups(concat, dh), key="concat")
    with st.expander(f"W_o ({d} × {d}), drawn transposed: column block h multiplies head h's output"):
        w_o = weight_heatmap(s["w_o"].T, f"output channel (d = {d})", f"concat channel (d = {d})", "W_oᵀ")
        chart(mark_column_groups(w_o, dh), key="w_o_fig")
    chart(
        tokens_by_channels(s["output"], labels, f"channel (d = {d})", "output = Concat W_o + b_o"),
        key="output",
    )


def conventions_section(s: dict, head: int, labels: list[str], query: int, gaps: dict) -> None:
    mask, dh = s["mask"][head], s["q"].shape[-1]
    head_cols = f"channel of head {head} (d_head = {dh})"
    st.header("6 · Two conventions, the same numbers (S5)")
    rows_side, cols_side = st.columns(2)
    with rows_side:
        st.markdown("**Rows as tokens**: A = softmax(QKᵀ/√d_head), output A·V")
        chart(
            score_heatmap(
                s["probs"][head], labels, "A (query rows)", "weight", query, mask=mask, diverging=False,
                height=460,
            ),
            key="rows_a",
        )  # fmt: skip
        chart(tokens_by_channels(s["heads"][head], labels, head_cols, "A·V (tokens × d_head)"), key="rows_av")
    with cols_side:
        st.markdown("**Columns as tokens**: Q, K, V are d_head × tokens; A = KᵀQ/√d_head, output V·A")
        fig = labelled_heatmap(
            s["probs_columns"][head], labels, labels, "key", "query", "A (query columns, each sums to 1)",
            "Viridis", zmid=None, zmin=0.0, height=460, mask=mask.T,
            decimals=2 if len(labels) <= PRINT_VALUES_UP_TO else None,
        )  # fmt: skip
        chart(outline(fig, col=query), key="cols_a")
        chart(
            channels_by_tokens(s["heads_columns"][head], labels, head_cols, "V·A (d_head × tokens)"),
            key="cols_va",
        )
    a_gap = np.abs(s["probs_columns"][head] - s["probs"][head].T).max()
    st.markdown(f"Largest difference between the two: A {a_gap:.1e}, output {gaps['V·A vs (A·V)ᵀ']:.1e}.")


def check_section(gaps: dict) -> None:
    st.header("Check: recomputed here vs the model's own capture")
    st.dataframe(
        pd.DataFrame({"stage": list(gaps), "largest |difference|": list(gaps.values())}), hide_index=True
    )


@st.fragment
def stage_view(name: str, model, ids: list[int], labels: list[str]) -> None:
    """Every stage of the chosen layer, head and query; a change reruns this fragment, never the model."""
    calls = forward(model, ids)  # kept: this is a lookup
    n_heads = model.model.layers[0].attention.n_heads
    picker, query_column = st.columns([2, 1])
    layer, head = layer_head_picker(len(calls), n_heads, key="sbs", reductions=False, container=picker)
    query = clamped_int(
        "Query token (position)", "sbs_query", 0, len(ids) - 1, len(ids) - 1, query_column,
        help="The query whose row is outlined and tabled; a new text starts from its last token.",
    )  # fmt: skip
    query_column.caption(f"query {query}: {labels[query]}")
    kept = layer_stages(model, ids, calls, layer)
    s, gaps = kept["stages"], kept["gaps"]
    sections = (
        lambda: x_section(s, name, layer, labels, query),
        lambda: qkv_section(s, head, labels, query),
        lambda: scores_section(s, head, labels, query),
        lambda: output_section(s, head, labels, query),
        lambda: concat_section(s, labels),
        lambda: conventions_section(s, head, labels, query, gaps),
    )
    # Stateful tabs: only the open stage is drawn (one to four figures, not nineteen), and opening another
    # reruns this fragment only
    for tab, section in zip(st.tabs(STAGES, key="sbs_stage", on_change="rerun"), sections, strict=True):
        with tab:
            if tab.open:
                section()
    check_section(gaps)


def main() -> None:
    claims()
    name, model = model_choice()
    if model is None:
        return
    text = text_choice()
    if not text.strip():
        st.info("Type some text to follow its attention step by step.")
        return
    if name == LLAMA:
        llama_steps(model, text)
        return
    ids, labels = tokenize(model, name, text)
    forward(model, ids)
    start_query_at_the_end(name, ids)
    stage_view(name, model, ids, labels)


main()
