"""Compare: two texts, a model against its untrained copy, two text models, or two DETR checkpoints on one
image, side by side at the same layer and head, with their difference and a per-head distance over the
whole model (Jensen–Shannon between rows, averaged).

Each side runs once per input (`capture=LAZY`, kept by ui.results); the layer and head live in a fragment,
so a change redraws the three maps only. The distance map streams every layer once per pair.
"""

from dataclasses import dataclass

import numpy as np
import streamlit as st

from models.attention import LAZY
from models.compare import Alignment, align, head_distances, head_pair, untrained_copy
from models.detr.api import run_detr
from models.detr.scenes import make_scene
from models.errors import ModelLoadError
from models.readout import Family, readout
from models.registry import names
from ui.export import chart
from ui.models import get_model
from ui.results import computed, digest
from ui.share import view_state
from ui.widgets import clamped_int, device, head_name, layer_head_picker, matrix_view
from viz.attention import head_statistic_heatmap

TEXTS, UNTRAINED, MODELS, DETR = (
    "Two texts, one model",
    "A model against its untrained copy",
    "Two text models (name or path)",
    "Two DETR checkpoints on one image",
)
MINILM = "all-MiniLM-L6-v2"
TEXT_A = "The animal didn't cross the street because it was too tired."
TEXT_B = "The animal didn't cross the street because it was too wide."
STATE_KEYS = (
    *("cmp_mode", "cmp_text_a", "cmp_text_b", "cmp_model_a", "cmp_model_b"),
    *("cmp_detr_a", "cmp_detr_b", "cmp_seed", "cmp_layer", "cmp_head"),
)


@dataclass
class Side:
    """One side of the comparison: a name, its positions' labels and its attention family."""

    name: str
    tokens: list[str]
    family: Family
    key: str  # the digest it is kept under: the pair's distances are kept under both

    @property
    def nbytes(self) -> int:
        return self.family.nbytes


@dataclass
class Distances:
    values: np.ndarray  # (L, H) mean Jensen–Shannon divergence between rows, in bits

    @property
    def nbytes(self) -> int:
        return self.values.nbytes


def text_side(model, text: str) -> Side:
    key = digest("cmp-text", model.name, str(model.device), id(model.model), text)

    def run() -> Side:
        encoding = model.encode(text)
        family = readout(encoder=model.run(encoding.ids, capture=LAZY).attentions)["encoder"]
        return Side(model.name, encoding.tokens, family, key)

    return computed(key, run, spinner=f"Running {model.name}…")


def detr_side(name: str, seed: int) -> Side:
    key = digest("cmp-detr", name, device(), seed)

    def run() -> Side:
        result = run_detr(get_model(name, device(), kind="detr"), make_scene(seed).image)
        labels = [f"({i // result.w},{i % result.w})" for i in range(result.h * result.w)]
        return Side(name, labels, result.encoder_attention, key)

    return computed(key, run, spinner=f"Running {name}…")


@st.cache_resource(max_entries=2)
def untrained(name: str, device_name: str):
    return untrained_copy(get_model(name, device_name, kind="encoder"))


def text_box(label: str, key: str, default: str, where=st) -> str:
    st.session_state.setdefault(key, default)
    return where.text_area(label, key=key, persist_state="session", height=90)


def sides(mode: str) -> tuple[Side, Side] | None:
    """The two sides the mode compares, or None (with a message) when an input is missing."""
    if mode == DETR:
        detrs = names("detr")
        left, right, seed_col = st.columns([2, 2, 1])
        a = left.selectbox("Checkpoint A", detrs, key="cmp_detr_a", bind="query-params")
        b = right.selectbox("Checkpoint B", detrs, index=min(1, len(detrs) - 1), key="cmp_detr_b",
                            bind="query-params")  # fmt: skip
        seed = clamped_int("Scene", "cmp_seed", 0, 10_000, 0, seed_col, help="The generated scene's seed")
        st.image(make_scene(seed).image, caption=f"Scene {seed}: both models see this image", width=200)
        return detr_side(a, seed), detr_side(b, seed)
    if mode == TEXTS:
        left, right = st.columns(2)
        text_a, text_b = (
            text_box("Text A", "cmp_text_a", TEXT_A, left),
            text_box("Text B", "cmp_text_b", TEXT_B, right),
        )
        if not text_a.strip() or not text_b.strip():
            st.info("Type a text on each side.")
            return None
        model = get_model(MINILM, device(), kind="encoder")
        return text_side(model, text_a), text_side(model, text_b)
    text = text_box("Text", "cmp_text_a", TEXT_A)
    if not text.strip():
        st.info("Type a text to compare its attention.")
        return None
    if mode == UNTRAINED:
        trained = get_model(MINILM, device(), kind="encoder")
        return text_side(trained, text), text_side(untrained(MINILM, device()), text)
    left, right = st.columns(2)
    name_a = left.text_input(
        "Model A (name or path)", value=MINILM, key="cmp_model_a", bind="query-params"
    ).strip()
    name_b = right.text_input("Model B (name or path)", key="cmp_model_b", bind="query-params").strip()
    if not name_a or not name_b:
        st.info("Name two BERT-family models of the same shape: a local directory or a name fetched before.")
        return None
    model_a, model_b = (get_model(name, device(), kind="encoder") for name in (name_a, name_b))
    return text_side(model_a, text), text_side(model_b, text)


@st.fragment
def head_comparison(a: Side, b: Side, alignment: Alignment) -> None:
    """Side A, side B and A − B at the chosen layer and head."""
    n_layers, n_heads = min(a.family.n_layers, b.family.n_layers), min(a.family.n_heads, b.family.n_heads)
    layer, head = layer_head_picker(n_layers, n_heads, key="cmp", bind=True)
    map_a, map_b = head_pair(a.family, b.family, layer, head, alignment)
    tokens, tokens_b = a.tokens[: alignment.n], b.tokens[: alignment.n]
    view = {"page": "compare", "a": a.name, "b": b.name, "layer": layer, "head": head,
            "state": view_state(*STATE_KEYS)}  # fmt: skip
    where = f"layer {layer}, {head_name(head)}"
    left, right = st.columns(2)
    with left:
        matrix_view(map_a, tokens, tokens, "cmp_a", f"A: {a.name}, {where}", view=view, zmin=0.0)
    with right:
        matrix_view(map_b, tokens_b, tokens_b, "cmp_b", f"B: {b.name}, {where}", view=view, zmin=0.0)
    diff = map_a - map_b
    st.markdown(f"**A − B**: largest difference {np.abs(diff).max():.3g} (weights are 0 to 1).")
    matrix_view(diff, tokens, tokens, "cmp_diff", f"A − B, {where}", view=view, colorscale="RdBu_r", zmid=0.0)


def distance_section(a: Side, b: Side, alignment: Alignment) -> None:
    st.header("Every head: how far apart")
    st.caption(
        "For each layer and head, the Jensen–Shannon divergence (in bits: 0 for the same distribution, 1 for "
        "disjoint ones) between A's and B's attention row of each query, averaged over the queries."
    )
    key = digest("cmp-js", a.key, b.key, alignment.n)
    distances = computed(key, lambda: Distances(head_distances(a.family, b.family, alignment)),
                         spinner="Comparing every head…").values  # fmt: skip
    chart(head_statistic_heatmap(distances, "Jensen–Shannon divergence, mean over rows (bits)"), key="cmp_js",
          arrays={"js_divergence": distances}, view={"page": "compare", "a": a.name, "b": b.name,
                                                     "state": view_state(*STATE_KEYS)})  # fmt: skip


def main() -> None:
    st.title("Compare")
    st.caption(
        "Two inputs or two models at the same layer and head, their difference, and how far apart every head "
        "is. Comparing an input with itself gives exactly zero."
    )
    mode = st.radio("Compare", [TEXTS, UNTRAINED, MODELS, DETR], key="cmp_mode", horizontal=True,
                    bind="query-params")  # fmt: skip
    try:
        pair = sides(mode)
    except ModelLoadError as err:
        st.error(f"Cannot load the model: {err}")
        return
    if pair is None:
        return
    a, b = pair
    alignment = align(a.tokens, b.tokens)
    if alignment.notice:
        st.info(alignment.notice)
    if (a.family.n_layers, a.family.n_heads) != (b.family.n_layers, b.family.n_heads):
        st.info(
            f"A has {a.family.n_layers} layers × {a.family.n_heads} heads and B {b.family.n_layers} × "
            f"{b.family.n_heads}: the layers and heads both have are compared."
        )
    head_comparison(a, b, alignment)
    distance_section(a, b, alignment)


main()
