"""Causal decoder: our character-level GPT's heads, its causal mask, generation, and encoder vs decoder.

Each text runs through a model once (`capture=LAZY`, kept per process); a head's map is computed when it is
shown. The head measurements run once per model. Layer and head pickers rerun only their fragment.
"""

import numpy as np
import streamlit as st
import torch

from models.attention import LAZY
from models.errors import ModelLoadError
from models.explain.capture import attention_modules
from models.gpt import generate
from models.gpt_io import TextGPT
from models.head_scores import (
    induction_share,
    induction_targets,
    measure_heads,
    period_targets,
    repeated_random_tokens,
)
from models.maps import AttentionMaps
from models.readout import readout
from ui.export import chart
from ui.links import explain_link
from ui.llama_causal import llama_page, model_choice
from ui.models import get_model
from ui.results import computed, digest
from ui.value_norms import Attentions, value_norms_section
from ui.widgets import clamped_int, device, head_name, layer_head_picker
from viz.attention import attention_heatmap, head_statistic_heatmap
from viz.causal import generation_rows, mark_targets, overlay_causal_mask
from viz.stepwise import char_labels

PERIOD = 64  # the repeated random block of the head measurements (as in scripts/train_gpt.py)
MAX_NEW = 200  # generation re-runs the model once per token, so it is bounded
EXAMPLE = "Quick zebras jump. "  # few repeated characters, so each has one clear induction target


def model_key(model) -> tuple:
    return model.name, str(model.device), id(model.model)


@st.cache_data(max_entries=4, show_spinner="Measuring every head on repeated random characters…")
def head_scores(_gpt: TextGPT, model_key: tuple) -> dict[str, np.ndarray]:
    """{"previous_token": (L, H), "induction": (L, H)}: small, measured once per model."""
    ids = repeated_random_tokens(16, PERIOD, 1, _gpt.config.vocab_size, seed=0).to(_gpt.device)
    return {name: values.numpy() for name, values in measure_heads(_gpt.model, ids, PERIOD).items()}


def family_of(model) -> str:
    return "decoder_self" if isinstance(model, TextGPT) else "encoder"


def maps_key(model, ids: list[int]) -> str:
    """The digest that keeps `attention_of(model, ids)` and what is derived from it."""
    return digest("causal_decoder", family_of(model), *model_key(model), ids)


def attention_of(model, ids: list[int]) -> AttentionMaps:
    """Every head of a GPT (decoder_self) or a BERT (encoder) on `ids`, from one forward per input."""
    family = family_of(model)

    def run() -> AttentionMaps:
        records = model.run(list(ids), capture=LAZY).attentions
        return AttentionMaps(readout(**{family: records})[family])

    return computed(maps_key(model, ids), run, spinner="Running the model…")


def generation_of(gpt: TextGPT, ids: list[int], n_new: int, temperature: float):
    """(every id, one (L, H, t) array per step: the new token's attention row), once per setting."""

    def run():
        result = generate(gpt.model, list(ids), n_new, temperature=temperature, seed=0)
        return result.ids, [row.numpy() for row in result.rows]

    key = digest("generation", *model_key(gpt), ids, n_new, temperature)
    return computed(key, run, spinner="Generating one character at a time…")


def encode(gpt: TextGPT, text: str, quiet: bool = False) -> tuple[list[int], list[str]]:
    """Token ids and display labels; warns (unless quiet) about truncation and unknown characters."""
    ids, tokens, notices = gpt.encode(text)
    for notice in [] if quiet else notices:
        st.warning(notice)
    return ids, char_labels(tokens)


def future_share(probs: np.ndarray) -> float:
    """Mean over queries of the weight on keys after the query (the upper triangle)."""
    return float(np.triu(probs, k=1).sum(-1).mean())


def short_head(head) -> str:
    return f"H{head}" if isinstance(head, (int, np.integer)) else head_name(head)


def intro() -> None:
    st.title("Causal decoder")
    st.caption(
        "Masked attention only attends to what has already been produced (S12). The models: gpt-stdlib, a "
        "small character-level GPT, and llama-stdlib, a long-context Llama, both trained by us on Python's "
        "standard library (`python -m scripts.train_gpt`, `python -m scripts.train_llama`), or a GPT-2, "
        "Llama, Mistral or Qwen2 by name or directory."
    )


def model_summary(gpt: TextGPT) -> None:
    bpc = (gpt.training or {}).get("val_bits_per_char")
    st.markdown(
        f"**{gpt.name}**: {gpt.config.n_layer} layers × {gpt.config.n_head} heads, d = {gpt.config.n_embd}, "
        f"context {gpt.config.block_size} {gpt.unit}s"
        + (f"; validation {bpc:.2f} bits per character." if bpc is not None else ".")
    )


def heads_section(gpt: TextGPT) -> tuple[int, int]:
    """Per-head scores; returns the best induction head (layer, head)."""
    st.header("1 · Heads that copy: previous-token and induction scores")
    with st.expander("How the scores are measured"):
        st.markdown(
            f"16 sequences of {PERIOD} random {gpt.unit}s, each followed by itself. **Previous-token "
            "score**: mean weight from each character to the one just before it. **Induction score**: mean "
            "weight from each character of the second copy to the character that *followed* its first copy: "
            "the head has found “last time this came, what came next?”, which predicts the rest of the "
            "copy. Both lie in [0, 1]. Each head is a separate attention with its own pattern (S11)."
        )
    scores = head_scores(gpt, model_key(gpt))
    shape = scores["induction"].shape
    best = tuple(int(i) for i in np.unravel_index(scores["induction"].argmax(), shape))
    best_prev = tuple(int(i) for i in np.unravel_index(scores["previous_token"].argmax(), shape))
    left, right = st.columns(2)
    chart(
        head_statistic_heatmap(scores["previous_token"], "previous-token score"),
        key="prev_scores",
        where=left,
    )
    chart(head_statistic_heatmap(scores["induction"], "induction score"), key="ind_scores", where=right)
    st.markdown(
        f"Best induction head: **layer {best[0]}, head {best[1]}** (score {scores['induction'][best]:.2f}); "
        f"best previous-token head: layer {best_prev[0]}, head {best_prev[1]} "
        f"({scores['previous_token'][best_prev]:.2f})."
    )
    return best


def text_choice() -> tuple[str, bool]:
    st.session_state.setdefault("cd_text", EXAMPLE)
    st.text_input(
        "Your text (for sections 2, 3, 5 and 6)", key="cd_text", persist_state="session", max_chars=1000,
        bind="query-params",
    )  # fmt: skip
    repeat = st.checkbox(
        "Repeat it twice in sections 2, 3 and 6", value=True, key="cd_repeat", bind="query-params"
    )
    return st.session_state.cd_text, repeat


def own_text_section(gpt: TextGPT, text: str, repeat: bool, layer: int, head: int) -> None:
    """The chosen head on the user's text, induction targets circled, then the mask before/after softmax.

    Repeated, the target of a character of the second copy is the character after it in the first copy;
    otherwise it is what followed the latest earlier occurrence of the same pair of characters.
    """
    st.header("2 · On your own repeated text")
    ids, labels = encode(gpt, text * 2 if repeat else text)
    maps = attention_of(gpt, ids)
    probs = maps.head(layer, head)
    targets = period_targets(len(ids), len(text)) if repeat else induction_targets(ids)
    n_marked = sum(j is not None for j in targets)
    fig = overlay_causal_mask(
        attention_heatmap(probs, labels, labels, title=f"Layer {layer}, head {head}"), len(ids)
    )
    chart(mark_targets(fig, targets, labels, "induction target: what followed last time"), key="own_text")
    if n_marked:
        share = float(induction_share(torch.tensor(probs), targets))
        st.markdown(
            f"{len(ids)} {gpt.unit}s. Weight this head puts on the induction target (circles), averaged "
            f"over the {n_marked} {gpt.unit}s that have one: **{share:.2f}**."
        )
    else:
        st.markdown("Nothing repeats in this text, so there are no induction targets to mark.")
    mask_section(maps, labels, layer, head)


def mask_section(maps: AttentionMaps, labels: list[str], layer: int, head: int) -> None:
    """The scaled scores with −∞ above the diagonal (drawn masked), and the softmax: exactly 0 there."""
    st.header("3 · The causal mask, before and after the softmax (S12, S13)")
    with torch.no_grad():
        masked = maps.family.scores(layer, head).float().cpu().numpy()  # (T, T), −∞ where masked
        allowed = maps.family.head_mask(layer, head)  # (T, T) bool, the causal mask
    allowed = None if allowed is None else allowed.cpu().numpy()
    probs = maps.head(layer, head)
    upper = np.triu(np.ones_like(probs, dtype=bool), k=1)
    before, after = st.columns(2)
    chart(
        attention_heatmap(
            masked, labels, labels, title="scaled scores, −∞ (grey) above the diagonal", zmin=None,
            colorscale="RdBu_r", value_name="QKᵀ/√d_head", mask=allowed,
        ),
        key="mask_before", where=before,
    )  # fmt: skip
    fig_after = attention_heatmap(probs, labels, labels, title="softmax: exactly 0 above the diagonal")
    chart(overlay_causal_mask(fig_after, len(labels)), key="mask_after", where=after)
    n_upper = int(upper.sum())
    st.markdown(
        f"Above the diagonal ({n_upper} entries): before the softmax all −∞: "
        f"**{bool(np.isneginf(masked[upper]).all())}**; after it, the largest weight is "
        f"**{float(probs[upper].max()) if n_upper else 0.0:g}**, and every row still sums to 1 (largest "
        f"error {float(np.abs(probs.sum(-1) - 1).max()):.1e}). The mask comes after the scaling and before "
        "the softmax."
    )


def generation_section(gpt: TextGPT, layer: int, head: int) -> None:
    st.header("4 · Generation, one character at a time (S12)")
    st.session_state.setdefault("cd_prompt", "Return the ")
    st.text_input("Prompt", key="cd_prompt", persist_state="session", max_chars=1000)
    controls = st.columns(2)
    requested = clamped_int("Characters to generate", "cd_new", 1, 100_000, 60, controls[0])
    temperature = controls[1].slider(
        "Temperature (0 = greedy)", 0.0, 1.5, 0.8, 0.1, key="cd_temperature",
        help="Sampling with a fixed seed, so the same settings give the same text. Greedy decoding of a "
        "small model soon loops, and its induction heads then keep copying the loop.",
    )  # fmt: skip
    prompt = st.session_state.cd_prompt
    if not prompt:
        st.info("Type a prompt: the model continues text, so it needs at least one character to start from.")
        return
    prompt_ids, _ = encode(gpt, prompt)
    context = gpt.config.block_size
    n_new = min(requested, MAX_NEW, context - len(prompt_ids))
    if n_new < 1:
        st.error(f"The prompt fills the whole context of {context} characters; shorten it to generate.")
        return
    if n_new < requested:
        st.warning(
            f"Generating {n_new} characters, not {requested}: at most {MAX_NEW} per run, and the prompt "
            f"({len(prompt_ids)}) plus the new characters must fit the context of {context}."
        )
    all_ids, rows = generation_of(gpt, prompt_ids, n_new, float(temperature))
    st.code(gpt.tokenizer.decode(all_ids), language=None)
    labels = char_labels(gpt.tokens(all_ids))
    title = f"Layer {layer}, head {head}: each step's new row"
    rows_fig = generation_rows([row[layer, head] for row in rows], labels, len(prompt_ids), title)
    chart(rows_fig, key="generation")
    st.caption(
        "Each row is one step: the newest character's query over everything produced so far. Nothing to "
        "its right exists yet, so stacking the rows rebuilds the lower triangle of the causal attention."
    )


@st.fragment
def chosen_head_view(gpt: TextGPT, text: str, repeat: bool, best: tuple[int, int]) -> None:
    """Sections 2–4 for one head: a layer, head or prompt change reruns this fragment only."""
    layer, head = layer_head_picker(
        gpt.config.n_layer, gpt.config.n_head, key="cd", reductions=False, default=best, bind=True
    )
    if text.strip():
        own_text_section(gpt, text, repeat, layer, head)
    else:
        st.info("Type some text to see the chosen head and the causal mask on it.")
    generation_section(gpt, layer, head)


@st.fragment
def encoder_side(text: str) -> None:
    try:
        bert = get_model("all-MiniLM-L6-v2", device(), kind="encoder")
    except ModelLoadError as err:
        st.error(f"Cannot load MiniLM for the comparison: {err}")
        return
    enc = bert.encode(text)
    maps = attention_of(bert, enc.ids)
    layer, head = layer_head_picker(maps.n_layers, maps.n_heads, key="cd_enc", bind=True)
    probs = maps.head(layer, head)
    fig = attention_heatmap(probs, enc.tokens, enc.tokens, title=f"MiniLM L{layer} {short_head(head)}")
    chart(overlay_causal_mask(fig, len(enc.ids), "what a causal mask would hide"), key="vs_encoder")
    st.metric("Weight on later tokens (mean per query)", f"{future_share(probs):.3f}")


@st.fragment
def decoder_side(gpt: TextGPT, text: str, best: tuple[int, int]) -> None:
    ids, labels = encode(gpt, text, quiet=True)
    maps = attention_of(gpt, ids)
    layer, head = layer_head_picker(maps.n_layers, maps.n_heads, key="cd_dec", default=best, bind=True)
    probs = maps.head(layer, head)
    fig = attention_heatmap(probs, labels, labels, title=f"{gpt.name} L{layer} {short_head(head)}")
    chart(overlay_causal_mask(fig, len(ids)), key="vs_decoder")
    st.metric("Weight on later tokens (mean per query)", f"{future_share(probs):.3f}")


def encoder_vs_decoder_section(gpt: TextGPT, text: str, best: tuple[int, int]) -> None:
    st.header("5 · Encoder vs decoder (S10, S12, S13)")
    st.markdown(
        "The same text through MiniLM, a bidirectional encoder (wordpieces; every token sees every other), "
        "and through our causal decoder (characters; each sees only the past). The outlined triangle is what "
        "a causal mask removes. In an encoder–decoder model the decoder's first attention is this masked one "
        "and its second is ordinary cross-attention to the encoder (S10; see the encoder–decoder page)."
    )
    encoder_column, decoder_column = st.columns(2)
    with encoder_column:
        encoder_side(text)
    with decoder_column:
        decoder_side(gpt, text, best)


def value_section(gpt: TextGPT, text: str, repeat: bool) -> None:
    """Section 6: Kobayashi et al.'s value-weighted norms on the text of sections 2 and 3."""
    ids, labels = encode(gpt, text * 2 if repeat else text, quiet=True)
    modules = attention_modules(gpt)["decoder_self"]
    attentions = {"decoder_self": Attentions(attention_of(gpt, ids), modules, labels, labels)}
    title = "6 · What each head moves: value-weighted norms (S11)"
    value_norms_section(title, maps_key(gpt, ids), attentions, "cd")


def gpt_stdlib() -> TextGPT | None:
    try:
        return get_model("gpt-stdlib", device(), kind="causal")
    except ModelLoadError as err:
        st.error(f"Cannot load the causal model: {err}. Make its weights with `python -m scripts.train_gpt`.")
        return None


def main() -> None:
    intro()
    choice = model_choice()
    # llama_page shows a Llama-family or another transformers model; a GPT-2 comes back for the sections
    gpt = gpt_stdlib() if choice == "gpt-stdlib" else llama_page(choice)
    if gpt is None:
        return
    if gpt.tokenizer is None:
        st.error(f"{gpt.name} has no tokenizer.json, so text cannot be turned into its tokens.")
        return
    model_summary(gpt)
    best = heads_section(gpt)
    st.divider()
    text, repeat = text_choice()
    chosen_head_view(gpt, text, repeat, best)
    if text.strip():
        encoder_vs_decoder_section(gpt, text, best)
        value_section(gpt, text, repeat)
    explain_link()


main()
