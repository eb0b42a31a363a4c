"""Encoder-decoder: a model we trained turns a written date into an ISO date, one character at a time."""

import random

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
from models.seq2seq import Seq2Seq, Seq2SeqConfig, decode_step_by_step
from ui.models import get_model
from viz.attention import attention_heatmap, head_statistic_heatmap
from viz.seq2seq import head_rows_heatmap, masked_attention_heatmap, next_token_bar

EXAMPLE = "Twenty-sixth of November 2026"
MEAN = "mean over heads"

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


@st.cache_data(max_entries=16, show_spinner="Decoding…")
def decode(_model: Seq2Seq, device: str, text: str, bos_id: int, eos_id: int) -> dict:
    """Greedy decoding of `text`, every attention captured, as numpy arrays and axis labels."""
    src = encode_sources([text], device)  # (1, Ts)
    run = decode_step_by_step(_model, src, TGT_LEN + 1, bos_id, eos_id)
    out = run.output

    def stack(tensors) -> np.ndarray:
        return np.stack([x.float().cpu().numpy() for x in tensors])

    dec_in = ["<bos>"] + [TGT_VOCAB.tokens[t] for t in run.tokens[:-1]]  # what the decoder reads at each step
    dec_out = [TGT_VOCAB.tokens[t] for t in run.tokens]  # what it writes at each step
    return {
        "tokens": run.tokens,
        "answer": TGT_VOCAB.decode(run.tokens, stop_at=EOS),
        "src_labels": [shown(c) for c in text],
        "dec_in": dec_in,
        "dec_out": dec_out,
        "rows": [f"{i}→{o}" for i, o in zip(dec_in, dec_out, strict=True)],
        "step_probs": [s.probs.float().cpu().numpy() for s in run.steps],  # (V,) per step
        "step_cross": [stack(s.cross_rows) for s in run.steps],  # (L, nh, Ts) per step
        "step_self": [stack(s.self_rows) for s in run.steps],  # (L, nh, t) per step
        "encoder": stack(r.probs[0] for r in out.encoder_self),  # (L, nh, Ts, Ts)
        "decoder_self": stack(r.probs[0] for r in out.decoder_self),  # (L, nh, Tt, Tt)
        "decoder_mask": out.decoder_self[0].mask[0, 0].cpu().numpy(),  # (Tt, Tt) causal; no padding here
        "cross": stack(r.probs[0] for r in out.cross),  # (L, nh, Tt, Ts)
    }


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


def summary(result: dict, text: str, config: Seq2SeqConfig, meta: dict) -> None:
    """The answer, checked against the rule-based reading of the input, and the model's held-out score."""
    answer, expected = result["answer"], parse_date(text)
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


def step_view(result: dict, layer: int) -> None:
    """One decoding step: what the decoder has read, what it writes, and where this step's query looked."""
    tokens, dec_in = result["tokens"], result["dec_in"]
    n_steps = len(tokens)
    st.session_state["s2s_step"] = min(st.session_state.get("s2s_step", 1), n_steps)
    step = st.slider("Step", 1, n_steps, key="s2s_step", persist_state="session") if n_steps > 1 else 1
    t = step - 1
    st.markdown(
        f"The decoder has read `{' '.join(dec_in[: t + 1])}` and writes **`{result['dec_out'][t]}`** "
        f"(output so far: `{result['answer'][: t + 1]}`)."
    )
    st.plotly_chart(
        head_rows_heatmap(
            result["step_cross"][t][layer],
            result["src_labels"],
            title=f"Step {step}, decoder layer {layer}: cross-attention of the new query over the source",
        ),
        key="s2s_step_cross",
    )
    left, right = st.columns(2)
    left.plotly_chart(
        head_rows_heatmap(
            result["step_self"][t][layer],
            dec_in[: t + 1],
            title=f"Step {step}: the new row of masked self-attention",
        ),
        key="s2s_step_self",
    )
    right.plotly_chart(
        next_token_bar(
            result["step_probs"][t], TGT_VOCAB.tokens, tokens[t], title=f"Next token at step {step}"
        ),
        key="s2s_next",
    )


def alignment_view(result: dict, text: str) -> None:
    """Per layer and head, how much of each output field's attention lands on that field in the source."""
    fields = read_fields(text)
    if fields is None or len(result["tokens"]) < TGT_LEN:
        st.caption("No per-field alignment: the reference rules find no single date here to align with.")
        return
    st.markdown(
        "**Does the guidance find the content?** For every layer and head, the share of the attention of "
        "the year, month and day characters of the output that lands on the written year, month and day "
        "(S16). 1 means the whole row reads from the right field."
    )
    shares = field_attention(result["cross"], fields.spans)  # field -> (L, nh)
    for column, (field, values) in zip(st.columns(len(shares)), shares.items(), strict=True):
        span = text[slice(*fields.spans[field])]
        column.plotly_chart(head_statistic_heatmap(values, f"{field} ← '{span}'"), key=f"s2s_align_{field}")


def full_view(result: dict, layer: int, text: str, config: Seq2SeqConfig) -> None:
    """The whole decoding at once: cross-attention, masked self-attention and encoder self-attention."""
    head = st.selectbox(
        "Head",
        [*range(config.n_heads), MEAN],
        key="s2s_head",
        format_func=lambda h: f"head {h}" if isinstance(h, int) else h,
    )
    label = "mean over heads" if head == MEAN else f"head {head}"

    def pick(probs: np.ndarray) -> np.ndarray:
        """(nh, Tq, Tk) of one layer -> the chosen head's (Tq, Tk), or the mean over heads."""
        return probs.mean(0) if head == MEAN else probs[head]

    rows, src_labels = result["rows"], result["src_labels"]
    cross_tab, self_tab, enc_tab = st.tabs(
        ["Cross-attention (target × source)", "Decoder masked self-attention", "Encoder self-attention"]
    )
    with cross_tab:
        st.caption(
            "Rows: decoder queries, labelled *read→written*: the guidance (S15). Columns: the encoder "
            "memory, whose projections are the keys and values: the content (S14)."
        )
        st.plotly_chart(
            attention_heatmap(
                pick(result["cross"][layer]), rows, src_labels, title=f"Decoder layer {layer}, {label}"
            ),
            key="s2s_cross",
        )
        alignment_view(result, text)
    with self_tab:
        st.caption("Grey: masked (−∞ before the softmax, exactly 0 after). Row i sees positions ≤ i (S12).")
        st.plotly_chart(
            masked_attention_heatmap(
                pick(result["decoder_self"][layer]),
                result["decoder_mask"],
                rows,
                result["dec_in"],
                title=f"Decoder layer {layer}, {label}",
            ),
            key="s2s_self",
        )
    with enc_tab:
        enc_layer = st.selectbox(
            "Encoder layer",
            range(config.n_encoder_layers),
            key="s2s_enc_layer",
            format_func=lambda i: f"layer {i}",
        )
        st.caption("Every source character attends to every other one: nothing is masked but padding.")
        st.plotly_chart(
            attention_heatmap(
                pick(result["encoder"][enc_layer]),
                src_labels,
                src_labels,
                title=f"Encoder layer {enc_layer}, {label}",
            ),
            key="s2s_enc",
        )


def main() -> None:
    st.title("Encoder–decoder")
    st.caption(
        "A transformer as in *Attention Is All You Need* (post-norm, sinusoidal positions), trained here on "
        "written dates → ISO dates. In the decoder the first attention is masked, the second is ordinary "
        "attention over the encoder output (S10)."
    )
    device = st.session_state.get("device", "cpu")
    try:
        model, config, meta = get_model("seq2seq-dates", device, kind="seq2seq")
    except ModelLoadError as err:
        st.error(f"Cannot load the encoder-decoder: {err}")
        return
    text = input_ui()
    if text is None:
        return
    result = decode(model, device, text, config.bos_id, config.eos_id)
    summary(result, text, config, meta)
    with st.expander("Content (K, V) and guidance (Q): how to read this page"):
        st.markdown(EXPLANATION)
    layer = st.selectbox(
        "Decoder layer", range(config.n_decoder_layers), key="s2s_layer", format_func=lambda i: f"layer {i}"
    )
    st.subheader("Greedy decoding, step by step")
    step_view(result, layer)
    st.subheader("Every attention of the whole decoding")
    full_view(result, layer, text, config)


main()
