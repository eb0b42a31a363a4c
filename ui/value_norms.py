"""Value-weighted norms (Kobayashi et al. 2020) as a page section, on any page's own forward: one head's α
beside ‖α f(x)‖, each key's ‖f(x_j)‖, and the whole layer's ‖Σ_h α f‖ beside the head mean of α. The text,
causal and encoder-decoder pages and the rollout page draw it; `models.explain.value_norms` computes it."""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch

from models.explain.value_norms import Attention, ValueNorms
from models.maps import AttentionMaps
from ui.export import chart
from ui.results import computed, digest
from ui.widgets import head_name, head_picker, layer_picker, matrix_view
from viz.explain import token_strip
from viz.heatmap import CELL_BUDGET

FAMILY_NAMES = {
    "encoder": "encoder self-attention",
    "decoder_self": "decoder masked self-attention",
    "cross": "cross-attention",
}

EXPLANATION = """
**Value-weighted norms** — Kobayashi, Kuribayashi, Yokoi & Inui (2020), *Attention is Not Only a Weight:
Analyzing Transformers with Vector Norms*, EMNLP. What token j adds to token i through a head is
α_ij f(x_j), where f(x_j) is j's value vector passed through that head's part of the output projection.
A large weight on a token whose f(x_j) is tiny moves almost nothing — much of BERT's attention on [CLS]
and [SEP] is of that kind — so read the length ‖α_ij f(x_j)‖ instead of α_ij, per head (S11), and
‖Σ_h α_ij f_h(x_j)‖ for the whole layer. These terms, summed over keys and heads with the output bias,
are exactly the attention sublayer's output.
"""


@dataclass
class Attentions:
    """What the section reads of one kind of attention: its maps (the page's own, memoised), its modules
    and its axis labels."""

    maps: AttentionMaps
    modules: list[Attention]  # one per layer, for W_O and b_O
    rows: list[str]  # query tokens
    cols: list[str]  # key tokens


@dataclass
class LayerNorms:
    """One layer's ‖Σ_h α f‖ and the head mean of α, and (where the page can check it) how closely the
    terms rebuild the sublayer's output."""

    summed: np.ndarray  # (Tq, Tk)
    mean_alpha: np.ndarray  # (Tq, Tk)
    error: float | None  # max |Σ_j Σ_h α_ij f_h(x_j) + b_O − output| over queries and channels

    @property
    def nbytes(self) -> int:
        return self.summed.nbytes + self.mean_alpha.nbytes


def side_by_side(n_cells: int):
    """Two columns for two maps, or two rows when a map is a raster with its own zoom columns."""
    return st.columns(2) if n_cells <= CELL_BUDGET else (st.container(), st.container())


def layer_norms_of(
    key: str, maps: AttentionMaps, norms: ValueNorms, layer: int, check: Callable | None
) -> LayerNorms:
    """One layer's summed norms, computed once per (input, family, layer) and kept like the forward."""

    def run() -> LayerNorms:
        error = None if check is None else check(norms, layer)
        return LayerNorms(norms.summed(layer), maps.head(layer, "mean"), error)

    return computed(digest(key, "value_norms", norms.family.name, layer), run, spinner="Summing the heads…")


@st.fragment
def value_norms_view(key: str, attentions: dict[str, Attentions], prefix: str, check: Callable | None = None):
    """The section: a family radio (when there are several), a layer, one head's maps (`head_maps`, a
    fragment of its own: a head switch redraws only them) and the layer's two maps. `key` names the input
    (the forward's digest); `check(norms, layer)`, where given, measures how closely the terms rebuild the
    sublayer's output, shown under the maps."""
    names = list(attentions)
    name = names[0]
    if len(names) > 1:
        name = st.radio(
            "Attention", names, format_func=FAMILY_NAMES.get, horizontal=True, key=f"{prefix}_vn_family"
        )
    attention, picker = attentions[name], f"{prefix}_vn_{name}"
    maps = attention.maps
    layer = layer_picker(maps.n_layers, picker, container=st.columns(2)[0])
    norms = ValueNorms(maps.family, attention.modules)
    where = f"{FAMILY_NAMES[name]}, layer {layer}" if len(names) > 1 else f"layer {layer}"
    head_maps(attention, norms, layer, picker, prefix, where)
    summed = layer_norms_of(key, maps, norms, layer, check)
    with torch.no_grad():
        masks = maps.family.head_mask(layer, slice(None))  # (H, Tq, Tk) or None
    mask = None if masks is None else masks.any(0).cpu().numpy()  # the cells some head may attend
    first, second = side_by_side(summed.summed.size)
    with first:
        title = f"α: {where}, mean over heads"
        matrix_view(summed.mean_alpha, attention.rows, attention.cols, f"{prefix}_alpha_mean", title,
                    zmin=0.0, mask=mask)  # fmt: skip
    with second:
        matrix_view(
            summed.summed, attention.rows, attention.cols, f"{prefix}_summed",
            f"‖Σ_h α_h f_h(x)‖: {where}, all heads", zmin=0.0, value_name="norm", mask=mask,
        )  # fmt: skip
    if summed.error is not None:
        st.caption(
            f"Check: Σ_j Σ_h α_ij f_h(x_j) + b_O rebuilds this sublayer's output (from the fused kernel) "
            f"within {summed.error:.1e}, the largest difference over every query and channel."
        )


@st.fragment
def head_maps(attention: Attentions, norms: ValueNorms, layer: int, picker: str, prefix: str, where: str):
    """One head's α beside ‖α f(x)‖, and its keys' ‖f(x_j)‖: a head switch reruns this fragment only."""
    maps, rows, cols = attention.maps, attention.rows, attention.cols
    head = head_picker(maps.n_heads, picker, reductions=False, container=st.columns(2)[0])
    with torch.no_grad():
        mask = maps.family.head_mask(layer, head)  # drawn grey by the figures, not copied into the maps
    mask = None if mask is None else mask.cpu().numpy()
    alpha = maps.head(layer, head)
    first, second = side_by_side(alpha.size)
    with first:
        title = f"α: {where}, {head_name(head)}"
        matrix_view(alpha, rows, cols, f"{prefix}_alpha", title, zmin=0.0, mask=mask)
    with second:
        matrix_view(
            norms.weighted(layer, head, alpha), rows, cols, f"{prefix}_weighted",
            f"‖α f(x)‖: {where}, {head_name(head)}", zmin=0.0, value_name="norm", mask=mask,
        )  # fmt: skip
    chart(
        token_strip(norms.norms(layer)[head], cols, "‖f(x_j)‖", f"‖f(x_j)‖ of each key, {head_name(head)}"),
        key=f"{prefix}_value_lengths",
    )


def value_norms_section(title: str, key: str, attentions: dict[str, Attentions], prefix: str) -> None:
    """The section of a page with many sections: its header and explanation, and the maps once the user
    opens them (their first view computes a whole layer)."""
    st.header(title)
    with st.expander("What the value norms compute"):
        st.markdown(EXPLANATION)
    if st.toggle("Show the value-weighted norms", key=f"{prefix}_vn_on"):
        value_norms_view(key, attentions, prefix)
