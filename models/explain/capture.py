"""One captured forward of any text model, read the same way for rollout, flow and value norms.

`capture_text(model, text)` runs an encoder (`models.bert.TextModel`), a causal decoder
(`models.gpt_io.TextGPT`) or the encoder-decoder (`load_model("seq2seq-dates")`'s tuple; the date is
decoded greedily first, then the whole decoding is captured in one pass) with `capture=LAZY`, and returns
the readout families with their tokens, the attention modules of each family (for W_O and b_O) and the
kernel's per-head outputs A·V (to check the value decomposition against).
"""

from dataclasses import dataclass, field

import torch
from torch import Tensor

from models.attention import LAZY, MultiHeadAttention
from models.bert import TextModel
from models.date_task import EOS, TGT_LEN, TGT_VOCAB, encode_sources, validate
from models.gpt_io import TextGPT
from models.readout import Family, readout
from models.seq2seq import Seq2Seq, greedy_generate


class InputError(ValueError):
    """A text the model cannot read; the message says what it accepts."""


@dataclass
class Captured:
    """One input through one model. Per family: its readout, its modules, its kernel outputs, its tokens."""

    kind: str  # "encoder", "causal" or "seq2seq" (models.registry.KINDS)
    families: dict[str, Family]
    modules: dict[str, list[MultiHeadAttention]]  # one per layer
    heads_out: dict[str, Tensor]  # (L, H, Tq, dh) each head's output A·V, as the fused kernel computed it
    tokens: dict[str, tuple[list[str], list[str]]]  # (query tokens, key tokens)
    notices: list[str] = field(default_factory=list)  # what the user should know: truncation, unknowns
    answer: str | None = None  # encoder-decoder: the decoded text
    written: list[str] | None = None  # encoder-decoder: the token each decoder position wrote

    @property
    def nbytes(self) -> int:
        outs = sum(t.element_size() * t.nelement() for t in self.heads_out.values())
        return outs + sum(f.nbytes for f in self.families.values())


def attention_modules(model) -> dict[str, list[MultiHeadAttention]]:
    """Each family's MultiHeadAttention per layer, for a model as `models.registry.load_model` returns it."""
    if isinstance(model, TextModel):
        return {"encoder": [layer.attention for layer in model.model.layers]}
    if isinstance(model, TextGPT):
        return {"decoder_self": [block.attention for block in model.model.blocks]}
    if isinstance(model, tuple) and isinstance(model[0], Seq2Seq):
        return {
            "encoder": [layer.self_attn for layer in model[0].encoder],
            "decoder_self": [layer.self_attn for layer in model[0].decoder],
            "cross": [layer.cross_attn for layer in model[0].decoder],
        }
    raise TypeError(f"a text model (encoder, causal, seq2seq) was expected, not {type(model).__name__}")


def _outputs(records) -> Tensor:
    return torch.stack([r.out[0] for r in records])  # (L, H, Tq, dh)


def _encoder(model: TextModel, text: str) -> Captured:
    enc = model.encode(text)
    records = model.run(enc.ids, capture=LAZY).attentions
    notices = []
    if enc.n_dropped:
        notices.append(
            f"The input is longer than the model's {model.config.max_position_embeddings} positions: the "
            f"last {enc.n_dropped} wordpieces were dropped (the final [SEP] is kept)."
        )
    return Captured(
        kind="encoder",
        families=readout(encoder=records),
        modules=attention_modules(model),
        heads_out={"encoder": _outputs(records)},
        tokens={"encoder": (enc.tokens, enc.tokens)},
        notices=notices,
    )


def _causal(model: TextGPT, text: str) -> Captured:
    try:
        ids, tokens, notices = model.encode(text)
    except ValueError as err:  # a GPT-2 directory without tokenizer.json
        raise InputError(str(err)) from err
    records = model.run(ids, capture=LAZY).attentions
    return Captured(
        kind="causal",
        families=readout(decoder_self=records),
        modules=attention_modules(model),
        heads_out={"decoder_self": _outputs(records)},
        tokens={"decoder_self": (tokens, tokens)},
        notices=notices,
    )


@torch.no_grad()
def _seq2seq(loaded: tuple, text: str) -> Captured:
    model, config = loaded[0], loaded[1]
    check = validate(text)
    if not check.ok:
        raise InputError(check.error)
    device = next(model.parameters()).device
    src = encode_sources([check.text], device)  # (1, Ts)
    written = greedy_generate(model, src, TGT_LEN + 1, config.bos_id, config.eos_id)[0].tolist()
    if config.eos_id in written:
        written = written[: written.index(config.eos_id) + 1]
    tgt_in = torch.tensor([[config.bos_id, *written[:-1]]], device=device)  # what each step read
    out = model(src, tgt_in, capture=LAZY)
    source = list(check.text)
    read = [TGT_VOCAB.tokens[t] for t in tgt_in[0].tolist()]
    return Captured(
        kind="seq2seq",
        families=readout(encoder=out.encoder_self, decoder_self=out.decoder_self, cross=out.cross),
        modules=attention_modules(loaded),
        heads_out={
            "encoder": _outputs(out.encoder_self),
            "decoder_self": _outputs(out.decoder_self),
            "cross": _outputs(out.cross),
        },
        tokens={"encoder": (source, source), "decoder_self": (read, read), "cross": (read, source)},
        answer=TGT_VOCAB.decode(written, stop_at=EOS),
        written=[TGT_VOCAB.tokens[t] for t in written],
    )


def capture_text(model, text: str) -> Captured:
    """`text` through `model` (as `models.registry.load_model` returns it), captured once with LAZY."""
    if not text.strip():
        raise InputError("the text is empty")
    attention_modules(model)  # refuses anything but a text model
    if isinstance(model, TextModel):
        return _encoder(model, text)
    if isinstance(model, TextGPT):
        return _causal(model, text)
    return _seq2seq(model, text)
