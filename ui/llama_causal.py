"""The causal decoder page's sections for a Llama-family model (Llama, Mistral, Qwen2, our llama-stdlib).

The model is chosen on the page (embedded, Hugging Face name or local: `model_choice`). Its grouped-query
layout and RoPE are summarised; the user's text (up to 8,192 tokens where the model allows) runs once
(LAZY, kept by `ui.results`); every head is measured once per input (attention sink, previous-token,
long-distance induction: `models.long_heads`), and a head's map is computed when shown, with the causal or
sliding-window mask in grey and the K/V head it shares named. Layer and head pickers rerun only their
fragment.
"""

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st
import torch

from models.gpt_io import TextGPT
from models.hf_generic import HFModel
from models.llama_io import TextLlama
from models.long_heads import SCORES, llama_maps, long_head_scores, repeated_block
from models.maps import AttentionMaps
from models.registry import names
from ui.export import chart
from ui.hf_causal import hf_sections
from ui.hub import SUGGESTIONS, model_field, named_model
from ui.llama_models import gqa_head_picker
from ui.results import computed, digest
from ui.value_norms import Attentions, value_norms_section
from ui.widgets import head_name, matrix_view
from viz.attention import head_statistic_heatmap

LOCAL = "a Hugging Face name or a local directory…"
MAX_LENGTH = 8192  # longest input the page offers, where the model's context allows
DEFAULT_TEXT = Path(textwrap.__file__).read_text(encoding="utf-8")  # real Python, a few thousand tokens


def model_choice(default: str = "gpt-stdlib") -> str:
    """An embedded causal model's name, or the name or local directory the user typed ("" until they do);
    the revision typed beside a name stays in the session (`cd_model_path_revision`) for `llama_page`."""
    options = [*names("causal"), LOCAL]
    left, right = st.columns([1, 2])
    choice = left.selectbox("Model", options, index=options.index(default), key="cd_model")
    if choice != LOCAL:
        return choice
    with right:
        name, _ = model_field(
            "cd_model_path",
            [*SUGGESTIONS["llama"], "gpt2", "distilgpt2"],
            label="GPT-2, Llama, Mistral or Qwen2: name or directory",
        )
    return name


def model_key(model: TextLlama) -> tuple:
    return model.name, str(model.device), str(model.dtype), id(model.model)


def context(model: TextLlama) -> int:
    return min(model.config.max_positions, MAX_LENGTH)


def summary(model: TextLlama) -> None:
    cfg = model.config
    rope = f"RoPE θ = {cfg.rope_theta:g}"
    if cfg.rope_scaling:
        rope += f", {cfg.rope_scaling['rope_type']} scaling ×{cfg.rope_scaling['factor']:g}"
    if cfg.partial_rotary_factor != 1.0:
        rope += f", {cfg.partial_rotary_factor:g} of each head's channels rotated"
    window = "causal mask only"
    if cfg.sliding_window is not None:
        layers = "every layer" if cfg.window_layers is None else f"layers {cfg.window_layers}"
        window = f"sliding window of {cfg.sliding_window} tokens on {layers}"
    st.markdown(
        f"**{model.name}** ({model.model_type}): {cfg.n_layer} layers × {cfg.n_head} query heads sharing "
        f"{cfg.n_kv_head} K/V heads, d = {cfg.d_model}, d_head = {cfg.d_head}; {rope}; {window}; context "
        f"{cfg.max_positions} tokens; weights in {str(model.dtype).removeprefix('torch.')}."
    )
    groups = "; ".join(f"K/V head {g}: query heads {heads}" for g, heads in enumerate(model.kv_groups))
    st.caption(f"Grouped-query attention: {groups}. Heads of a group share k and v; only their q differ.")
    gqa_table(model)


def gqa_table(model: TextLlama) -> None:
    """Query heads × K/V heads: a tick where the query head reads that K/V head."""
    shares = np.zeros((model.config.n_kv_head, model.config.n_head), dtype=bool)
    for g, heads in enumerate(model.kv_groups):
        shares[g, heads] = True
    table = pd.DataFrame(
        np.where(shares, "●", ""), index=[f"K/V head {g}" for g in range(len(shares))],
        columns=[f"q{h}" for h in range(shares.shape[1])],
    )  # fmt: skip
    st.dataframe(table)


def maps_key(model: TextLlama, ids: list[int]) -> str:
    """The digest that keeps `run(model, ids)` and what is derived from it."""
    return digest("llama_maps", *model_key(model), ids)


def run(model: TextLlama, ids: list[int]) -> AttentionMaps:
    """Every head on `ids` (`models.long_heads.llama_maps`: one LAZY forward without the output head, whose
    logits no view of this page reads; at 1,024 tokens that is a third of llama-stdlib's forward), kept
    once per process."""
    return computed(maps_key(model, ids), lambda: llama_maps(model.model, ids), spinner="Running the model…")


def head_map(maps: AttentionMaps, layer: int, head: int | str) -> tuple[np.ndarray, np.ndarray | None]:
    """The head view's (T, T) map and its mask ((T, T) bool, True = may attend; None for a reduction over
    heads or a map without one). The mask is drawn grey by the figures, not copied into the map as NaN:
    at 4,096 tokens that copy cost as much as the softmax."""
    probs = maps.head(layer, head)
    if not isinstance(head, (int, np.integer)):
        return probs, None
    with torch.no_grad():
        allowed = maps.family.head_mask(layer, head)
    return probs, None if allowed is None else allowed.cpu().numpy()


def head_scores(model: TextLlama, ids: list[int]) -> dict[str, np.ndarray]:
    """{score: (L, H)}: sink and previous-token on `ids`, induction on a random block of the same length
    repeated; measured once per model and input."""

    def measure() -> dict[str, np.ndarray]:
        probe, period = repeated_block(len(ids), 1, model.config.vocab_size, bos=ids[0], seed=0)
        return long_head_scores(run(model, ids), run(model, probe.tolist()), period)

    key = digest("llama_head_scores", *model_key(model), ids)
    return computed(key, measure, spinner=f"Measuring every head at {len(ids)} tokens…")


def heads_section(model: TextLlama, ids: list[int]) -> None:
    """Per-head scores at the text's length, and a button that opens the best long-distance induction head
    in the head view. Measured after the head view is drawn, so that the first view waits for one forward,
    not for every head's maps on two inputs."""
    st.header("3 · What each head does at this length")
    with st.expander("How the scores are measured"):
        st.markdown(
            "\n".join(f"- **{name.replace('_', '-')}**: {text}." for name, text in SCORES.items())
            + f"\n\nThe sink and previous-token scores are read on your {len(ids)} tokens; the induction "
            f"score on the same start token, a random block of {len(ids) // 2} tokens and its copy, so each "
            f"query of the copy is {len(ids) // 2} tokens from its first occurrence. Each map is computed "
            "from q and k when read, one head at a time (S11)."
        )
    scores = head_scores(model, ids)
    for column, (name, values) in zip(st.columns(len(scores)), scores.items()):
        chart(head_statistic_heatmap(values, name.replace("_", "-")), key=f"cdl_{name}", where=column)
    layer, head = (int(i) for i in np.unravel_index(scores["induction"].argmax(), scores["induction"].shape))
    st.button(
        f"Show the best long-distance induction head (layer {layer}, head {head}) above", key="cdl_best",
        on_click=show_head, args=(layer, head),
    )  # fmt: skip


def show_head(layer: int, head: int) -> None:
    st.session_state["cdl_layer"], st.session_state["cdl_head"] = layer, head


@st.fragment
def head_view(model: TextLlama, ids: list[int], tokens: list[str]) -> None:
    """One head's map on the text, masked cells grey; a layer or head change reruns this fragment only."""
    st.header("2 · One head on your text")
    maps = run(model, ids)
    layer, head = gqa_head_picker(model, key="cdl", reductions=True)
    probs, allowed = head_map(maps, layer, head)
    if isinstance(head, (int, np.integer)):
        g = model.model.kv_head(head)
        st.caption(f"Head {head} reads K/V head {g}, which it shares with query heads {model.kv_groups[g]}.")
    title = f"layer {layer}, {head_name(head)}"
    matrix_view(probs, tokens, tokens, key="cdl_text", title=title, mask=allowed)
    st.caption(
        "Grey cells are masked (the future, and keys older than the sliding window where the layer has "
        "one): their weight is exactly 0."
    )


def text_choice(model: TextLlama) -> tuple[list[int], list[str]] | None:
    """The user's text as at most `context(model)` token ids and their labels; None when there is none."""
    st.header("1 · Your text")
    if model.tokenizer is None:
        st.info("This directory has no tokenizer.json, so it cannot encode text.")
        return None
    st.session_state.setdefault("cdl_text_input", DEFAULT_TEXT)
    text = st.text_area(
        f"Text (up to {context(model)} tokens are kept: the end of a longer one)", key="cdl_text_input",
        height=160, persist_state="session",
    )  # fmt: skip
    enc = model.encode(text, max_len=context(model))
    if len(enc.ids) < 4:
        st.info("Type a longer text (at least a few tokens) to see the heads on it.")
        return None
    if enc.n_dropped:
        st.warning(
            f"The text is {enc.n_dropped + len(enc.ids)} tokens; the first {enc.n_dropped} were dropped and "
            f"the last {len(enc.ids)} kept."
        )
    st.caption(f"{len(enc.ids)} tokens.")
    return enc.ids, enc.tokens


def llama_sections(model: TextLlama) -> None:
    summary(model)
    chosen = text_choice(model)
    if chosen is None:
        return
    ids, tokens = chosen
    head_view(model, ids, tokens)
    heads_section(model, ids)
    modules = [layer.self_attn for layer in model.model.layers]
    attentions = {"decoder_self": Attentions(run(model, ids), modules, tokens, tokens)}
    title = "4 · What each head moves: value-weighted norms (S11)"
    value_norms_section(title, maps_key(model, ids), attentions, "cdl")


def llama_page(name_or_path: str) -> TextGPT | None:
    """The page for a model other than gpt-stdlib, loaded through the registry: a Llama-family model or
    another transformers decoder is shown here; a GPT-2 is returned for the page's own sections."""
    if not name_or_path:
        st.info(
            "Type a Hugging Face name (such as HuggingFaceTB/SmolLM2-135M or gpt2) or the directory of a "
            "local GPT-2, Llama, Mistral or Qwen2 checkpoint."
        )
        return None
    revision = st.session_state.get("cd_model_path_revision", "").strip() or None
    model = named_model(name_or_path, revision, kind="causal")
    if model is None:
        return None
    if isinstance(model, HFModel):  # another transformers decoder: its maps only
        hf_sections(model)
        return None
    if isinstance(model, TextGPT):  # a GPT-2: the page's own sections show it
        return model
    llama_sections(model)
    return None
