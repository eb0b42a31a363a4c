"""The step-by-step page for a Llama-family decoder: what RoPE does to q and k, and which K/V head a query
head shares (grouped-query attention).

The text runs once per (model, input) with a full capture (the page's texts are short) that also keeps q
and k before RoPE. For the chosen layer, query head, query token and key token: every channel pair of q
and k before and after the rotation by position × θ_c, the pairs' share of the score, the K/V head and
the query heads that share it, and the head's attention with its mask. The pickers rerun only the
fragment.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st
import torch

from models import rope_probe
from models.llama_io import TextLlama
from ui.llama_models import gqa_head_picker, model_key
from ui.results import computed, digest
from ui.widgets import query_key_picker
from viz.attention import attention_heatmap
from viz.rope import pair_rotation

SHOWN_PAIRS = 4  # pairs drawn as arrows: from the fastest to the slowest


@dataclass
class Steps:
    """One input, every layer (L layers, H query heads, G K/V heads, T tokens), as read-only arrays."""

    q_before: np.ndarray  # (L, H, T, dh) queries before RoPE
    k_before: np.ndarray  # (L, G, T, dh) keys before RoPE, one per K/V head
    q_after: np.ndarray  # (L, H, T, dh) the model's rotated queries
    k_after: np.ndarray  # (L, H, T, dh) the model's rotated keys, repeated per query head as attended
    probs: np.ndarray  # (L, H, T, T)
    mask: np.ndarray  # (L, T, T) bool, True = may attend

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in vars(self).values())


def steps_of(model: TextLlama, ids: list[int]) -> Steps:
    def compute() -> Steps:
        out = model.run(ids, capture=True, unrotated=True, logits=False)  # no view reads logits
        records = out.attentions
        t = len(ids)
        arrays = {
            "q_before": torch.stack([u.q[0] for u in out.unrotated]),
            "k_before": torch.stack([u.k[0] for u in out.unrotated]),
            "q_after": torch.stack([r.q[0] for r in records]),
            "k_after": torch.stack([r.k[0] for r in records]),
            "probs": torch.stack([r.probs[0] for r in records]),
            "mask": torch.stack([r.mask.reshape(-1, t, t)[0] for r in records]),
        }
        kept = {}
        for name, value in arrays.items():
            value = value.cpu().numpy() if value.dtype == torch.bool else value.float().cpu().numpy()
            value.setflags(write=False)  # shared by sessions
            kept[name] = value
        return Steps(**kept)

    return computed(digest("llama_steps", *model_key(model), ids), compute, spinner="Running the model…")


def shown_pairs(n_pairs: int) -> list[int]:
    """Up to SHOWN_PAIRS pair indices spread from the fastest (0) to the slowest (n_pairs - 1)."""
    return sorted({int(round(x)) for x in np.linspace(0, n_pairs - 1, min(SHOWN_PAIRS, n_pairs))})


def llama_steps(model: TextLlama, text: str) -> None:
    enc = model.encode(text, max_len=model.config.max_positions)
    if len(enc.ids) < 2:
        st.info("Type a longer text (at least two tokens).")
        return
    cfg = model.config
    st.markdown(
        f"**{model.name}**: {cfg.n_layer} layers, {cfg.n_head} query heads sharing {cfg.n_kv_head} K/V "
        f"heads, d_head = {cfg.d_head}, RoPE θ = {cfg.rope_theta:g}; {len(enc.ids)} tokens."
    )
    steps_of(model, enc.ids)
    llama_view(model, enc.ids, enc.tokens)


@st.fragment
def llama_view(model: TextLlama, ids: list[int], tokens: list[str]) -> None:
    s = steps_of(model, ids)
    layer, head = gqa_head_picker(model, key="sbs_llama")
    i, j = query_key_picker(tokens, key="sbs_llama")
    rope_steps(model, s, layer, head, i, j)
    gqa_steps(model, s, layer, head, tokens)


def rope_steps(model: TextLlama, s: Steps, layer: int, head: int, i: int, j: int) -> None:
    inv_freq = model.model.inv_freq
    g = model.model.kv_head(head)
    n_pairs = len(inv_freq)
    q0, k0 = torch.tensor(s.q_before[layer, head, i]), torch.tensor(s.k_before[layer, g, j])
    q1, k1 = torch.tensor(s.q_after[layer, head, i]), torch.tensor(s.k_after[layer, head, j])
    pairs = {name: rope_probe.pairs(x, inv_freq).numpy() for name, x in (("q0", q0), ("k0", k0), ("q1", q1))}
    pairs["k1"] = rope_probe.pairs(k1, inv_freq).numpy()
    st.header("RoPE: q and k turned by their positions")
    st.markdown(
        f"Before the scores, the model rotates the first {2 * n_pairs} of each head's {q0.shape[0]} channels "
        f"in {n_pairs} pairs (channel c with c + {n_pairs}): pair c of a vector at position m turns by "
        "m·θ_c. "
        f"The query at position {i} turns by {i}·θ_c, the key at {j} by {j}·θ_c, so their dot product in "
        f"pair c depends on the difference {i - j} only."
    )
    ids = shown_pairs(n_pairs)
    angles = {"q": rope_probe.pair_angles(i, inv_freq)[ids], "k": rope_probe.pair_angles(j, inv_freq)[ids]}
    st.plotly_chart(
        pair_rotation(
            {"q": pairs["q0"][ids], "k": pairs["k0"][ids]}, {"q": pairs["q1"][ids], "k": pairs["k1"][ids]},
            ids, angles, f"layer {layer}, query head {head} (K/V head {g}): dotted before RoPE, solid after",
        ),
        key="sbs_rope_pairs",
    )  # fmt: skip
    theta = inv_freq.double().numpy()
    before = (pairs["q0"] * pairs["k0"]).sum(-1)
    after = (pairs["q1"] * pairs["k1"]).sum(-1)
    table = pd.DataFrame(
        {
            "pair": np.arange(n_pairs),
            "θ_c (rad / token)": theta,
            f"q turned by {i}·θ_c": i * theta,
            f"k turned by {j}·θ_c": j * theta,
            "q·k in the pair, before": before,
            "after": after,
        }
    )
    st.dataframe(table, hide_index=True, height=240)
    scale = q0.shape[0] ** -0.5
    rest = float(q1[2 * n_pairs :] @ k1[2 * n_pairs :])  # channels RoPE leaves alone (partial rotary)
    st.markdown(
        f"Score q_{i}·k_{j}/√d_head: **{(after.sum() + rest) * scale:.5f}** after RoPE (the model's own map "
        f"used it), {(before.sum() + rest) * scale:.5f} had the vectors not been turned. The arrows keep "
        "their lengths: a rotation changes only the angle between q and k, pair by pair."
    )


def gqa_steps(model: TextLlama, s: Steps, layer: int, head: int, tokens: list[str]) -> None:
    g = model.model.kv_head(head)
    group = model.kv_groups[g]
    st.header(f"Grouped-query attention: head {head} reads K/V head {g}")
    st.dataframe(
        pd.DataFrame(
            {
                "K/V head": list(range(len(model.kv_groups))),
                "query heads that read it": [", ".join(map(str, heads)) for heads in model.kv_groups],
            }
        ),
        hide_index=True,
    )
    same = max(float(np.abs(s.k_after[layer, h] - s.k_after[layer, head]).max()) for h in group)
    st.markdown(
        f"{model.config.n_head} query heads share {model.config.n_kv_head} K/V heads: query heads "
        f"{group} attend over the same keys and values (largest difference between their k: {same:g}); "
        "only their queries differ, so their maps differ."
    )
    for column, h in zip(st.columns(len(group)), group, strict=True):
        column.plotly_chart(
            attention_heatmap(
                s.probs[layer, h], tokens, tokens, title=f"head {h}" + (" (chosen)" if h == head else ""),
                mask=s.mask[layer],
            ),
            key=f"sbs_llama_group_{h}",
        )  # fmt: skip
