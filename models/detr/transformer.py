"""DETR's post-norm encoder-decoder transformer, on the project's `MultiHeadAttention`.

Batch-first (B, T, d) throughout (the official code is sequence-first; the maths is the same).
Module names follow the official `models/transformer.py` (`self_attn`, `multihead_attn`, `linear1`,
`linear2`, `norm1..3`, `decoder.norm`) so that official checkpoints map with one change only: the
packed `in_proj_weight` is split into our `q_proj` / `k_proj` / `v_proj` (see `checkpoint.py`).

Where position enters (S21): at *every* encoder layer q = k = src + pos and value = src; in the
decoder, self-attention uses q = k = tgt + query_pos, value = tgt, and cross-attention uses
query = tgt + query_pos, key = memory + pos, value = memory. The decoder input `tgt` starts at
zeros, so the object queries (`query_pos`) are all that tells the N slots apart (S22).
"""

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from models.attention import ZERO, AttentionRecord, MultiHeadAttention, family_gates, layer_gate, padding_mask


class EncoderLayer(nn.Module):
    def __init__(self, d_model: int, n_heads: int, dim_feedforward: int, dropout: float):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, src: Tensor, pos: Tensor, mask: Tensor | None, capture: bool, head_gate=None,
                gate_fill=ZERO):  # fmt: skip
        """src, pos (B, HW, d); mask bool (B, 1, 1, HW), True = may attend."""
        qk = src + pos
        attn, record = self.self_attn(qk, qk, src, mask=mask, capture=capture, head_gate=head_gate,
                                      gate_fill=gate_fill)  # fmt: skip
        src = self.norm1(src + self.dropout(attn))
        ff = self.linear2(self.dropout(F.relu(self.linear1(src))))
        return self.norm2(src + self.dropout(ff)), record


class DecoderLayer(nn.Module):
    def __init__(self, d_model: int, n_heads: int, dim_feedforward: int, dropout: float):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads)
        self.multihead_attn = MultiHeadAttention(d_model, n_heads)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        tgt: Tensor,
        memory: Tensor,
        pos: Tensor,
        query_pos: Tensor,
        memory_mask: Tensor | None,
        capture: bool,
        self_gate: Tensor | None = None,
        cross_gate: Tensor | None = None,
        gate_fill: str = ZERO,
    ):
        """tgt, query_pos (B, N, d); memory, pos (B, HW, d); memory_mask bool (B, 1, 1, HW)."""
        qk = tgt + query_pos
        attn, self_record = self.self_attn(
            qk, qk, tgt, capture=capture, head_gate=self_gate, gate_fill=gate_fill
        )
        tgt = self.norm1(tgt + self.dropout(attn))
        attn, cross_record = self.multihead_attn(
            tgt + query_pos, memory + pos, memory, mask=memory_mask, capture=capture, head_gate=cross_gate,
            gate_fill=gate_fill,
        )  # fmt: skip
        tgt = self.norm2(tgt + self.dropout(attn))
        ff = self.linear2(self.dropout(F.relu(self.linear1(tgt))))
        return self.norm3(tgt + self.dropout(ff)), self_record, cross_record


class Encoder(nn.Module):
    def __init__(self, n_layers: int, **layer_kwargs):
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(**layer_kwargs) for _ in range(n_layers))


class Decoder(nn.Module):
    def __init__(self, n_layers: int, d_model: int, **layer_kwargs):
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(d_model=d_model, **layer_kwargs) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)  # shared: applied to every layer's output (aux predictions)


@dataclass
class TransformerOutput:
    hs: Tensor  # (L_dec, B, N, d) every decoder layer's output after the shared decoder norm
    memory: Tensor  # (B, HW, d) encoder output
    encoder_attentions: list[AttentionRecord] | None  # per encoder layer, probs (B, nh, HW, HW)
    decoder_self_attentions: list[AttentionRecord] | None  # per decoder layer, probs (B, nh, N, N)
    decoder_cross_attentions: list[AttentionRecord] | None  # per decoder layer, probs (B, nh, N, HW)


class Transformer(nn.Module):
    def __init__(
        self,
        d_model: int = 256,
        n_heads: int = 8,
        num_encoder_layers: int = 6,
        num_decoder_layers: int = 6,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
    ):
        super().__init__()
        layer = dict(n_heads=n_heads, dim_feedforward=dim_feedforward, dropout=dropout)
        self.encoder = Encoder(num_encoder_layers, d_model=d_model, **layer)
        self.decoder = Decoder(num_decoder_layers, d_model, **layer)
        self.d_model = d_model
        self.n_heads = n_heads
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        for p in self.parameters():  # as the official code: Xavier on every matrix
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(
        self, src: Tensor, mask: Tensor, query_embed: Tensor, pos_embed: Tensor, capture: bool = False,
        head_gates: dict | None = None, gate_fill: str = ZERO,
    ) -> TransformerOutput:  # fmt: skip
        """src, pos_embed (B, d, h, w); mask (B, h, w) True at padding; query_embed (N, d).

        head_gates: {"encoder", "decoder_self", "cross"} -> (L, H) or (L, B, H) gates of that family's
        heads (`models.attention.gate_heads`; a family left out is not gated); None for the plain model."""
        enc_gates = family_gates(head_gates, "encoder")
        self_gates, cross_gates = family_gates(head_gates, "decoder_self"), family_gates(head_gates, "cross")
        b = src.shape[0]
        src = src.flatten(2).transpose(1, 2)  # (B, HW, d), row-major over (h, w)
        pos = pos_embed.flatten(2).transpose(1, 2)  # (B, HW, d)
        key_mask = padding_mask(mask.flatten(1))  # (B, 1, 1, HW)
        if not mask.any():
            key_mask = None  # nothing is padded: SDPA takes its unmasked kernel, capture skips the fill
        query_pos = query_embed.unsqueeze(0).expand(b, -1, -1)  # (B, N, d)
        enc_records, self_records, cross_records = [], [], []
        memory = src
        for i, layer in enumerate(self.encoder.layers):
            memory, rec = layer(memory, pos, key_mask, capture, layer_gate(enc_gates, i), gate_fill)
            enc_records.append(rec)
        tgt = torch.zeros_like(query_pos)
        hs = []
        for i, layer in enumerate(self.decoder.layers):
            gates = layer_gate(self_gates, i), layer_gate(cross_gates, i)
            tgt, self_rec, cross_rec = layer(
                tgt, memory, pos, query_pos, key_mask, capture, *gates, gate_fill
            )
            self_records.append(self_rec)
            cross_records.append(cross_rec)
            hs.append(self.decoder.norm(tgt))
        return TransformerOutput(
            hs=torch.stack(hs),
            memory=memory,
            encoder_attentions=enc_records if capture else None,
            decoder_self_attentions=self_records if capture else None,
            decoder_cross_attentions=cross_records if capture else None,
        )
