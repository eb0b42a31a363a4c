"""What the relevance and head-importance views share: the explanations, head labels and pickers, and
the importance heatmaps (measured beside gradient), for the text models' page and the DETR section."""

import numpy as np
import pandas as pd
import streamlit as st

from models.attention import MEAN, ZERO
from models.explain.ablation import Head, Importance, every_head
from ui.export import chart
from viz.heatmap import heatmap

FAMILY_NAMES = {"encoder": "encoder", "decoder_self": "decoder self-attention", "cross": "cross-attention"}
FILLS = {ZERO: "zeroed", MEAN: "replaced by its mean over the input"}
ABLATED = {ZERO: "zeroed", MEAN: "mean-ablated"}

RELEVANCE_EXPLANATION = """
**Gradient relevance** (Chefer, Gur & Wolf 2021, *Generic Attention-model Explainability for Interpreting
Bi-Modal and Encoder-Decoder Transformers*). A raw attention map says where a head looked, not whether it
mattered for the output. Here every attention map A of every layer is weighted by the gradient of the
chosen output with respect to it, only the positive part kept and the heads averaged:
Ā = mean over heads of (∇A ⊙ A)⁺. Starting from the identity (each token is relevant to itself), each
layer adds Ā·R; cross-attention passes the encoder's relevance on to the decoder's queries. The row of R
that belongs to the chosen output is its relevance over the input, drawn beside the raw attention.
"""

ABLATION_EXPLANATION = """
**Head ablation and importance** (Michel, Levy & Neubig 2019, *Are Sixteen Heads Really Better than
One?*). Knock a head out, **zeroed** or **replaced by its mean** over the input's positions (it then says the
same thing everywhere), run the model again, and measure what changed. The *measured* importance ablates
each head alone (every head is one row of a single batch). The *gradient* importance is Michel et al.'s
estimate: multiply each head's output by a gate g, and read |∂L/∂g| at g = 1, the first-order change of
the loss L when the head goes, from one backward pass. Where the two disagree, the loss is not linear in
the gate: heads that stand in for each other, or that matter only together.
"""


def head_label(head: Head, with_family: bool) -> str:
    family, layer, h = head
    where = f"{FAMILY_NAMES[family]} · " if with_family else ""
    return f"{where}layer {layer}, head {h}"


def heads_picker(families: dict[str, tuple[int, int]], key: str, container=None) -> tuple[list[Head], str]:
    """The heads to ablate and how: (heads, ZERO or MEAN)."""
    box = container or st
    options = every_head(families)
    with_family = len(families) > 1
    left, right = box.columns([3, 1])
    heads = left.multiselect(
        "Heads to ablate", options, key=f"{key}_heads", format_func=lambda h: head_label(h, with_family),
        placeholder="pick one or more heads",
    )  # fmt: skip
    fill = right.radio("Ablated head is", list(FILLS), key=f"{key}_fill", format_func=FILLS.get)
    return heads, fill


def decimals_for(values: np.ndarray) -> int:
    """Decimals that show the largest value with 2–3 significant digits (2 at least, 6 at most)."""
    top = float(np.abs(values).max()) if values.size else 0.0
    return 2 if top == 0 else int(np.clip(2 - np.floor(np.log10(top)), 2, 6))


def head_heatmap(values: np.ndarray, title: str, value_name: str, diverging: bool = False):
    """(L, H) values per head, printed rounded on each cell, through the heatmap core."""
    n_layers, n_heads = values.shape
    top = float(np.abs(values).max()) or 1.0
    style = {"colorscale": "RdBu_r", "zmid": 0.0, "zmin": -top, "zmax": top} if diverging else {"zmin": 0.0}
    return heatmap(
        values, [f"layer {i}" for i in range(n_layers)], [f"head {j}" for j in range(n_heads)],
        title=title, row_title="layer", col_title="head", value_name=value_name,
        decimals=decimals_for(values), height=140 + 42 * n_layers, **style,
    )  # fmt: skip


def importance_view(result: Importance, family: str, key: str) -> None:
    """Measured effect and gradient estimate side by side for one family, and the table of both."""
    effect, delta, grad = result.measured[family], result.delta[family], result.gradient[family]
    left, right = st.columns(2)
    chart(
        head_heatmap(effect, f"Measured, each head {ABLATED[result.fill]} alone", "effect",
                     diverging=bool((effect < 0).any())),
        key=f"{key}_measured", where=left,
    )  # fmt: skip
    left.caption(f"The {result.effect_name} when the head is {FILLS[result.fill]}.")
    chart(
        head_heatmap(np.abs(grad), "Gradient estimate |∂L/∂g|", "|∂L/∂g|"), key=f"{key}_gradient", where=right
    )
    right.caption(f"L = the {result.objective_name}; one backward pass, heads zeroed (Michel et al.).")
    n_layers, n_heads = effect.shape
    table = pd.DataFrame(
        {
            "layer": np.repeat(np.arange(n_layers), n_heads),
            "head": np.tile(np.arange(n_heads), n_layers),
            "measured effect": effect.ravel(),
            "measured ΔL": delta.ravel(),
            "first-order ΔL = −∂L/∂g": -grad.ravel(),
            "|∂L/∂g|": np.abs(grad).ravel(),
        }
    ).sort_values("measured effect", ascending=False, key=np.abs)
    number = st.column_config.NumberColumn(format="%.4g")
    st.dataframe(
        table, hide_index=True, height=260, key=f"{key}_table",
        column_config={name: number for name in table.columns[2:]},
    )  # fmt: skip
