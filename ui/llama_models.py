"""A Llama-family model for the pages that show RoPE (positional encodings, step by step), and a head
picker that names each query head's K/V head (grouped-query attention).

`llama_choice` offers the embedded long model (`llama-stdlib`, when the registry has it), a local Llama,
Mistral or Qwen2 directory, and, as a labelled fallback, a random-init tiny Llama (GQA 2:1, byte-level
tokens) built here: its rotations are RoPE's own, but its attention has learned nothing.
"""

from dataclasses import replace

import streamlit as st
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

from models.errors import ModelLoadError
from models.llama import PRESETS, build_llama, kv_head
from models.llama_io import TextLlama
from models.maps import REDUCTIONS
from models.registry import names
from ui.models import get_model
from ui.widgets import device, head_name

EMBEDDED = "llama-stdlib"
LOCAL = "a local Llama, Mistral or Qwen2 directory…"
RANDOM = "a random tiny Llama (untrained: fallback)"
RANDOM_CONFIG = replace(PRESETS["llama-nano"], max_positions=2048)


def byte_tokenizer() -> Tokenizer:
    """One token per UTF-8 byte (GPT-2's byte-to-character map), nothing merged."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tok = Tokenizer(models.BPE(vocab={ch: i for i, ch in enumerate(alphabet)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    return tok


@st.cache_resource(max_entries=2, show_spinner=False)
def random_llama(device_name: str) -> TextLlama:
    """llama-nano's shape (2 layers, 4 query heads over 2 K/V heads, d_head 8) with seed-0 weights."""
    torch.manual_seed(0)
    model = build_llama(RANDOM_CONFIG).eval().to(device_name)
    return TextLlama(model, byte_tokenizer(), RANDOM_CONFIG, RANDOM, device=device_name)


def options() -> list[str]:
    return [*([EMBEDDED] if EMBEDDED in names("causal") else []), LOCAL, RANDOM]


def llama_choice(key: str) -> TextLlama | None:
    """The model the user picked (None after a message), with a caption when it is the untrained one."""
    left, right = st.columns([1, 2])
    choice = left.selectbox("Llama-family model", options(), key=f"{key}_model")
    if choice == RANDOM:
        return untrained()
    path = EMBEDDED if choice == EMBEDDED else right.text_input("Directory", key=f"{key}_path").strip()
    if not path:
        st.info("Type the directory of a local Llama, Mistral or Qwen2 checkpoint.")
        return None
    try:
        model = get_model(path, device(), kind="causal")
    except ModelLoadError as err:
        if choice != EMBEDDED:
            st.error(f"Cannot load {path}: {err}")
            return None
        st.warning(f"{EMBEDDED} is not available here ({err}); showing {RANDOM} instead.")
        return untrained()
    if not isinstance(model, TextLlama):
        st.error(f"{path} is not a Llama-family model (RoPE); pick a Llama, Mistral or Qwen2 directory.")
        return None
    if model.tokenizer is None:
        st.error(f"{path} has no tokenizer.json, so it cannot encode text.")
        return None
    return model


def untrained() -> TextLlama:
    st.caption(
        "**Random weights**, built here (llama-nano's shape, seed 0): the rotations and the identities "
        "below are RoPE's own, but this model was never trained, so its attention shows no learned "
        "pattern. Pick `llama-stdlib` or a local directory for a real model."
    )
    return random_llama(device())


def model_key(model: TextLlama) -> tuple:
    return model.name, str(model.device), str(model.dtype), id(model.model)


def gqa_label(head, n_head: int, n_kv_head: int) -> str:
    """ "head 5 · K/V 1" for a query head (grouped-query attention), "mean over heads" for a reduction."""
    if head in REDUCTIONS:
        return head_name(head)
    return f"head {head} · K/V {kv_head(int(head), n_head, n_kv_head)}"


def gqa_head_picker(
    model: TextLlama, key: str, reductions: bool = False, default: tuple[int, int] = (0, 0)
) -> tuple[int, int | str]:
    """Layer and query head -> (layer, head); the head options name the K/V head each one reads. State
    under f"{key}_layer" and f"{key}_head", as `ui.widgets.layer_head_picker`."""
    cfg = model.config
    layers = list(range(cfg.n_layer))
    heads = [*range(cfg.n_head), *(REDUCTIONS if reductions else ())]
    for name, allowed, value in (("layer", layers, default[0]), ("head", heads, default[1])):
        if st.session_state.get(f"{key}_{name}") not in allowed:
            st.session_state[f"{key}_{name}"] = value if value in allowed else allowed[0]
    left, right = st.columns(2)
    layer = left.selectbox(
        "Layer", layers, key=f"{key}_layer", persist_state="session", format_func=lambda i: f"layer {i}"
    )
    head = right.selectbox(
        "Query head (and the K/V head it reads)", heads, key=f"{key}_head", persist_state="session",
        format_func=lambda h: gqa_label(h, cfg.n_head, cfg.n_kv_head),
    )  # fmt: skip
    return layer, head
