"""The positional page's RoPE section on a real Llama-family model's rotated queries and keys.

The text runs once per (model, input) with a LAZY capture that also keeps q and k before RoPE
(`models.llama.LlamaOutput.unrotated`). One query vector and one key vector of a chosen head are then
moved along the sequence together: their score depends only on the offset (`models.rope_probe`), checked
against the score the model itself computed. Beside it, RoPE's long-term decay bound from the model's own
θ and rotary dimensions, and the model's mean attention at each distance. Layer, head and tokens rerun
only the fragment.
"""

import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st
import torch
from torch import Tensor

from models import rope_probe
from models.attention import LAZY
from models.llama_io import TextLlama
from models.maps import AttentionMaps
from models.readout import readout
from ui.llama_models import gqa_head_picker, llama_choice, model_key
from ui.results import computed, digest
from ui.widgets import query_key_picker
from viz.rope import decay_and_attention, offset_scores

MAX_TOKENS = 4096
SHOWN_OFFSETS = 256  # offsets drawn in the offset figure
DEFAULT_TEXT = Path(textwrap.__file__).read_text(encoding="utf-8")


@dataclass
class RopeRun:
    """One input through a Llama-family model: every map on demand, q and k before RoPE."""

    maps: AttentionMaps  # q and k in maps.family are after RoPE, k repeated per query head
    q: Tensor  # (L, H, T, dh) before RoPE
    k: Tensor  # (L, Hkv, T, dh) before RoPE, one per K/V head

    @property
    def nbytes(self) -> int:
        return self.maps.nbytes + 4 * (self.q.numel() + self.k.numel())


def rope_run(model: TextLlama, ids: list[int]) -> RopeRun:
    def compute() -> RopeRun:
        out = model.run(ids, capture=LAZY, unrotated=True, logits=False)  # no view reads logits
        maps = AttentionMaps(readout(decoder_self=out.attentions)["decoder_self"])
        q = torch.stack([u.q[0] for u in out.unrotated]).float().cpu()  # (L, H, T, dh)
        k = torch.stack([u.k[0] for u in out.unrotated]).float().cpu()  # (L, Hkv, T, dh)
        return RopeRun(maps, q, k)

    return computed(digest("rope_real", *model_key(model), ids), compute, spinner="Running the model…")


def rope_summary(model: TextLlama) -> None:
    inv_freq = model.model.inv_freq
    r = 2 * len(inv_freq)
    cfg = model.config
    wavelengths = 2 * np.pi / inv_freq.double().numpy()
    scaling = f", {cfg.rope_scaling['rope_type']} scaling" if cfg.rope_scaling else ""
    st.markdown(
        f"**{model.name}**: RoPE θ = {cfg.rope_theta:g}{scaling}; {r} of each head's {cfg.d_head} "
        f"channels are rotated, as {r // 2} pairs (channel c with c + {r // 2}); pair c turns by θ_c = "
        f"{inv_freq[0]:.3g} … {inv_freq[-1]:.3g} radians per token (wavelengths {wavelengths[0]:.3g} to "
        f"{wavelengths[-1]:.3g} tokens)."
    )


def real_rope_section() -> None:
    st.markdown(
        "The same identity on a real model: RoPE turns channel pair c of every query and key at position m "
        "by m·θ_c, so q_m·k_n depends on m − n only. Below, one query vector and one key vector taken from "
        "the model's own activations (before RoPE) are placed at many positions."
    )
    model = llama_choice("rope_real")
    if model is None:
        return
    rope_summary(model)
    st.session_state.setdefault("rope_real_text", DEFAULT_TEXT)
    limit = min(model.config.max_positions, MAX_TOKENS)
    text = st.text_area(
        f"Text (the last {limit} tokens are kept)", key="rope_real_text", height=120, persist_state="session"
    )
    enc = model.encode(text, max_len=limit)
    if len(enc.ids) < 2:
        st.info("Type a longer text (at least two tokens).")
        return
    st.caption(f"{len(enc.ids)} tokens" + (f"; the first {enc.n_dropped} dropped." if enc.n_dropped else "."))
    rope_run(model, enc.ids)
    rope_views(model, enc.ids, enc.tokens)


@st.fragment
def rope_views(model: TextLlama, ids: list[int], tokens: list[str]) -> None:
    run = rope_run(model, ids)
    layer, head = gqa_head_picker(model, key="rope_real")
    i, j = query_key_picker(tokens, key="rope_real")
    offsets_section(model, run, layer, head, i, j)
    decay_section(model, run, layer)


def offsets_section(model: TextLlama, run: RopeRun, layer: int, head: int, i: int, j: int) -> None:
    kv = model.model.kv_head(head)
    q, k = run.q[layer, head, i], run.k[layer, kv, j]
    inv_freq = model.model.inv_freq
    context = model.config.max_positions
    starts = sorted({0, j, context // 2})
    n_offsets = max(1, min(SHOWN_OFFSETS, context - max(starts)))
    offsets = torch.arange(n_offsets)
    scores = rope_probe.scores_by_offset(q, k, inv_freq, offsets, starts).numpy()
    st.plotly_chart(
        offset_scores(
            offsets.numpy(), scores, starts,
            f"layer {layer}, head {head}: query {i}'s q and key {j}'s k, moved along the sequence",
        ),
        key="rope_real_offsets",
    )  # fmt: skip
    spread = float(np.abs(scores - scores[0]).max())
    at_offset = rope_probe.scores_by_offset(q, k, inv_freq, torch.tensor([i - j]), starts).numpy()[:, 0]
    own = float(run.maps.family.q[layer, head, i] @ run.maps.family.k[layer, head, j]) * run.maps.family.scale
    a, b = st.columns(2)
    a.metric(
        "largest difference between the lines", f"{spread:.1e}",
        help=f"scores reach {float(np.abs(scores).max()):.3g}; rotated in float64",
    )  # fmt: skip
    b.metric(
        f"the model's own score q_{i}·k_{j}/√d_head", f"{own:.5f}",
        help=f"the same vectors moved so that the offset stays {i - j}: "
        + ", ".join(f"{v:.5f} (key at {s})" for s, v in zip(starts, at_offset, strict=True)),
    )  # fmt: skip
    st.caption(
        f"Each line puts the key at a different position s and the query Δ tokens after it; the lines lie on "
        f"top of each other. At Δ = {i - j} they give the score the model computed at positions ({i}, {j}) "
        f"(float32 rotation in the model, float64 here)."
    )


def decay_section(model: TextLlama, run: RopeRun, layer: int) -> None:
    t = run.maps.shape[0]
    distances = np.unique(np.geomspace(1, max(2, model.config.max_positions), 400).astype(int))
    bound = rope_probe.decay_bound(model.model.inv_freq, distances)
    attention = rope_probe.mean_by_distance(run.maps.head(layer, "mean"))
    st.plotly_chart(
        decay_and_attention(
            distances, bound, attention, f"{model.name}: RoPE's bound and the attention against distance",
            f"layer {layer}: mean weight at each distance (mean over heads, {t} tokens)",
        ),
        key="rope_real_decay",
    )  # fmt: skip
    st.caption(
        "Left: with q·k written as Σ_c h_c e^{iΔθ_c}, |q·k| ≤ max_c |h_{c+1} − h_c| · Σ_j |S_j| with "
        "S_j = Σ_{c<j} e^{iΔθ_c}; the curve is (1/(r/2)) Σ_j |S_j| from this model's θ_c, which falls as the "
        "distance Δ grows (RoFormer, §3.4.3). It bounds the score, it does not fix it: right, what the "
        "chosen layer's heads actually put at each distance on your text."
    )
