"""Encoder-decoder: a model we trained turns a written date into an ISO date, one character at a time."""

import random
from pathlib import Path

import numpy as np
import streamlit as st

from models.date_task import EOS, TGT_LEN, TGT_VOCAB, encode_sources, make_pairs, parse_date, validate
from models.seq2seq import Seq2Seq, Seq2SeqLoadError, decode_step_by_step, load_seq2seq
from viz.attention import attention_heatmap
from viz.seq2seq import head_rows_heatmap, masked_attention_heatmap, next_token_bar

WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "seq2seq-dates"
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


@st.cache_resource(max_entries=2, show_spinner="Loading the model…")
def get_model(device: str) -> tuple[Seq2Seq, object, dict]:
    return load_seq2seq(WEIGHTS, device=device)


@st.cache_data(max_entries=16, show_spinner="Decoding…")
def decode(_model: Seq2Seq, device: str, text: str, bos_id: int, eos_id: int) -> dict:
    """Greedy decoding of `text` with every attention captured, as numpy arrays."""
    src = encode_sources([text], device)  # (1, Ts)
    run = decode_step_by_step(_model, src, TGT_LEN + 1, bos_id, eos_id)
    out = run.output

    def stack(records) -> np.ndarray:
        return np.stack([r.probs[0].float().cpu().numpy() for r in records])  # (L, nh, Tq, Tk)

    return {
        "tokens": run.tokens,
        "step_probs": [s.probs.float().cpu().numpy() for s in run.steps],
        "encoder": stack(out.encoder_self),
        "decoder_self": stack(out.decoder_self),
        "decoder_mask": out.decoder_self[0].mask[0, 0].cpu().numpy(),  # (Tt, Tt): causal, no padding here
        "cross": stack(out.cross),
    }


def random_example() -> None:
    """on_click: a written date from the held-out split, never seen in training."""
    st.session_state.s2s_text = make_pairs(1, seed=random.randrange(10**9), held_out=True)[0][0]


def shown(token: str) -> str:
    return "␣" if token == " " else token


def input_ui() -> str | None:
    """The validated, normalised input, or None after saying what the model accepts."""
    st.session_state.setdefault("s2s_text", EXAMPLE)
    left, right = st.columns([4, 1], vertical_alignment="bottom")
    left.text_input("A date written in English", key="s2s_text", max_chars=200)
    right.button("Random held-out date", on_click=random_example)
    check = validate(st.session_state.s2s_text)
    if not check.ok:
        st.error(check.error)
        return None
    return check.text


st.title("Encoder–decoder")
st.caption(
    "A transformer as in *Attention Is All You Need* (post-norm, sinusoidal positions), trained here on "
    "written dates → ISO dates. In the decoder the first attention is masked, the second is ordinary "
    "attention over the encoder output (S10)."
)
device = st.session_state.get("device", "cpu")
try:
    model, config, meta = get_model(device)
except Seq2SeqLoadError as err:
    st.error(f"Cannot load the encoder-decoder: {err}")
    st.stop()

text = input_ui()
if text is None:
    st.stop()

result = decode(model, device, text, config.bos_id, config.eos_id)
tokens = result["tokens"]
answer = TGT_VOCAB.decode(tokens, stop_at=EOS)
expected = parse_date(text)
src_labels = [shown(c) for c in text]
dec_in = ["<bos>"] + [TGT_VOCAB.tokens[t] for t in tokens[:-1]]  # what the decoder reads at each step
dec_out = [TGT_VOCAB.tokens[t] for t in tokens]  # what it writes at each step
rows = [f"{i}→{o}" for i, o in zip(dec_in, dec_out, strict=True)]

verdict = ""
if expected is None:
    verdict = " · the reference rules find no single valid date in this input, so there is no right answer"
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
with st.expander("Content (K, V) and guidance (Q): how to read this page", expanded=False):
    st.markdown(EXPLANATION)

layer = st.selectbox(
    "Decoder layer", range(config.n_decoder_layers), key="s2s_layer", format_func=lambda i: f"layer {i}"
)

st.subheader("Greedy decoding, step by step")
n_steps = len(tokens)
st.session_state["s2s_step"] = min(st.session_state.get("s2s_step", 1), n_steps)
step = st.slider("Step", 1, n_steps, key="s2s_step") if n_steps > 1 else 1
t = step - 1
st.markdown(
    f"The decoder has read `{' '.join(dec_in[: t + 1])}` and writes **`{dec_out[t]}`** "
    f"(output so far: `{answer[: t + 1]}`)."
)
st.plotly_chart(
    next_token_bar(result["step_probs"][t], TGT_VOCAB.tokens, tokens[t], title=f"Next token at step {step}"),
    key="s2s_next",
)
left, right = st.columns([3, 1])
left.plotly_chart(
    head_rows_heatmap(result["cross"][layer, :, t], src_labels, title=f"Cross-attention of step {step}: "
                      f"where each head looks in the source (layer {layer})"),
    key="s2s_step_cross",
)  # fmt: skip
right.plotly_chart(
    head_rows_heatmap(result["decoder_self"][layer, :, t, : t + 1], dec_in[: t + 1],
                      title="Masked self-attention of this step"),
    key="s2s_step_self",
)  # fmt: skip

st.subheader("Every attention of the whole decoding")
head = st.selectbox(
    "Head", [*range(config.n_heads), MEAN], key="s2s_head",
    format_func=lambda h: f"head {h}" if isinstance(h, int) else h,
)  # fmt: skip


def pick(probs: np.ndarray) -> np.ndarray:
    """(nh, Tq, Tk) of one layer -> the chosen head's (Tq, Tk), or the mean over heads."""
    return probs.mean(0) if head == MEAN else probs[head]


label = "mean over heads" if head == MEAN else f"head {head}"
cross_tab, self_tab, enc_tab = st.tabs(
    ["Cross-attention (target × source)", "Decoder masked self-attention", "Encoder self-attention"]
)
with cross_tab:
    st.caption("Rows: decoder queries, labelled *read→written* (guidance, S15). Columns: encoder memory "
               "positions, the keys and values (content, S14).")  # fmt: skip
    st.plotly_chart(
        attention_heatmap(pick(result["cross"][layer]), rows, src_labels,
                          title=f"Decoder layer {layer}, {label}: cross-attention"),
        key="s2s_cross",
    )  # fmt: skip
with self_tab:
    st.caption("Grey: masked (−∞ before the softmax, exactly 0 after). Row i sees positions ≤ i (S12).")
    st.plotly_chart(
        masked_attention_heatmap(pick(result["decoder_self"][layer]), result["decoder_mask"], rows, dec_in,
                                 title=f"Decoder layer {layer}, {label}: masked self-attention"),
        key="s2s_self",
    )  # fmt: skip
with enc_tab:
    enc_layer = st.selectbox(
        "Encoder layer", range(config.n_encoder_layers), key="s2s_enc_layer",
        format_func=lambda i: f"layer {i}",
    )  # fmt: skip
    st.plotly_chart(
        attention_heatmap(pick(result["encoder"][enc_layer]), src_labels, src_labels,
                          title=f"Encoder layer {enc_layer}, {label}: self-attention (no mask)"),
        key="s2s_enc",
    )  # fmt: skip
