"""Relevance and head importance: which input tokens an output depends on (Chefer et al. 2021), and which
heads it needs (Michel et al. 2019), on MiniLM, our causal gpt-stdlib and our encoder–decoder.

The model runs once per input (`ui.results.computed`); the relevance of each chosen output, the
importance table and each ablation are computed once per choice and kept. Controls live in fragments:
the raw attention's layer and head only read the kept maps.
"""

import numpy as np
import streamlit as st

from models.errors import ModelLoadError
from ui.explain import (
    ABLATION_EXPLANATION,
    FAMILY_NAMES,
    FILLS,
    RELEVANCE_EXPLANATION,
    heads_picker,
    importance_view,
)
from ui.export import chart
from ui.models import get_model
from ui.relevance import (
    CAUSAL,
    ENCODER,
    EXAMPLES,
    MODELS,
    SEQ2SEQ,
    InputError,
    Subject,
    answer,
    change_of,
    families,
    importance_of,
    raw_row,
    relevance_of,
    subject_of,
)
from ui.results import computed, digest
from ui.widgets import clamped_int, device, head_name, layer_head_picker
from viz.heatmap import heatmap, index_labels

WHOLE = "the whole embedding (its length along its own direction)"


def model_key(model) -> tuple:
    inner = model[0] if isinstance(model, tuple) else model.model
    return id(inner), str(next(inner.parameters()).device)


def subject(name: str, model, text: str) -> Subject:
    key = digest("relevance_subject", name, *model_key(model), text)
    return computed(key, lambda: subject_of(model, MODELS[name], text), spinner="Running the model…")


def output_picker(s: Subject, model) -> tuple[int | None, object, str]:
    """(output, choice, a sentence naming it): a position and a token (causal), a step (seq2seq), or a
    dimension of the sentence embedding (encoder: None for the whole)."""
    if s.kind == ENCODER:
        left, right = st.columns([3, 1])
        which = left.radio(
            "Output to explain", [WHOLE, "one dimension"], key="ra_enc_output", horizontal=True
        )
        if which == WHOLE:
            return None, None, "the mean-pooled sentence embedding"
        dim = clamped_int("Dimension", "ra_dim", 0, model.config.hidden_size - 1, 0, right)
        return None, dim, f"dimension {dim} of the sentence embedding"
    if s.kind == CAUSAL:
        left, right = st.columns(2)
        with left:
            position = clamped_int(
                "Position (the prediction after it)", "ra_pos", 0, len(s.ids) - 1, len(s.ids) - 1
            )
        vocab = model.tokenizer.vocab
        options = [int(i) for i in s.top_ids[position]]
        probs = dict(zip(options, s.top_probs[position], strict=True))
        token = right.selectbox(
            "Predicted token", options, key=f"ra_token_{position}",
            format_func=lambda i: f"{vocab[i]!r}  p = {probs[i]:.3f}",
        )  # fmt: skip
        return (
            position,
            token,
            f"the logit of {vocab[token]!r} after position {position} ({s.tokens[position]})",
        )
    step = st.selectbox(
        "Output step", range(len(s.written)), key="ra_step", format_func=lambda i: s.outputs[i]
    )
    return step, None, f"the logit of the character written at {s.outputs[step]}"


@st.fragment
def relevance_section(name: str, model, s: Subject) -> None:
    output, choice, what = output_picker(s, model)
    key = digest("relevance", name, *model_key(model), s.ids, output, choice)
    rel = computed(
        key, lambda: relevance_of(model, s, output, choice), spinner="One forward and one backward…"
    )
    maps = s.maps
    layer, head = layer_head_picker(
        maps.n_layers, maps.n_heads, key="ra_raw", default=(maps.n_layers - 1, "mean")
    )
    raw = raw_row(s, layer, head, output)
    without_own = st.toggle(
        "Leave out each token's own path", value=True, key="ra_no_own",
        help="Relevance starts from the identity: every token is fully relevant to its own output through "
        "the residual stream. Leave it out to see what attention added.",
    )  # fmt: skip
    relevance = rel.source if s.kind == SEQ2SEQ else rel.relevance - rel.own * without_own
    rows = np.stack([relevance, raw]) / np.maximum(np.stack([relevance, raw]).max(1, keepdims=True), 1e-12)
    kind = "cross-attention" if s.kind == SEQ2SEQ else "attention"
    row_names = ["relevance", f"raw {kind}, layer {layer}, {head_name(head)}"]
    chart(
        heatmap(
            rows, row_names, index_labels(s.tokens), title=f"Relevance of each input token for {what}",
            row_title="", col_title="input token", zmin=0.0, zmax=1.0, value_name="share of the maximum",
            decimals=2 if len(s.tokens) <= 48 else None, height=230,
        ),
        key="ra_relevance",
    )  # fmt: skip
    st.caption(
        f"Each row scaled to its own maximum. The explained output is {rel.value:.3f}. "
        + (
            "The relevance of later positions is exactly 0: the attention is causal."
            if s.kind == CAUSAL
            else ""
        )
    )
    if s.kind == SEQ2SEQ:
        chart(
            heatmap(
                (rel.target - rel.own * without_own)[None], ["relevance"], index_labels(s.decoder_inputs),
                title="…and of what it has read", col_title="decoder input", zmin=0.0,
                value_name="relevance", decimals=2, height=200,
            ),
            key="ra_relevance_target",
        )  # fmt: skip


@st.fragment
def importance_section(name: str, model, s: Subject) -> None:
    n_heads = sum(a * b for a, b in families(model, s.kind).values())
    # On demand: ranking the heads runs the model once more per head (9 to 22 s a new input on the shared
    # VM, the page's heaviest step), and the relevance above is what a visit comes for
    if not st.toggle(f"Ablate each of the {n_heads} heads on these {len(s.ids)} tokens", key="ra_imp_on"):
        return
    left, right = st.columns([1, 2])
    fill = left.radio("Measure with the head", list(FILLS), key="ra_imp_fill", format_func=FILLS.get)
    key = digest("importance", name, *model_key(model), s.ids, fill)
    result = computed(key, lambda: importance_of(model, s, fill), spinner="Ablating every head…")
    names = list(result.measured)
    family = names[0]
    if len(names) > 1:
        family = right.radio(
            "Attention", names, key="ra_imp_family", format_func=FAMILY_NAMES.get, horizontal=True
        )
    importance_view(result, family, key="ra_imp")


@st.fragment
def ablation_section(name: str, model, s: Subject) -> None:
    heads, fill = heads_picker(families(model, s.kind), key="ra_abl")
    if not heads:
        st.info("Pick heads to knock out; the model runs again with them gated off.")
        return
    key = digest("ablation", name, *model_key(model), s.ids, sorted(heads), fill)
    change = computed(
        key, lambda: change_of(model, s, heads, fill), spinner="Running with the heads ablated…"
    )
    c1, c2 = st.columns(2)
    if s.kind == ENCODER:
        c1.metric("Cosine similarity with the unablated embedding", f"{1 - change.effect:.4f}")
        c2.metric(
            "Embedding length along its own direction",
            f"{change.ablated:.3f}",
            f"{change.ablated - change.clean:+.3f}",
        )
        return
    c1.metric(
        "Loss (nats)", f"{change.ablated:.4f}", f"{change.ablated - change.clean:+.4f}", delta_color="inverse"
    )
    if s.kind == SEQ2SEQ:
        c2.metric("Decoded again", change.answer, None if change.answer == answer(s) else f"was {answer(s)}")
        st.caption("Teacher-forced on the model's own output: what the ablated model predicts at each step.")
    else:
        c2.caption("The next character after the text, before and after the ablation.")
    st.dataframe(change.rows, hide_index=True, key="ra_abl_table")


def text_input(kind: str) -> str:
    key = f"ra_text_{kind}"
    st.session_state.setdefault(key, EXAMPLES[kind])
    label = "A date written in English" if kind == SEQ2SEQ else "Text"
    return st.text_input(label, key=key, persist_state="session")


def main() -> None:
    st.title("Relevance and head importance")
    st.caption(
        "Attention says where each head looked. Here: which input tokens an output actually depends on, and "
        "which of the heads, each attending to different things (S11), it needs, measured on the same input."
    )
    name = st.radio("Model", list(MODELS), key="ra_model", horizontal=True)
    try:
        kind = MODELS[name]
        model = get_model(name, device(), kind=kind)
    except ModelLoadError as err:
        st.error(f"Cannot load the model: {err}")
        return
    text = text_input(kind)
    if not text.strip():
        st.info("Type some text to explain.")
        return
    try:
        s = subject(name, model, text)
    except InputError as err:
        st.error(str(err))
        return
    for notice in s.notices:
        st.warning(notice)
    if s.kind == SEQ2SEQ:
        st.markdown(f"The model writes **`{answer(s)}`**.")
    st.subheader("Gradient relevance")
    with st.expander("What this shows", expanded=False):
        st.markdown(RELEVANCE_EXPLANATION)
    relevance_section(name, model, s)
    st.subheader("Head importance")
    with st.expander("What this shows", expanded=False):
        st.markdown(ABLATION_EXPLANATION)
    importance_section(name, model, s)
    st.subheader("Ablate heads")
    ablation_section(name, model, s)


main()
