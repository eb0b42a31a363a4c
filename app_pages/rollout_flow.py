"""Rollout, flow and value norms: three readings of a text model's attention beyond the raw map.

The model runs once per (model, text) with `capture=LAZY` (`models.explain.capture`), kept by
`ui.results.computed`; the rollout of every output token (per head reduction), one token's attention flow
and one layer's value-weighted norms are computed when first shown and kept the same way. Output token,
reduction, attention, layer and head controls live in fragments and never rerun the model.
"""

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch

from models.errors import ModelLoadError
from models.explain.capture import Captured, InputError, capture_text
from models.explain.flow import attention_flow, default_workers
from models.explain.rollout import LayerGraph, layer_graph, reduce_heads
from models.explain.value_norms import ValueNorms
from models.hub import NotDownloaded
from models.maps import AttentionMaps
from models.registry import KINDS, kind_of
from ui.export import chart
from ui.hub import SUGGESTIONS, model_field, offer_download
from ui.models import get_model
from ui.results import computed, digest
from ui.value_norms import EXPLANATION as VALUE_NORMS
from ui.value_norms import FAMILY_NAMES, Attentions, side_by_side, value_norms_view
from ui.widgets import device, matrix_view
from viz.explain import token_strip
from viz.stepwise import char_labels

MODELS = {  # what the picker offers -> (embedded name, kind)
    "all-MiniLM-L6-v2 (encoder)": ("all-MiniLM-L6-v2", "encoder"),
    "gpt-stdlib (causal decoder)": ("gpt-stdlib", "causal"),
    "seq2seq-dates (encoder–decoder)": ("seq2seq-dates", "seq2seq"),
}
LOCAL = "A Hugging Face name or a local directory"
EXAMPLES = {
    "encoder": "The animal didn't cross the street because it was too tired.",
    "causal": "Return the number of items in the list. Return the",
    "seq2seq": "Twenty-sixth of November 2026",
}
AUTO_FLOW_EDGES = 2**20  # flow runs on its own up to this many edges (MiniLM: about 420 tokens)
POOL_EDGES = 2**18  # past this many edges the flows spread over every core (below, a worker costs more)
SECONDS_PER_EDGE = 1.5e-6  # one output token's flows, per edge of the graph, on one CPU core (MiniLM, 512)

ROLLOUT = """
**Attention rollout** — Abnar & Zuidema (2020), *Quantifying Attention Flow in Transformers*, ACL.
A layer's attention says how each token's new representation mixes the previous layer's tokens, but the
residual connection (S9) also carries every token straight through. Rollout counts that by taking
½(A + I) for each layer (A the mean over heads, or the max), and multiplies the layers from the first to
the last. Following every path at once, a row says how much of that output token can be traced back to
each input token; rows sum to 1, and a causal decoder's rows stay causal.
"""
FLOW = """
**Attention flow** — the same paper. Read the layers as a network of pipes, each ½(A + I) weight the
capacity of a pipe from a token to a token of the layer below, and ask how much can flow from the output
token down to one input token at once: a maximum flow. Rollout multiplies weights along paths and adds
the paths; flow is bounded by the narrowest cut between the two tokens, so it shows which inputs *can*
reach the output rather than how much of it they make up (a row of flows does not sum to 1; Abnar &
Zuidema rescale rows to 1 for their plots). On long inputs the narrowest cut is often the input token's
own edges into the first layer, and flow then says more about that layer than about the output token.
Exact maximum flow (scipy, Dinic), one per input token, with capacities scaled by 2²⁴ and rounded to
integers, spread over the machine's cores. Each runs on a small part of the graph (every token's 16
strongest edges in and out, and all of the input token's own) and is kept only when it equals the capacity
of a cut of the whole graph, which proves no larger flow exists; otherwise the cut's missing edges join the
small graph and the flow runs again. One to four seconds per output token at 512 tokens of MiniLM on two
cores; larger graphs wait to be asked for.
"""
CHECKED = "The check under the maps measures that on this input.\n"
CROSS_GRAPH = """
For the encoder–decoder the graph joins the source characters and the decoder's own inputs (marked →):
each decoder self-attention mixes the decoder's tokens, and each cross-attention keeps ½ of a decoder
token (the residual) and takes ½ from the encoder's output, which itself rolls out through the encoder —
the attention-only reading of Chefer et al. (2021), *Generic Attention-model Explainability for
Interpreting Bi-Modal and Encoder-Decoder Transformers*, ICCV.
"""


def model_picker() -> tuple[object, str, str] | None:
    """(the loaded model, its kind, its name or path), or None after saying why not."""
    revision = None
    with st.sidebar:
        choice = st.radio("Model", [*MODELS, LOCAL], key="rf_model")
        if choice != LOCAL:
            name, kind = MODELS[choice]
        else:
            name, revision = model_field(
                "rf_path", SUGGESTIONS["text"], label="A BERT, GPT-2 or seq2seq model: name or path"
            )
            if not name:
                st.info("Type a Hugging Face name (such as gpt2) or the path of a local model directory.")
                return None
    try:
        if choice == LOCAL:
            kind = kind_of(name, revision)
            if kind == "detr":
                st.error(f"{name} is {KINDS['detr']}; this page reads text models. See the DETR page.")
                return None
        return get_model(name, device(), kind=kind, revision=revision), kind, name
    except NotDownloaded:
        with st.sidebar:
            offer_download(name, revision)
        return None
    except ModelLoadError as err:
        st.error(f"Cannot load the model: {err}")
        return None


def text_input(kind: str) -> str:
    key = f"rf_text_{kind}"
    st.session_state.setdefault(key, EXAMPLES[kind])
    if kind == "seq2seq":
        return st.text_input("A date written in English", key=key, persist_state="session", max_chars=200)
    return st.text_area("Text", key=key, persist_state="session", height=90)


def network(model) -> torch.nn.Module:
    return model[0] if isinstance(model, tuple) else model.model


def captured_of(model, kind: str, name: str, text: str) -> tuple[str, Captured]:
    """(the input's key, its capture), run once per (model, text) per process."""
    net = network(model)
    key = digest("explain", kind, name, str(next(net.parameters()).device), id(net), text)
    return key, computed(key, lambda: capture_text(model, text), spinner="Running the model…")


def shown(captured: Captured, tokens: list[str]) -> list[str]:
    return tokens if captured.kind == "encoder" else char_labels(tokens)


def axis_labels(captured: Captured, family: str) -> tuple[list[str], list[str]]:
    """(query labels, key labels) of a family; decoder queries read "read→written"."""
    queries, keys = (shown(captured, t) for t in captured.tokens[family])
    if captured.written is not None and family != "encoder":
        queries = [f"{r}→{w}" for r, w in zip(queries, char_labels(captured.written), strict=True)]
    return queries, keys


def graph_labels(captured: Captured) -> tuple[list[str], list[str]]:
    """(output token labels, the graph's input token labels)."""
    if captured.kind != "seq2seq":
        (family,) = captured.families
        return axis_labels(captured, family)
    rows, source = axis_labels(captured, "cross")
    read = char_labels(captured.tokens["decoder_self"][1])
    return rows, source + [f"→{t}" for t in read]


@dataclass
class Rolled:
    """Rollout of every output token for one head reduction, and the last layer's raw map beside it."""

    graph: LayerGraph
    rows: np.ndarray  # (outputs, N) each output token's rolled-out row
    raw: np.ndarray  # (outputs, Tk) the last layer's attention, reduced the same way (seq2seq: cross)
    raw_name: str

    @property
    def nbytes(self) -> int:
        steps = sum(t.element_size() * t.nelement() for t in self.graph.transitions)
        return steps + self.rows.nbytes + self.raw.nbytes


def rolled_of(key: str, captured: Captured, head: str) -> Rolled:
    def run() -> Rolled:
        graph = layer_graph(captured.families, head)
        name = raw_family(captured)
        family = captured.families[name]
        with torch.no_grad():
            raw = reduce_heads(family.weights(family.n_layers - 1, slice(None)), head)
        raw_name = f"last layer ({family.n_layers - 1})"
        raw_name = f"{FAMILY_NAMES[name]}, {raw_name}" if len(captured.families) > 1 else raw_name
        return Rolled(graph, graph.rollout().float().numpy(), raw.float().cpu().numpy(), raw_name)

    return computed(digest(key, "rollout", head), run, spinner="Rolling out every layer…")


def flow_of(key: str, rolled: Rolled, head: str, output: int) -> tuple[np.ndarray, dict[str, int]]:
    """One output token's flow to every input token and how each was certified, with a progress bar while
    the maximum flows run."""
    graph = rolled.graph

    def run() -> tuple[np.ndarray, dict[str, int]]:
        bar = st.progress(0.0, text="Maximum flow to each input token…")
        step = max(1, graph.n_nodes // 50)

        def progress(done: int, total: int) -> None:
            if done % step == 0 or done == total:
                bar.progress(done / total, text=f"Maximum flow to input token {done} of {total}…")

        output_node = graph.outputs.start + output
        certified, workers = Counter(), flow_workers(graph)
        flows = attention_flow(
            graph.transitions, output_node, progress=progress, workers=workers, certified=certified
        )
        bar.empty()
        return flows, dict(certified)

    return computed(digest(key, "flow", head, output), run)


def flow_workers(graph: LayerGraph) -> int:
    """Processes for one output token's flows: every core past POOL_EDGES, else this one."""
    return default_workers() if len(graph.transitions) * graph.n_nodes**2 > POOL_EDGES else 1


def flow_wanted(graph: LayerGraph) -> bool:
    """Whether flow runs: on its own up to AUTO_FLOW_EDGES, past that when the user asks."""
    edges = len(graph.transitions) * graph.n_nodes**2
    if edges <= AUTO_FLOW_EDGES:
        return True
    workers = flow_workers(graph)
    cores = f" on {workers} cores" if workers > 1 else ""
    return st.toggle(
        f"Compute attention flow ({graph.n_nodes} exact maximum flows through a graph of {edges:,} edges"
        f"{cores}, roughly {edges * SECONDS_PER_EDGE / workers:.0f} s for each output token)",
        key="rf_flow_on",
    )


def reach_mask(captured: Captured, shape: tuple[int, int]) -> np.ndarray | None:
    """(outputs, N) True where an output token can reach an input token: a decoder's own inputs up to
    itself, and every source token; None for an encoder (every token reaches every token)."""
    if captured.kind == "encoder":
        return None
    rows, n = shape
    own = np.arange(rows)[None, :] <= np.arange(rows)[:, None]  # (rows, rows) lower triangle
    return np.hstack([np.ones((rows, n - rows), dtype=bool), own])


def raw_family(captured: Captured) -> str:
    """The family whose last layer is shown beside the rollout: the cross-attention of an
    encoder-decoder, else the model's only one."""
    return "cross" if captured.kind == "seq2seq" else next(iter(captured.families))


@st.fragment
def rollout_view(key: str, captured: Captured) -> None:
    rows, cols = graph_labels(captured)
    left, right = st.columns(2)
    head = left.selectbox("Heads", ["mean", "max"], key="rf_reduce", format_func=lambda h: f"{h} over heads")
    out_key = f"rf_output_{captured.kind}"
    default = 0 if captured.kind == "encoder" else len(rows) - 1
    if st.session_state.get(out_key) not in range(len(rows)):
        st.session_state[out_key] = default
    output = right.selectbox(
        "Output token", range(len(rows)), key=out_key, format_func=lambda i: f"{i} {rows[i]}"
    )
    rolled = rolled_of(key, captured, head)
    mask = reach_mask(captured, rolled.rows.shape)
    raw_rows, raw_cols = axis_labels(captured, raw_family(captured))
    raw_mask = mask if captured.kind == "causal" else None
    first, second = side_by_side(rolled.rows.size)
    with first:
        matrix_view(
            rolled.raw, raw_rows, raw_cols, "rf_raw",
            f"Raw attention: {rolled.raw_name}, {head} over heads", zmin=0.0, mask=raw_mask,
        )  # fmt: skip
    with second:
        matrix_view(
            rolled.rows, rows, cols, "rf_rollout",
            f"Rollout through every layer, {head} over heads", row_title="output token",
            col_title="input token", zmin=0.0, mask=mask,
        )  # fmt: skip
    token_mask = None if mask is None else mask[output]
    st.markdown(f"**Output token {output} `{rows[output]}`**")
    if captured.kind != "seq2seq":
        chart(
            token_strip(rolled.raw[output], cols, "raw", "Raw attention of the last layer", token_mask),
            key="rf_strip_raw",
        )
    chart(token_strip(rolled.rows[output], cols, "rollout", "Rollout", token_mask), key="rf_strip_rollout")
    if flow_wanted(rolled.graph):
        flows, certified = flow_of(key, rolled, head, output)
        title = "Attention flow (maximum flow to each input token)"
        chart(token_strip(flows, cols, "flow", title, token_mask), key="rf_strip_flow")
        st.caption(certificates(certified))


def certificates(certified: dict[str, int]) -> str:
    """How the flows were proven maximal, in words (`models.explain.flow.OutputFlows`)."""
    ways = {
        "bound": "equal the capacity of the output token's own edges or of the input token's edges into the "
        "first layer",
        "cut": "equal the capacity in the whole graph of the minimum cut of the small graph they ran on",
        "whole": "ran on the whole graph",
    }
    said = "; ".join(f"{certified[way]} {text}" for way, text in ways.items() if certified.get(way))
    return f"Every value is an exact maximum flow, proven by a cut of the whole graph: {said}."


def attentions_of(captured: Captured) -> dict[str, Attentions]:
    """Each family of the captured forward as the value-norm section reads it."""
    return {
        name: Attentions(AttentionMaps(family), captured.modules[name], *axis_labels(captured, name))
        for name, family in captured.families.items()
    }


def kernel_check(captured: Captured) -> Callable[[ValueNorms, int], float]:
    """How closely a layer's value terms rebuild the output of the fused kernel's own A·V, merged by W_O."""

    def check(norms: ValueNorms, layer: int) -> float:
        heads = captured.heads_out[norms.family.name][layer]  # (H, Tq, dh): the kernel's A·V
        with torch.no_grad():
            merged = heads.transpose(0, 1).reshape(heads.shape[1], -1)
            output = captured.modules[norms.family.name][layer].out_proj(merged).double()
            return float((norms.reconstruct(layer) - output).abs().max())

    return check


def kind_label(kind: str) -> str:
    return KINDS[kind][0].upper() + KINDS[kind][1:]


def main() -> None:
    st.title("Rollout, flow and value norms")
    st.caption(
        "A raw attention map is not an explanation: it ignores the residual stream (S9), the layers "
        "below, and how much each attended token actually carries. Three published readings of the same "
        "forward, side by side with the raw map."
    )
    picked = model_picker()
    if picked is None:
        return
    model, kind, name = picked
    text = text_input(kind)
    if not text.strip():
        st.info("Type some text to see its rollout, flow and value norms.")
        return
    try:
        key, captured = captured_of(model, kind, name, text)
    except InputError as err:
        st.error(str(err))
        return
    for notice in captured.notices:
        st.warning(notice)
    family = next(iter(captured.families.values()))
    summary = f"{kind_label(kind)} · {name} · {family.n_layers} layers × {family.n_heads} heads"
    if captured.answer is not None:
        summary += f" · decoded **`{captured.answer}`**"
    st.markdown(summary)
    st.header("Rollout and flow")
    with st.expander("What rollout and flow compute", expanded=True):
        st.markdown(ROLLOUT + FLOW + (CROSS_GRAPH if kind == "seq2seq" else ""))
    rollout_view(key, captured)
    st.header("Value-weighted norms")
    with st.expander("What the value norms compute", expanded=True):
        st.markdown(VALUE_NORMS + CHECKED)
    value_norms_view(key, attentions_of(captured), "rf", kernel_check(captured))


main()
