"""The relevance page's subjects: one input to one text model, run once, with what each view needs.

A `Subject` is computed once per (model, input) per process (`ui.results.computed`): the input's tokens,
every raw attention map on demand (a LAZY forward read through `models.readout`), and what the outputs
are (a causal model's top predictions, the encoder–decoder's greedy answer). Relevance, importance and
ablations are computed from it, each once per (subject, choice).
"""

from dataclasses import dataclass, field

import numpy as np

from models.attention import LAZY
from models.date_task import EOS, TGT_LEN, TGT_VOCAB, encode_sources, validate
from models.explain.ablation import (
    CausalProbe,
    EncoderProbe,
    Head,
    Importance,
    Probe,
    Seq2SeqProbe,
    ablate,
    head_gates,
    importance,
    top_predictions,
)
from models.explain.relevance import causal_relevance, encoder_relevance, seq2seq_relevance
from models.gpt_io import encoding_notices
from models.maps import AttentionMaps
from models.readout import readout
from models.seq2seq import decode_step_by_step
from viz.stepwise import char_labels

ENCODER, CAUSAL, SEQ2SEQ = "encoder", "causal", "seq2seq"
MODELS = {  # the page's choices: registry name -> kind
    "all-MiniLM-L6-v2": ENCODER,
    "gpt-stdlib": CAUSAL,
    "seq2seq-dates": SEQ2SEQ,
}
EXAMPLES = {
    ENCODER: "The animal didn't cross the street because it was too tired.",
    CAUSAL: "Return a new list containing all items from the iterable in ascending order.",
    SEQ2SEQ: "Twenty-sixth of November 2026",
}
TOP_K = 5  # predictions kept per position
MEMO_BYTES = 8 * 2**20  # raw maps memoised per subject


class InputError(ValueError):
    """An input the model cannot take; the message says what it accepts."""


@dataclass
class Subject:
    """One input run once. T input tokens (the source for the encoder–decoder)."""

    kind: str
    ids: list[int]  # the input's ids
    tokens: list[str]  # (T,) labels of the input tokens
    maps: AttentionMaps  # the raw attention the relevance is drawn beside: encoder, causal, or cross
    notices: list[str] = field(default_factory=list)  # truncation, unknown characters
    top_ids: np.ndarray | None = None  # causal: (T, TOP_K) most likely next ids at each position
    top_probs: np.ndarray | None = None  # causal: (T, TOP_K) their probabilities
    written: list[int] | None = None  # seq2seq: the greedy output, EOS included
    outputs: list[str] | None = None  # seq2seq: a label per output step

    @property
    def decoder_inputs(self) -> list[str]:
        """seq2seq: what the decoder reads at each step, <bos> and the characters written before."""
        return ["<bos>", *(TGT_VOCAB.tokens[t] for t in self.written[:-1])]

    @property
    def nbytes(self) -> int:
        extra = sum(a.nbytes for a in (self.top_ids, self.top_probs) if a is not None)
        return self.maps.nbytes + extra


def subject_of(model, kind: str, text: str) -> Subject:
    """Run `model` (a TextModel, TextGPT or (Seq2Seq, config, meta)) once on `text`; InputError if it
    cannot take it."""
    if kind == ENCODER:
        enc = model.encode(text)
        family = readout(encoder=model.run(enc.ids, capture=LAZY).attentions)["encoder"]
        notices = [f"Only the first {len(enc.ids)} wordpieces are read."] if enc.n_dropped else []
        return Subject(kind, enc.ids, enc.tokens, AttentionMaps(family, MEMO_BYTES), notices)
    if kind == CAUSAL:
        enc = model.tokenizer.encode(text, max_len=model.config.block_size)
        if len(enc.ids) < 2:
            raise InputError("Type at least two characters: the model predicts each one from those before.")
        out = model.run(enc.ids, capture=LAZY)
        family = readout(decoder_self=out.attentions)["decoder_self"]
        probs, ids = out.logits[0].float().softmax(-1).topk(TOP_K)  # (T, TOP_K)
        labels = char_labels(enc.tokens)
        return Subject(
            kind, enc.ids, labels, AttentionMaps(family, MEMO_BYTES),
            encoding_notices(enc, model.config.block_size), ids.cpu().numpy(), probs.cpu().numpy(),
        )  # fmt: skip
    seq2seq, config, _ = model
    check = validate(text)
    if not check.ok:
        raise InputError(check.error)
    device = next(seq2seq.parameters()).device
    src = encode_sources([check.text], device)
    run = decode_step_by_step(seq2seq, src, TGT_LEN + 1, config.bos_id, config.eos_id)
    family = readout(cross=run.output.cross)["cross"]
    written = [TGT_VOCAB.tokens[t] for t in run.tokens]
    return Subject(
        kind, src[0].tolist(), char_labels(list(check.text)), AttentionMaps(family, MEMO_BYTES),
        written=run.tokens, outputs=[f"step {i + 1}: writes {w}" for i, w in enumerate(written)],
    )  # fmt: skip


def answer(subject: Subject) -> str:
    return TGT_VOCAB.decode(subject.written, stop_at=EOS)


def relevance_of(model, subject: Subject, output: int, choice):
    """The relevance for output `output` (a position, a step, or None for the encoder) and `choice`
    (a token id for the causal model; a dimension or None for the encoder)."""
    if subject.kind == ENCODER:
        return encoder_relevance(model.model, subject.ids, choice)
    if subject.kind == CAUSAL:
        return causal_relevance(model.model, subject.ids, output, choice)
    seq2seq, config, _ = model
    tgt_in = [config.bos_id, *subject.written[:-1]]
    return seq2seq_relevance(seq2seq, subject.ids, tgt_in, output, subject.written[output])


def raw_row(subject: Subject, layer: int, head, output: int | None) -> np.ndarray:
    """(T,) the raw attention an output reads, over the input: the mean of an encoder's rows (what mean
    pooling reads), a causal position's row, an output step's cross-attention row."""
    matrix = subject.maps.head(layer, head)
    return matrix.mean(0) if subject.kind == ENCODER else matrix[output]


def families(model, kind: str) -> dict[str, tuple[int, int]]:
    """{family: (layers, heads)} of the model's attention, as `models.readout` names them."""
    if kind == ENCODER:
        return {"encoder": (model.config.num_hidden_layers, model.config.num_attention_heads)}
    if kind == CAUSAL:
        return {"decoder_self": (model.config.n_layer, model.config.n_head)}
    c = model[1]
    return {
        "encoder": (c.n_encoder_layers, c.n_heads),
        "decoder_self": (c.n_decoder_layers, c.n_heads),
        "cross": (c.n_decoder_layers, c.n_heads),
    }


def probe_of(model, subject: Subject) -> Probe:
    if subject.kind == ENCODER:
        return EncoderProbe(model.model, subject.ids)
    if subject.kind == CAUSAL:
        return CausalProbe(model.model, subject.ids)
    seq2seq, config, _ = model
    return Seq2SeqProbe(seq2seq, subject.ids, subject.written, config.bos_id)


@dataclass
class Change:
    """What ablating a set of heads changed, for the page (small)."""

    clean: float  # the objective without ablation
    ablated: float  # with the heads ablated
    effect: float  # the probe's effect
    rows: list[dict]  # a table: top predictions, or the output step by step
    answer: str | None = None  # seq2seq: the greedy output decoded again with the heads ablated

    @property
    def nbytes(self) -> int:
        return 64 * (len(self.rows) + 1)


def change_of(model, subject: Subject, heads: list[Head], fill: str) -> Change:
    """Ablate `heads` together and compare with the model: the objective, and the top predictions after
    the text (causal), or the output step by step and decoded again (encoder–decoder)."""
    probe = probe_of(model, subject)
    run = ablate(probe, heads, fill)
    change = Change(run.clean_objective, run.objective, run.effect, [])
    if subject.kind == CAUSAL:
        vocab = char_labels(model.tokenizer.vocab)
        clean, ablated = (top_predictions(x[0, -1], TOP_K) for x in (probe.clean, run.output))
        change.rows = [
            {"rank": r + 1, "model": f"{vocab[a]}  {p:.3f}", "ablated": f"{vocab[b]}  {q:.3f}"}
            for r, ((a, p), (b, q)) in enumerate(zip(clean, ablated, strict=True))
        ]
    elif subject.kind == SEQ2SEQ:
        probs = run.output[0].float().softmax(-1)  # (Tt, V) teacher-forced on the model's own output
        for step, token in enumerate(subject.written):
            best = int(probs[step].argmax())
            change.rows.append({
                "step": step + 1, "model writes": TGT_VOCAB.tokens[token],
                "ablated, p(same)": round(float(probs[step, token]), 4),
                "ablated predicts": TGT_VOCAB.tokens[best],
            })  # fmt: skip
        gates = head_gates(probe.families, heads, probe.dtype, probe.device)
        change.answer = TGT_VOCAB.decode(probe.redecode(gates, fill, model[1].eos_id), stop_at=EOS)
    return change


def importance_of(model, subject: Subject, fill: str) -> Importance:
    """Every head ablated alone (batched) beside Michel et al.'s gradient estimate; an encoder's objective
    is its sentence embedding's length along its own direction."""
    return importance(probe_of(model, subject), fill)
