"""Gradient-weighted attention relevance (Chefer, Gur & Wolf 2021, "Generic Attention-model Explainability
for Interpreting Bi-Modal and Encoder-Decoder Transformers").

A raw attention map says where a head looked, not whether that mattered for the output. Chefer et al.
weigh each map A (H, Tq, Tk) by the gradient of one chosen output y (a logit, a score) with respect to
it, keep the positive part and average the heads: Ā = E_h[(∇A ⊙ A)⁺] (their eq. 5). Relevance matrices
start as the identity (each token is relevant to itself) and are updated layer by layer, in the order
the model computes them:

- self-attention over one set of tokens (eq. 6–7): R_ss += Ā·R_ss, and a decoder's relevance on the
  other set moves with it, R_sq += Ā·R_sq;
- cross-attention from s (the queries: the decoder's tokens, DETR's object queries) to q (the encoder's
  tokens, the image) (eq. 10): R_sq += R̄_ssᵀ·Ā·R̄_qq, where R̄ = (R − I) with its rows normalised to sum
  to 1, plus I (eq. 8–9): the residual's identity kept apart from what attention added.

Row i of R_ss (or R_sq) is then the relevance of every input token for output token i. Read off:
a decoder's token logit at position t → row t; an encoder's mean-pooled sentence embedding (MiniLM's
pooling) → the mean of the rows; the encoder–decoder's output step t → row t of R_tq over the source;
a DETR detection → its query's row of R_qi over the image's feature cells, reshaped to (h, w).

The forward runs with `capture=True` outside `torch.no_grad()`, so the probabilities are in the autograd
graph, and `torch.autograd.grad` takes y's gradient with respect to them alone: no parameter's `.grad`
is written (the models are shared by every session) and nothing upstream of the attention (DETR's
backbone) is differentiated. The rules follow the authors' code (hila-chefer/Transformer-MM-
Explainability, `ExplanationGenerator.generate_ours` without LRP); only batch element 0 is explained.
"""

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from models.attention import AttentionRecord
from models.bert import BertModel
from models.detr.detr import DETR
from models.explain.inputs import DetrFeatures
from models.gpt import GPT
from models.seq2seq import Seq2Seq

BOX_COORDINATES = ("cx", "cy", "w", "h")  # DETR's box outputs, in this order, each in [0, 1]
DETR_TARGETS = ("class", *BOX_COORDINATES)  # what a detection's relevance can explain


def head_mean(probs: Tensor, grads: Tensor) -> Tensor:
    """Ā = E_h[(∇A ⊙ A)⁺] (eq. 5): probs and their gradients (H, Tq, Tk) -> (Tq, Tk)."""
    return (grads * probs).clamp(min=0).mean(0)


def normalise_residual(relevance: Tensor) -> Tensor:
    """R̄ (eq. 8–9): R − I with each row scaled to sum to 1, plus I. A row to which attention added
    nothing yet stays the identity's row (the authors' code divides by 0 there and zeroes the NaNs)."""
    eye = torch.eye(relevance.shape[-1], dtype=relevance.dtype, device=relevance.device)
    added = relevance - eye
    sums = added.sum(-1, keepdim=True)
    return torch.where(sums > 0, added / torch.where(sums > 0, sums, 1), 0) + eye


def self_relevance(layers: list[Tensor]) -> Tensor:
    """R after a stack of self-attention layers: R = I, then R += Ā·R per layer (eq. 6). layers: Ā (T, T)
    per layer, first to last -> R (T, T), row i the relevance of each token for output token i."""
    relevance = torch.eye(layers[0].shape[-1], dtype=layers[0].dtype, device=layers[0].device)
    for a_bar in layers:
        relevance = relevance + a_bar @ relevance
    return relevance


@dataclass
class BimodalRelevance:
    """The three relevance matrices of an encoder–decoder (Ts encoder tokens, Tt decoder tokens)."""

    encoder: Tensor  # (Ts, Ts) R_qq: encoder tokens on encoder tokens
    decoder: Tensor  # (Tt, Tt) R_ss: decoder tokens on decoder tokens
    cross: Tensor  # (Tt, Ts) R_sq: encoder tokens on each decoder token's output


def bimodal_relevance(
    encoder: list[Tensor], decoder_self: list[Tensor], cross: list[Tensor]
) -> BimodalRelevance:
    """Chefer et al.'s rules over an encoder and a decoder: every encoder layer first (eq. 6), then each
    decoder layer's self-attention (eq. 6–7) and cross-attention (eq. 10). Each argument: Ā per layer."""
    r_qq = self_relevance(encoder)
    t_s, t_q = cross[0].shape
    r_ss = torch.eye(t_s, dtype=r_qq.dtype, device=r_qq.device)
    r_sq = torch.zeros(t_s, t_q, dtype=r_qq.dtype, device=r_qq.device)
    r_qq_bar = normalise_residual(r_qq)  # the encoder is done: its normalised relevance serves every layer
    for a_self, a_cross in zip(decoder_self, cross, strict=True):
        r_ss, r_sq = r_ss + a_self @ r_ss, r_sq + a_self @ r_sq
        r_sq = r_sq + normalise_residual(r_ss).T @ a_cross @ r_qq_bar
    return BimodalRelevance(encoder=r_qq, decoder=r_ss, cross=r_sq)


def weighted_maps(y: Tensor, records: list[list[AttentionRecord]]) -> list[list[Tensor]]:
    """Ā (Tq, Tk) of every layer of every given family of records, for batch element 0: ∂y/∂A from one
    `torch.autograd.grad` over every captured probability map."""
    probs = [record.probs for family in records for record in family]
    if any(p is None for p in probs):
        raise ValueError("relevance needs the probabilities in the graph: run the forward with capture=True")
    grads = torch.autograd.grad(y, probs, allow_unused=True, materialize_grads=True)
    maps = iter(head_mean(p[0].detach(), g[0]) for p, g in zip(probs, grads, strict=True))
    return [[next(maps) for _ in family] for family in records]


@dataclass
class TokenRelevance:
    """The relevance of each input token for one output of a text model, beside its raw attention."""

    relevance: np.ndarray  # (T,) the output's relevance over the input tokens (Chefer et al.)
    raw: np.ndarray  # (T,) the last layer's attention for the same output, mean over heads
    matrix: np.ndarray  # (T, T) R: row i the relevance of each token for token i's output
    value: float  # the explained output y
    own: np.ndarray  # (T,) the identity's part of `relevance`: each token's own path, not attention's

    @property
    def nbytes(self) -> int:
        return self.relevance.nbytes + self.raw.nbytes + self.matrix.nbytes + self.own.nbytes


def _numpy(t: Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy()


def embedding_target(embedding: Tensor, reference: Tensor, dimension: int | None) -> Tensor:
    """The scalar explained for an encoder's sentence embedding (B, d) -> (B,): dimension `dimension`, or,
    when None, the embedding's length along the unit vector of `reference` (d,) (the clean embedding,
    held fixed): how strongly the input drives the embedding along its own direction."""
    if dimension is not None:
        return embedding[:, dimension]
    return embedding @ F.normalize(reference.detach(), dim=0)


def encoder_relevance(model: BertModel, ids: list[int], dimension: int | None = None) -> TokenRelevance:
    """The relevance of each token for the mean-pooled sentence embedding (MiniLM's pooling): its length
    along its own direction, or dimension `dimension` of it. The embedding averages every token's output,
    so the relevance is the mean of R's rows."""
    device = next(model.parameters()).device
    with torch.enable_grad():
        out = model(torch.tensor([ids], device=device), capture=True)
        embedding = out.last_hidden_state.mean(1)  # (1, d)
        y = embedding_target(embedding, embedding[0], dimension)[0]
        (layers,) = weighted_maps(y, [out.attentions])
    matrix = self_relevance(layers)
    raw = out.attentions[-1].probs[0].detach().mean(0).mean(0)  # (T,) what the mean of the rows read
    own = np.full(len(ids), 1 / len(ids), dtype=np.float32)  # the mean of the identity's rows
    return TokenRelevance(_numpy(matrix.mean(0)), _numpy(raw), _numpy(matrix), float(y.detach()), own)


def causal_relevance(model: GPT, ids: list[int], position: int, token: int) -> TokenRelevance:
    """The relevance of tokens 0..position for the logit of `token` at `position` (the prediction of the
    next token after it). Causal attention keeps the relevance causal: later tokens get exactly 0."""
    if not 0 <= position < len(ids):
        raise ValueError(f"position {position} is outside the {len(ids)} tokens")
    device = next(model.parameters()).device
    with torch.enable_grad():
        out = model(torch.tensor([ids], device=device), capture=True)
        y = out.logits[0, position, token]
        (layers,) = weighted_maps(y, [out.attentions])
    matrix = self_relevance(layers)
    raw = out.attentions[-1].probs[0, :, position].detach().mean(0)  # (T,)
    own = np.eye(len(ids), dtype=np.float32)[position]
    return TokenRelevance(_numpy(matrix[position]), _numpy(raw), _numpy(matrix), float(y.detach()), own)


@dataclass
class Seq2SeqRelevance:
    """The relevance of the source and of the decoder's inputs for one output step."""

    source: np.ndarray  # (Ts,) row `step` of R_sq: the written characters
    target: np.ndarray  # (Tt,) row `step` of R_ss: BOS and the tokens already written
    raw: np.ndarray  # (Ts,) the last decoder layer's cross-attention of the step, mean over heads
    value: float  # the explained logit
    own: np.ndarray  # (Tt,) the identity's part of `target`: the step's own input (R_sq has no identity)

    @property
    def nbytes(self) -> int:
        return self.source.nbytes + self.target.nbytes + self.raw.nbytes + self.own.nbytes


def seq2seq_relevance(
    model: Seq2Seq, src: list[int], tgt_in: list[int], step: int, token: int
) -> Seq2SeqRelevance:
    """The relevance for the logit of `token` at output step `step`, with the decoder reading tgt_in
    (BOS and the tokens before, teacher forcing as in greedy decoding's last pass)."""
    if not 0 <= step < len(tgt_in):
        raise ValueError(f"step {step} is outside the decoder's {len(tgt_in)} inputs")
    device = next(model.parameters()).device
    with torch.enable_grad():
        out = model(torch.tensor([src], device=device), torch.tensor([tgt_in], device=device), capture=True)
        y = out.logits[0, step, token]
        enc, dec, cross = weighted_maps(y, [out.encoder_self, out.decoder_self, out.cross])
    relevance = bimodal_relevance(enc, dec, cross)
    raw = out.cross[-1].probs[0, :, step].detach().mean(0)  # (Ts,)
    own = np.eye(len(tgt_in), dtype=np.float32)[step]
    return Seq2SeqRelevance(
        _numpy(relevance.cross[step]), _numpy(relevance.decoder[step]), _numpy(raw), float(y.detach()), own
    )


@dataclass
class DetrRelevance:
    """Where in the image one detection's output comes from. (h, w) the feature map."""

    relevance: np.ndarray  # (h, w) the query's row of R_qi (Chefer et al.)
    raw: np.ndarray  # (h, w) the query's last-layer cross-attention, mean over heads
    value: float  # the explained output: a class logit or a box coordinate

    @property
    def nbytes(self) -> int:
        return self.relevance.nbytes + self.raw.nbytes


def detr_target(logits: Tensor, boxes: Tensor, query: int, target: str, class_id: int | None) -> Tensor:
    """The scalar a DETR explanation explains, from pred_logits (N, K + 1) and pred_boxes (N, 4): the
    logit of `class_id` (default: the query's best real class) or one box coordinate."""
    if target == "class":
        if class_id is None:
            class_id = int(logits[query, :-1].argmax())
        return logits[query, class_id]
    if target not in BOX_COORDINATES:
        raise ValueError(f"unknown DETR target {target!r}; use one of {DETR_TARGETS}")
    return boxes[query, BOX_COORDINATES.index(target)]


def detr_relevance(
    model: DETR, features: DetrFeatures, query: int, target: str = "class", class_id: int | None = None
) -> DetrRelevance:
    """The relevance of every feature cell for detection `query`'s class logit (or a box coordinate).
    Only the transformer runs, on the backbone's features computed once per image."""
    with torch.enable_grad():
        out = model.predict(features.src, features.mask, features.pos, capture=True)
        y = detr_target(out.pred_logits[0], out.pred_boxes[0], query, target, class_id)
        att = out.attentions
        enc, dec, cross = weighted_maps(y, [att.encoder, att.decoder_self, att.decoder_cross])
    relevance = bimodal_relevance(enc, dec, cross)
    raw = att.decoder_cross[-1].probs[0, :, query].detach().mean(0)  # (HW,)
    shape = (out.h, out.w)
    return DetrRelevance(
        _numpy(relevance.cross[query]).reshape(shape), _numpy(raw).reshape(shape), float(y.detach())
    )
