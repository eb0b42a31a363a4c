"""An encoder-decoder transformer as in "Attention Is All You Need", on the project's attention core.

Encoder layer: self-attention over the source (padding masked), then a feed-forward network.
Decoder layer: masked self-attention over the target produced so far (causal + padding mask), then
cross-attention whose queries come from the decoder and whose keys and values come from the encoder
output ("memory"), then a feed-forward network (seed claims S10, S14, S15).

Like the paper, positions are sinusoidal and added to the scaled token embeddings, and the layers are
post-norm: x = LayerNorm(x + Dropout(sublayer(x))).
"""

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from models import validate
from models.attention import (
    ZERO,
    AttentionRecord,
    MultiHeadAttention,
    causal_mask,
    combine_masks,
    family_gates,
    layer_gate,
    padding_mask,
)
from models.errors import BUILD_ERRORS, ModelLoadError
from models.files import MAX_WEIGHTS_BYTES, read_json_object, regular_file


@dataclass
class Seq2SeqConfig:
    src_vocab_size: int = 41  # source tokens, padding included
    tgt_vocab_size: int = 14  # target tokens, padding, BOS and EOS included
    d_model: int = 128  # channels of every token representation
    n_heads: int = 4  # attention heads per attention; d_head = d_model / n_heads
    n_encoder_layers: int = 2
    n_decoder_layers: int = 2
    d_ff: int = 256  # hidden width of the feed-forward networks
    max_len: int = 64  # longest source or target sequence the positional table covers
    dropout: float = 0.1
    pad_id: int = 0  # padding id, the same in both vocabularies
    bos_id: int = 1  # target id that starts decoding
    eos_id: int = 2  # target id that ends decoding


PRESETS = {
    "dates": Seq2SeqConfig(dropout=0.0),  # training pairs are fresh every step: nothing to overfit
    "tiny": Seq2SeqConfig(d_model=32, n_heads=2, n_encoder_layers=1, n_decoder_layers=1, d_ff=64),
}


class Seq2SeqLoadError(ModelLoadError, ValueError):
    """A weights directory that does not rebuild an encoder-decoder."""


def sinusoidal_encoding(max_len: int, d_model: int) -> Tensor:
    """(max_len, d_model): PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(p / 10000^(2i/d))."""
    pos = torch.arange(max_len, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    pe = torch.zeros(max_len, d_model)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)
    return pe


class Embedding(nn.Module):
    """Token embedding scaled by sqrt(d), plus the sinusoidal position, then dropout."""

    def __init__(self, vocab_size: int, d_model: int, max_len: int, dropout: float):
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, d_model)
        # N(0, 1/d) so that sqrt(d) * embedding has the norm of the positional code (~sqrt(d/2)); with
        # nn.Embedding's N(0, 1) the tokens would drown the positions and copying by position learns slowly.
        nn.init.normal_(self.tokens.weight, std=d_model**-0.5)
        self.register_buffer("positions", sinusoidal_encoding(max_len, d_model), persistent=False)
        self.scale = math.sqrt(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, ids: Tensor) -> Tensor:
        t = ids.size(1)
        if t > self.positions.size(0):
            raise ValueError(f"sequence of {t} tokens is longer than max_len={self.positions.size(0)}")
        return self.dropout(self.tokens(ids) * self.scale + self.positions[:t])  # (B, T, d)


def feed_forward(d_model: int, d_ff: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_model, d_ff), nn.ReLU(), nn.Dropout(dropout), nn.Linear(d_ff, d_model))


class EncoderLayer(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads)
        self.ff = feed_forward(d_model, d_ff, dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor | None, capture: bool = False, head_gate=None, gate_fill=ZERO):
        """x (B, Ts, d), mask (B, 1, 1, Ts) -> ((B, Ts, d), self-attention record or None)."""
        a, record = self.self_attn(x, mask=mask, capture=capture, head_gate=head_gate, gate_fill=gate_fill)
        x = self.norm1(x + self.dropout(a))
        x = self.norm2(x + self.dropout(self.ff(x)))
        return x, record


class DecoderLayer(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads)
        self.cross_attn = MultiHeadAttention(d_model, n_heads)
        self.ff = feed_forward(d_model, d_ff, dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, y: Tensor, memory: Tensor, self_mask: Tensor, cross_mask: Tensor | None,
                capture: bool = False, self_gate=None, cross_gate=None, gate_fill=ZERO):  # fmt: skip
        """y (B, Tt, d), memory (B, Ts, d) -> ((B, Tt, d), (self record, cross record) or Nones)."""
        a, self_record = self.self_attn(y, mask=self_mask, capture=capture, head_gate=self_gate,
                                        gate_fill=gate_fill)  # fmt: skip
        y = self.norm1(y + self.dropout(a))
        # Q from the decoder (what this position is looking for), K and V from the encoder memory.
        c, cross_record = self.cross_attn(y, memory, memory, mask=cross_mask, capture=capture,
                                          head_gate=cross_gate, gate_fill=gate_fill)  # fmt: skip
        y = self.norm2(y + self.dropout(c))
        y = self.norm3(y + self.dropout(self.ff(y)))
        return y, (self_record, cross_record)


@dataclass
class Seq2SeqOutput:
    """One forward pass. Record lists have one entry per layer and are None unless capture=True."""

    logits: Tensor  # (B, Tt, tgt_vocab) next-token scores at every target position
    memory: Tensor  # (B, Ts, d) encoder output, the K/V source of every cross-attention
    encoder_self: list[AttentionRecord] | None  # probs (B, nh, Ts, Ts)
    decoder_self: list[AttentionRecord] | None  # probs (B, nh, Tt, Tt), causal
    cross: list[AttentionRecord] | None  # probs (B, nh, Tt, Ts)


class Seq2Seq(nn.Module):
    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, d_model: int, n_heads: int,
                 n_encoder_layers: int, n_decoder_layers: int, d_ff: int, max_len: int, dropout: float,
                 pad_id: int = 0):  # fmt: skip
        super().__init__()
        self.pad_id = pad_id
        self.src_embed = Embedding(src_vocab_size, d_model, max_len, dropout)
        self.tgt_embed = Embedding(tgt_vocab_size, d_model, max_len, dropout)
        self.encoder = nn.ModuleList(
            EncoderLayer(d_model, n_heads, d_ff, dropout) for _ in range(n_encoder_layers)
        )
        self.decoder = nn.ModuleList(
            DecoderLayer(d_model, n_heads, d_ff, dropout) for _ in range(n_decoder_layers)
        )
        self.lm_head = nn.Linear(d_model, tgt_vocab_size)

    def encode(self, src: Tensor, capture: bool = False, head_gates: dict | None = None,
               gate_fill: str = ZERO) -> tuple[Tensor, Tensor, list | None]:  # fmt: skip
        """src (B, Ts) ids -> (memory (B, Ts, d), key mask (B, 1, 1, Ts), per-layer records or None).

        head_gates: {"encoder", "decoder_self", "cross"} -> (L, H) or (L, B, H) gates of that family's
        heads (`models.attention.gate_heads`; a family left out is not gated); None for the plain model."""
        gates = family_gates(head_gates, "encoder")
        mask = padding_mask(src == self.pad_id)
        x = self.src_embed(src)
        records = []
        for i, layer in enumerate(self.encoder):
            x, record = layer(x, mask, capture, layer_gate(gates, i), gate_fill)
            records.append(record)
        return x, mask, (records if capture else None)

    def decode(self, tgt_in: Tensor, memory: Tensor, memory_mask: Tensor | None, capture: bool = False,
               head_gates: dict | None = None, gate_fill: str = ZERO):  # fmt: skip
        """tgt_in (B, Tt) ids starting with BOS -> (logits (B, Tt, V), self records, cross records)."""
        self_gates, cross_gates = family_gates(head_gates, "decoder_self"), family_gates(head_gates, "cross")
        t = tgt_in.size(1)
        self_mask = combine_masks(causal_mask(t, device=tgt_in.device), padding_mask(tgt_in == self.pad_id))
        y = self.tgt_embed(tgt_in)
        self_records, cross_records = [], []
        for i, layer in enumerate(self.decoder):
            gates = layer_gate(self_gates, i), layer_gate(cross_gates, i)
            y, (s, c) = layer(y, memory, self_mask, memory_mask, capture, *gates, gate_fill)
            self_records.append(s)
            cross_records.append(c)
        if not capture:
            return self.lm_head(y), None, None
        return self.lm_head(y), self_records, cross_records

    def forward(self, src: Tensor, tgt_in: Tensor, capture: bool = False, head_gates: dict | None = None,
                gate_fill: str = ZERO) -> Seq2SeqOutput:  # fmt: skip
        """src (B, Ts), tgt_in (B, Tt) = BOS + target[:-1] (teacher forcing); head_gates as in `encode`."""
        memory, memory_mask, enc = self.encode(src, capture, head_gates, gate_fill)
        logits, dec, cross = self.decode(tgt_in, memory, memory_mask, capture, head_gates, gate_fill)
        return Seq2SeqOutput(logits=logits, memory=memory, encoder_self=enc, decoder_self=dec, cross=cross)


def build_seq2seq(config: Seq2SeqConfig) -> Seq2Seq:
    return Seq2Seq(
        src_vocab_size=config.src_vocab_size, tgt_vocab_size=config.tgt_vocab_size, d_model=config.d_model,
        n_heads=config.n_heads, n_encoder_layers=config.n_encoder_layers,
        n_decoder_layers=config.n_decoder_layers, d_ff=config.d_ff, max_len=config.max_len,
        dropout=config.dropout, pad_id=config.pad_id,
    )  # fmt: skip


@torch.no_grad()
def greedy_generate(model: Seq2Seq, src: Tensor, max_steps: int, bos_id: int, eos_id: int,
                    head_gates: dict | None = None, gate_fill: str = ZERO) -> Tensor:  # fmt: skip
    """Batched greedy decoding on the fast path: src (B, Ts) -> (B, <= max_steps) ids, EOS then padding.
    head_gates as in `Seq2Seq.encode`."""
    memory, memory_mask, _ = model.encode(src, head_gates=head_gates, gate_fill=gate_fill)
    out = torch.full((src.size(0), 1), bos_id, dtype=torch.long, device=src.device)
    done = torch.zeros(src.size(0), dtype=torch.bool, device=src.device)
    for _ in range(max_steps):
        logits, _, _ = model.decode(out, memory, memory_mask, head_gates=head_gates, gate_fill=gate_fill)
        nxt = logits[:, -1].argmax(-1).masked_fill(done, model.pad_id)  # (B,)
        out = torch.cat([out, nxt[:, None]], dim=1)
        done |= nxt == eos_id
        if done.all():
            break
    return out[:, 1:]


@dataclass
class DecodeStep:
    """One step of greedy decoding: the decoder reads BOS + the tokens so far and picks the next one."""

    token_id: int  # the token picked (argmax)
    probs: Tensor  # (tgt_vocab,) softmax of the next-token logits
    self_rows: list[Tensor]  # per decoder layer (nh, t): the new query's masked self-attention row
    cross_rows: list[Tensor]  # per decoder layer (nh, Ts): the new query's attention over the source


@dataclass
class StepByStep:
    tokens: list[int]  # the generated ids (EOS included when produced)
    steps: list[DecodeStep]  # one per generated token
    output: Seq2SeqOutput  # the captured pass over BOS + tokens[:-1]: the full matrices, batch of 1


@torch.no_grad()
def decode_step_by_step(model: Seq2Seq, src: Tensor, max_steps: int, bos_id: int, eos_id: int) -> StepByStep:
    """Greedy decoding of one source (1, Ts), capturing every attention at every step.

    No key/value cache: each step runs the decoder on the whole prefix, so that each step's records are
    those of a plain forward pass. By causality the earlier rows do not change from step to step.
    """
    if src.dim() != 2 or src.size(0) != 1:
        raise ValueError(f"expected one source of shape (1, Ts), got {tuple(src.shape)}")
    was_training = model.training
    model.eval()
    memory, memory_mask, enc = model.encode(src, capture=True)
    tgt_in = torch.tensor([[bos_id]], device=src.device)
    tokens, steps = [], []
    for _ in range(max_steps):
        logits, dec, cross = model.decode(tgt_in, memory, memory_mask, capture=True)
        probs = logits[0, -1].softmax(-1)
        token = int(probs.argmax())
        new_self = [r.probs[0, :, -1] for r in dec]  # (nh, t) per layer
        new_cross = [r.probs[0, :, -1] for r in cross]  # (nh, Ts) per layer
        steps.append(DecodeStep(token, probs, new_self, new_cross))
        tokens.append(token)
        output = Seq2SeqOutput(logits=logits, memory=memory, encoder_self=enc, decoder_self=dec, cross=cross)
        if token == eos_id:
            break
        tgt_in = torch.cat([tgt_in, torch.tensor([[token]], device=src.device)], dim=1)
    model.train(was_training)
    return StepByStep(tokens=tokens, steps=steps, output=output)


def save_seq2seq(model: Seq2Seq, config: Seq2SeqConfig, directory: str | Path, **extra) -> None:
    """Write model.safetensors and config.json ({"model": config fields, **extra}) into `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(directory / "model.safetensors"))
    (directory / "config.json").write_text(json.dumps({"model": asdict(config), **extra}, indent=2) + "\n")


def load_seq2seq(directory: str | Path, device: str = "cpu") -> tuple[Seq2Seq, Seq2SeqConfig, dict]:
    """Rebuild a model saved by `save_seq2seq`, in eval mode. Returns (model, config, all of config.json)."""
    directory = Path(directory)
    where = str(directory / "config.json")
    try:  # a regular config.json of bounded size, sizes that fit memory, a well-formed safetensors header
        meta = read_json_object(directory / "config.json")
        validate.seq2seq(validate.section(meta, "model", where), where, device)
        validate.safetensors_header(regular_file(directory / "model.safetensors", MAX_WEIGHTS_BYTES))
    except ModelLoadError as err:
        raise Seq2SeqLoadError(f"{err}. Re-create it with python -m scripts.train_seq2seq") from err
    try:
        known = {f.name for f in fields(Seq2SeqConfig)}
        config = Seq2SeqConfig(**{k: v for k, v in meta["model"].items() if k in known})
        model = build_seq2seq(config)
        model.load_state_dict(load_file(str(directory / "model.safetensors")))
    except (OSError, KeyError, AttributeError, SafetensorError, *BUILD_ERRORS) as err:
        raise Seq2SeqLoadError(
            f"{directory} does not hold an encoder-decoder saved by save_seq2seq (config.json with a "
            f"'model' section and a matching model.safetensors): {err}. "
            "Re-create it with python -m scripts.train_seq2seq"
        ) from err
    return model.to(device).eval(), config, meta
