"""Encoder-decoder: a model we trained turns a written date into an ISO date, one character at a time.

The greedy decoding runs once per input (`ui.results.computed`); its three kinds of attention are read
through `models.readout` families. Layer, head and step controls live in fragments: a change redraws one
view and never reruns the model.
"""

import random
from dataclasses import dataclass

import numpy as np
import streamlit as st

from models.date_task import (
    EOS,
    TGT_LEN,
    TGT_VOCAB,
    encode_sources,
    field_attention,
    make_pairs,
    parse_date,
    read_fields,
    validate,
)
from models.errors import ModelLoadError
from models.explain.capture import attention_modules
from models.maps import AttentionMaps
from models.readout import readout
from models.seq2seq import Seq2Seq, Seq2SeqConfig, decode_step_by_step
from ui.export import chart
from ui.links import explain_link
from ui.models import get_model
from ui.results import computed, digest
from ui.value_norms import EXPLANATION as VALUE_NORMS
from ui.value_norms import Attentions, value_norms_view
from ui.widgets import device, head_name, layer_head_picker
from viz.attention import attention_heatmap, head_statistic_heatmap
from viz.seq2seq import head_rows_heatmap, masked_attention_heatmap, next_token_bar

EXAMPLE = "Twenty-sixth of November 2026"
MAPS_MEMO_BYTES = 2**20  # the maps here are at most 12 x 48 cells: a small memo keeps all of them

EXPLANATION = """
**Encoder** (S11): every source character attends to every other one (only padding is masked), so
each position of the encoder output, the *memory*, knows its context: the "6" of "26th" knows it is a day.

**Decoder, first attention: masked** (S10, S12). Row *i* may only look at the target characters already
produced (positions ≤ *i*). The grey upper triangle is the mask: −∞ before the softmax, exactly 0 after.

**Decoder, second attention: ordinary cross-attention** (S10). Its keys and values are projections of the
encoder memory: the **content** of the written date (S14). Its queries are projections of the decoder
state: the **guidance**, what this step is looking for, for example "the tens digit of the month" (S15).
The softmax of QKᵀ/√d_head then draws out of the memory exactly the content the query asked for (S16):
read the cross-attention rows and you see the year digits copied from the year, the month digits found
on the month name and the day digits on the day, wherever the format put them.
"""


def shown(char: str) -> str:
    return "␣" if char == " " else char


@dataclass
class Decoding:
    """One greedy decoding of one input: what was read and written, and every attention of the final pass."""

    tokens: list[int]  # generated ids, EOS included when produced
    answer: str
    src_labels: list[str]  # the source characters, spaces shown as ␣
    dec_in: list[str]  # what the decoder reads at each step: <bos> + the tokens so far
    dec_out: list[str]  # what it writes at each step
    step_probs: np.ndarray  # (steps, V) next-token probabilities at each step
    maps: dict[str, AttentionMaps]  # "encoder" (Ts, Ts), "decoder_self" (Tt, Tt), "cross" (Tt, Ts)
    key: str  # the digest of (model, text) that keeps this decoding

    @property
    def rows(self) -> list[str]:
        """Decoder query labels, "read→written"."""
        return [f"{i}→{o}" for i, o in zip(self.dec_in, self.dec_out, strict=True)]

    @property
    def nbytes(self) -> int:
        return self.step_probs.nbytes + sum(m.nbytes for m in self.maps.values())


def decoding_of(model: Seq2Seq, config: Seq2SeqConfig, text: str) -> Decoding:
    """The greedy decoding of `text`, computed once per (model, text) per process and shared by sessions.

    decode_step_by_step runs the decoder on the whole prefix at each step, so the last pass's records hold
    every step's rows (by causality the earlier rows do not change)."""

    def run() -> Decoding:
        src = encode_sources([text], next(model.parameters()).device)  # (1, Ts)
        run = decode_step_by_step(model, src, TGT_LEN + 1, config.bos_id, config.eos_id)
        out = run.output
        families = readout(encoder=out.encoder_self, decoder_self=out.decoder_self, cross=out.cross)
        dec_in = ["<bos>"] + [TGT_VOCAB.tokens[t] for t in run.tokens[:-1]]
        return Decoding(
            tokens=run.tokens,
            answer=TGT_VOCAB.decode(run.tokens, stop_at=EOS),
            src_labels=[shown(c) for c in text],
            dec_in=dec_in,
            dec_out=[TGT_VOCAB.tokens[t] for t in run.tokens],
            step_probs=np.stack([s.probs.float().cpu().numpy() for s in run.steps]),
            maps={name: AttentionMaps(f, memo_bytes=MAPS_MEMO_BYTES) for name, f in families.items()},
            key=key,
        )

    key = digest("seq2seq", id(model), str(next(model.parameters()).device), text)
    return computed(key, run, spinner="Decoding…")


def random_example() -> None:
    """on_click: a written date from the held-out split, never seen in training."""
    st.session_state.s2s_text = make_pairs(1, seed=random.randrange(10**9), held_out=True)[0][0]


def input_ui() -> str | None:
    """The validated, normalised input, or None after saying what the model accepts."""
    st.session_state.setdefault("s2s_text", EXAMPLE)
    left, right = st.columns([4, 1], vertical_alignment="bottom")
    left.text_input("A date written in English", key="s2s_text", persist_state="session", max_chars=200)
    right.button("Random held-out date", on_click=random_example)
    check = validate(st.session_state.s2s_text)
    if not check.ok:
        st.error(check.error)
        return None
    return check.text


def summary(result: Decoding, text: str, config: Seq2SeqConfig, meta: dict) -> None:
    """The answer, checked against the rule-based reading of the input, and the model's held-out score."""
    answer, expected = result.answer, parse_date(text)
    if expected is None:
        verdict = (
            " · the reference rules find no single valid date in this input, so there is no right answer"
        )
    elif expected.isoformat() == answer:
        verdict = f" · correct (the reference rules read {expected.isoformat()})"
    else:
        verdict = f" · **wrong**: the reference rules read {expected.isoformat()}"
    st.markdown(f"Model output: **`{answer}`**{verdict}")
    training = meta.get("training", {})
    if "held_out_exact_match" in training:
        st.caption(
            f"Held-out exact match {training['held_out_exact_match']:.2%} on {training['held_out_pairs']} "
            f"dates never seen in training · {config.n_encoder_layers}+{config.n_decoder_layers} layers, "
            f"{config.n_heads} heads, d = {config.d_model}."
        )


@st.fragment
def step_view(result: Decoding) -> None:
    """One decoding step: what the decoder has read, what it writes, and where this step's query looked."""
    n_steps, cross = len(result.tokens), result.maps["cross"]
    left, right = st.columns([1, 3])
    layer = left.selectbox(
        "Decoder layer", range(cross.n_layers), key="s2s_step_layer", persist_state="session",
        format_func=lambda i: f"layer {i}",
    )  # fmt: skip
    st.session_state["s2s_step"] = min(st.session_state.get("s2s_step", 1), n_steps)
    step = right.slider("Step", 1, n_steps, key="s2s_step", persist_state="session") if n_steps > 1 else 1
    t = step - 1
    st.markdown(
        f"The decoder has read `{' '.join(result.dec_in[: t + 1])}` and writes **`{result.dec_out[t]}`** "
        f"(output so far: `{result.answer[: t + 1]}`)."
    )
    # Step t's new query is row t of the final pass (causality): (nh, Ts) and (nh, t + 1).
    chart(
        head_rows_heatmap(
            cross.layer(layer)[:, t],
            result.src_labels,
            title=f"Step {step}, decoder layer {layer}: cross-attention of the new query over the source",
        ),
        key="s2s_step_cross",
    )
    left, right = st.columns(2)
    chart(
        head_rows_heatmap(
            result.maps["decoder_self"].layer(layer)[:, t, : t + 1],
            result.dec_in[: t + 1],
            title=f"Step {step}: the new row of masked self-attention",
        ),
        key="s2s_step_self",
        where=left,
    )
    chart(
        next_token_bar(
            result.step_probs[t], TGT_VOCAB.tokens, result.tokens[t], title=f"Next token at step {step}"
        ),
        key="s2s_next",
        where=right,
    )


def alignment_view(result: Decoding, text: str) -> None:
    """Per layer and head, how much of each output field's attention lands on that field in the source."""
    fields = read_fields(text)
    if fields is None or len(result.tokens) < TGT_LEN:
        st.caption("No per-field alignment: the reference rules find no single date here to align with.")
        return
    st.markdown(
        "**Does the guidance find the content?** For every layer and head, the share of the attention of "
        "the year, month and day characters of the output that lands on the written year, month and day "
        "(S16). 1 means the whole row reads from the right field."
    )
    cross = result.maps["cross"]
    every_head = np.stack([cross.layer(layer) for layer in range(cross.n_layers)])  # (L, nh, Tt, Ts)
    shares = field_attention(every_head, fields.spans)  # field -> (L, nh)
    for column, (field, values) in zip(st.columns(len(shares)), shares.items(), strict=True):
        span = text[slice(*fields.spans[field])]
        chart(head_statistic_heatmap(values, f"{field} ← '{span}'"), key=f"s2s_align_{field}", where=column)


def picked(maps: AttentionMaps, key: str) -> tuple[int, int | str, str]:
    """A layer and head (or the mean or max over heads) picked for `maps`, and its title."""
    layer, head = layer_head_picker(maps.n_layers, maps.n_heads, key=key)
    note = " (rows no longer sum to 1)" if head == "max" else ""
    return layer, head, f"layer {layer}, {head_name(head)}{note}"


@st.fragment
def cross_view(result: Decoding) -> None:
    cross = result.maps["cross"]
    layer, head, title = picked(cross, "s2s_cross")
    st.caption(
        "Rows: decoder queries, labelled *read→written*: the guidance (S15). Columns: the encoder "
        "memory, whose projections are the keys and values: the content (S14)."
    )
    chart(
        attention_heatmap(cross.head(layer, head), result.rows, result.src_labels, title=f"Decoder {title}"),
        key="s2s_cross_map",
    )


@st.fragment
def decoder_self_view(result: Decoding) -> None:
    maps = result.maps["decoder_self"]
    layer, head, title = picked(maps, "s2s_self")
    st.caption("Grey: masked (−∞ before the softmax, exactly 0 after). Row i sees positions ≤ i (S12).")
    mask = maps.family.head_mask(layer, 0)  # (Tt, Tt) causal, the same for every head
    chart(
        masked_attention_heatmap(
            maps.head(layer, head), mask.cpu().numpy(), result.rows, result.dec_in, title=f"Decoder {title}"
        ),
        key="s2s_self_map",
    )


@st.fragment
def encoder_view(result: Decoding) -> None:
    maps = result.maps["encoder"]
    layer, head, title = picked(maps, "s2s_enc")
    st.caption("Every source character attends to every other one: nothing is masked but padding.")
    chart(
        attention_heatmap(
            maps.head(layer, head), result.src_labels, result.src_labels, title=f"Encoder {title}"
        ),
        key="s2s_enc_map",
    )


def value_view(result: Decoding, modules: dict[str, list]) -> None:
    """Kobayashi et al.'s value-weighted norms of each kind of attention, beside α."""
    with st.expander("What the value norms compute"):
        st.markdown(VALUE_NORMS)
    labels = {
        "cross": (result.rows, result.src_labels),
        "decoder_self": (result.rows, result.dec_in),
        "encoder": (result.src_labels, result.src_labels),
    }
    attentions = {name: Attentions(result.maps[name], modules[name], *labels[name]) for name in labels}
    value_norms_view(result.key, attentions, "s2s")


def full_view(result: Decoding, text: str, modules: dict[str, list]) -> None:
    """The whole decoding at once: cross-attention, masked self-attention and encoder self-attention, and
    what each head moves (`modules`: each family's attention modules, for W_O)."""
    cross_tab, self_tab, enc_tab, value_tab = st.tabs(
        ["Cross-attention (target × source)", "Decoder masked self-attention", "Encoder self-attention",
         "Value-weighted norms"]
    )  # fmt: skip
    with cross_tab:
        cross_view(result)
        alignment_view(result, text)
    with self_tab:
        decoder_self_view(result)
    with enc_tab:
        encoder_view(result)
    with value_tab:
        value_view(result, modules)


def main() -> None:
    st.title("Encoder–decoder")
    st.caption(
        "A transformer as in *Attention Is All You Need* (post-norm, sinusoidal positions), trained here on "
        "written dates → ISO dates. In the decoder the first attention is masked, the second is ordinary "
        "attention over the encoder output (S10)."
    )
    try:
        loaded = get_model("seq2seq-dates", device(), kind="seq2seq")
    except ModelLoadError as err:
        st.error(f"Cannot load the encoder-decoder: {err}")
        return
    model, config, meta = loaded
    text = input_ui()
    if text is None:
        return
    result = decoding_of(model, config, text)
    summary(result, text, config, meta)
    with st.expander("Content (K, V) and guidance (Q): how to read this page"):
        st.markdown(EXPLANATION)
    st.subheader("Greedy decoding, step by step")
    step_view(result)
    st.subheader("Every attention of the whole decoding")
    full_view(result, text, attention_modules(loaded))
    explain_link()


main()
