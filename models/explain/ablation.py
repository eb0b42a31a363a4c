"""Head ablation and importance (Michel, Levy & Neubig 2019, "Are Sixteen Heads Really Better than One?").

Every attention of the project takes a gate per head (`models.attention.gate_heads`): g = 1 is the
model, g = 0 knocks the head out, either zeroed or replaced by its mean over the query positions of the
input (the head then says the same thing to every position). A `Probe` holds one input to one model and
what an ablation is measured by:

- `objective`: a differentiable scalar L per run: the next-token loss on the input (decoders), the
  negative log-probability of a detection's class (DETR), the sentence embedding's length along its own
  direction or one of its dimensions (encoders, which have no loss of their own);
- `effect`: what the page reports as the change: the change of that loss, 1 − the cosine similarity of
  the sentence embedding with the unablated one, the drop of the detection's score.

`importance` ablates every head alone, as one batch of inputs with a gate row per input (head_gate
(B, H) per layer), and sets the measured effect beside Michel et al.'s gradient estimate |∂L/∂g_h| at
g = 1 with zero fill: the first-order change of L when the head goes. Nothing is set on the shared
models: the gates are arguments of the forward.
"""

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from models.attention import MEAN, ZERO
from models.bert import BertModel
from models.detr.detr import DETR
from models.explain.inputs import DetrFeatures
from models.explain.relevance import embedding_target
from models.gpt import GPT
from models.seq2seq import Seq2Seq, greedy_generate

__all__ = ["MEAN", "ZERO", "Head", "Probe", "Importance", "Ablation", "importance", "ablate", "gradients"]

Head = tuple[str, int, int]  # (family, layer, head): a family of models.readout, e.g. ("encoder", 2, 5)
CHUNK = 12  # ablated inputs per batch (12, 24 and 72 take the same time for MiniLM at 128 tokens)


def every_head(families: dict[str, tuple[int, int]]) -> list[Head]:
    """Every (family, layer, head) of {family: (L, H)}, family by family, layer by layer."""
    return [(f, layer, h) for f, (n_layers, n_heads) in families.items()
            for layer in range(n_layers) for h in range(n_heads)]  # fmt: skip


def head_gates(shapes: dict[str, tuple[int, int]], off: Iterable[Head] = (), dtype=torch.float32,
               device="cpu") -> dict[str, Tensor]:  # fmt: skip
    """{family: (L, H)} ones, with 0 at every head of `off`."""
    gates = {name: torch.ones(shape, dtype=dtype, device=device) for name, shape in shapes.items()}
    for family, layer, head in off:
        if family not in gates:
            raise ValueError(f"this model has no {family!r} attention; it has {sorted(gates)}")
        n_layers, n_heads = shapes[family]
        if not (0 <= layer < n_layers and 0 <= head < n_heads):
            raise ValueError(
                f"{family} has {n_layers} layers x {n_heads} heads; no layer {layer}, head {head}"
            )
        gates[family][layer, head] = 0
    return gates


def single_head_gates(shapes: dict[str, tuple[int, int]], heads: list[Head], dtype=torch.float32,
                      device="cpu") -> dict[str, Tensor]:  # fmt: skip
    """{family: (L, B, H)} for B = len(heads) inputs: row r gates off heads[r] alone."""
    gates = {n: torch.ones(L, len(heads), H, dtype=dtype, device=device) for n, (L, H) in shapes.items()}
    for row, (family, layer, head) in enumerate(heads):
        gates[family][layer, row, head] = 0
    return gates


class Probe:
    """One input to one model and what an ablation is measured by. `families` maps each gated family to
    its (layers, heads); `run(gates, fill, rows)` runs `rows` copies of the input with gates
    {family: (L, H) or (L, rows, H)} and returns the model's outputs; `objective` and `effect` turn those
    into one number per row. `clean` holds the unablated outputs."""

    families: dict[str, tuple[int, int]]
    objective_name: str
    effect_name: str

    def __init__(self, model: torch.nn.Module):
        self.model = model
        param = next(model.parameters())
        self.dtype, self.device = param.dtype, param.device

    def run(self, gates: dict[str, Tensor] | None, fill: str, rows: int):
        raise NotImplementedError

    def objective(self, out) -> Tensor:
        raise NotImplementedError

    def effect(self, out) -> Tensor:
        raise NotImplementedError

    @property
    def heads(self) -> list[Head]:
        return every_head(self.families)


class EncoderProbe(Probe):
    """A BERT-family encoder's mean-pooled sentence embedding (MiniLM's pooling) of one text."""

    effect_name = "1 − cosine similarity with the unablated embedding"

    def __init__(self, model: BertModel, ids: list[int], dimension: int | None = None):
        super().__init__(model)
        c = model.config
        self.families = {"encoder": (c.num_hidden_layers, c.num_attention_heads)}
        self.ids = torch.tensor([ids], device=self.device)
        self.dimension = dimension
        self.objective_name = (
            "embedding length along its own direction"
            if dimension is None
            else f"embedding dimension {dimension}"
        )
        with torch.no_grad():
            self.clean = self.run(None, ZERO, 1)  # (1, d)

    def run(self, gates, fill, rows):
        out = self.model(self.ids.expand(rows, -1), head_gates=None if gates is None else gates["encoder"],
                         gate_fill=fill)  # fmt: skip
        return out.last_hidden_state.mean(1)  # (B, d)

    def objective(self, out):
        return embedding_target(out, self.clean[0], self.dimension)

    def effect(self, out):
        return 1 - F.cosine_similarity(out, self.clean, dim=-1)


def next_token_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """logits (B, T, V) predicting targets (T,) -> (B,) mean cross-entropy per row."""
    b, t, v = logits.shape
    losses = F.cross_entropy(logits.reshape(b * t, v), targets.repeat(b), reduction="none")
    return losses.view(b, t).mean(1)


class CausalProbe(Probe):
    """A causal decoder's next-token loss on one text: position t predicts token t + 1."""

    objective_name = "next-token loss (nats)"
    effect_name = "change of the next-token loss (nats)"

    def __init__(self, model: GPT, ids: list[int]):
        super().__init__(model)
        if len(ids) < 2:
            raise ValueError("the next-token loss needs at least two tokens")
        block = model.blocks[0].attention
        self.families = {"decoder_self": (len(model.blocks), block.n_heads)}
        self.ids = torch.tensor([ids], device=self.device)
        with torch.no_grad():
            self.clean = self.run(None, ZERO, 1)  # (1, T, V)
            self.clean_loss = self.objective(self.clean)

    def run(self, gates, fill, rows):
        gates = None if gates is None else gates["decoder_self"]
        return self.model(self.ids.expand(rows, -1), head_gates=gates, gate_fill=fill).logits

    def objective(self, out):
        return next_token_loss(out[:, :-1], self.ids[0, 1:])

    def effect(self, out):
        return self.objective(out) - self.clean_loss


class Seq2SeqProbe(Probe):
    """An encoder–decoder's loss on its own greedy output (teacher-forced), for one source."""

    objective_name = "loss on the unablated output (nats)"
    effect_name = "change of the loss on the unablated output (nats)"

    def __init__(self, model: Seq2Seq, src: list[int], tokens: list[int], bos_id: int):
        super().__init__(model)
        enc, dec = model.encoder[0].self_attn, model.decoder[0].self_attn
        self.families = {
            "encoder": (len(model.encoder), enc.n_heads),
            "decoder_self": (len(model.decoder), dec.n_heads),
            "cross": (len(model.decoder), dec.n_heads),
        }
        self.src = torch.tensor([src], device=self.device)
        self.tgt_in = torch.tensor([[bos_id, *tokens[:-1]]], device=self.device)
        self.targets = torch.tensor(tokens, device=self.device)
        self.bos_id = bos_id
        with torch.no_grad():
            self.clean = self.run(None, ZERO, 1)  # (1, Tt, V)
            self.clean_loss = self.objective(self.clean)

    def run(self, gates, fill, rows):
        return self.model(self.src.expand(rows, -1), self.tgt_in.expand(rows, -1), head_gates=gates,
                          gate_fill=fill).logits  # fmt: skip

    def objective(self, out):
        return next_token_loss(out, self.targets)

    def effect(self, out):
        return self.objective(out) - self.clean_loss

    @torch.no_grad()
    def redecode(self, gates: dict[str, Tensor] | None, fill: str, eos_id: int) -> list[int]:
        """Greedy decoding again with the heads gated: (L, H) gates -> the ids written (EOS included)."""
        ids = greedy_generate(self.model, self.src, len(self.targets) + 4, self.bos_id, eos_id, gates, fill)
        return ids[0].tolist()


class DetrProbe(Probe):
    """One DETR detection: its query's probability of its class, on the backbone's features of one image."""

    objective_name = "−log p(class) of the detection"
    effect_name = "drop of the detection's score"

    def __init__(self, model: DETR, features: DetrFeatures, query: int, class_id: int | None = None):
        super().__init__(model)
        t = model.transformer
        n_heads = t.n_heads
        self.families = {
            "encoder": (len(t.encoder.layers), n_heads),
            "decoder_self": (len(t.decoder.layers), n_heads),
            "cross": (len(t.decoder.layers), n_heads),
        }
        self.features, self.query = features, query
        with torch.no_grad():
            self.clean = self.run(None, ZERO, 1)
            probs = self.clean[0][0, query].softmax(-1)
            self.class_id = int(probs[:-1].argmax()) if class_id is None else class_id
            self.clean_score = probs[self.class_id]

    def run(self, gates, fill, rows):
        f = self.features
        expand = (rows, -1, -1, -1)
        out = self.model.predict(f.src.expand(expand), f.mask.expand(rows, -1, -1), f.pos.expand(expand),
                                 head_gates=gates, gate_fill=fill)  # fmt: skip
        return out.pred_logits, out.pred_boxes  # (B, N, K + 1), (B, N, 4)

    def objective(self, out):
        return -out[0][:, self.query].log_softmax(-1)[:, self.class_id]

    def effect(self, out):
        return self.clean_score - out[0][:, self.query].softmax(-1)[:, self.class_id]


def gradients(probe: Probe) -> dict[str, np.ndarray]:
    """{family: (L, H)} ∂L/∂g_h at g = 1 with zero fill (Michel et al.'s importance is its absolute value),
    from one forward and one backward with the gates as leaves; the model's parameters get no `.grad`."""
    gates = head_gates(probe.families, dtype=probe.dtype, device=probe.device)
    leaves = {name: g.requires_grad_(True) for name, g in gates.items()}
    with torch.enable_grad():
        loss = probe.objective(probe.run(leaves, ZERO, 1))[0]
        grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True, materialize_grads=True)
    return {name: g.detach().double().cpu().numpy() for name, g in zip(leaves, grads, strict=True)}


@dataclass
class Importance:
    """Every head's importance for one probe, by family. Arrays are (L, H)."""

    measured: dict[str, np.ndarray]  # the probe's effect of ablating the head alone
    delta: dict[str, np.ndarray]  # the change of the objective L when the head alone is ablated
    gradient: dict[str, np.ndarray]  # ∂L/∂g at g = 1 (zero fill); Michel et al.'s importance is |·|
    fill: str  # how the measured ablations filled the head: ZERO or MEAN
    objective_name: str
    effect_name: str

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for d in (self.measured, self.delta, self.gradient) for a in d.values())


@torch.no_grad()
def measured(probe: Probe, fill: str = ZERO, chunk: int = CHUNK) -> tuple[dict, dict]:
    """({family: (L, H)} effect, {family: (L, H)} change of L) of ablating each head alone, `chunk` heads
    per batch, each row of a batch with its own gates."""
    heads = probe.heads
    clean = float(probe.objective(probe.clean)[0])
    effects, deltas = [], []
    for start in range(0, len(heads), chunk):
        part = heads[start : start + chunk]
        gates = single_head_gates(probe.families, part, probe.dtype, probe.device)
        out = probe.run(gates, fill, len(part))
        effects.append(probe.effect(out).double().cpu())
        deltas.append(probe.objective(out).double().cpu() - clean)
    return _by_family(probe, torch.cat(effects)), _by_family(probe, torch.cat(deltas))


def _by_family(probe: Probe, values: Tensor) -> dict[str, np.ndarray]:
    """Values in `probe.heads` order -> {family: (L, H)}."""
    out, start = {}, 0
    for name, (n_layers, n_heads) in probe.families.items():
        out[name] = values[start : start + n_layers * n_heads].numpy().reshape(n_layers, n_heads)
        start += n_layers * n_heads
    return out


def importance(probe: Probe, fill: str = ZERO, chunk: int = CHUNK) -> Importance:
    """Every head ablated alone (batched) beside the gradient estimate."""
    effect, delta = measured(probe, fill, chunk)
    return Importance(effect, delta, gradients(probe), fill, probe.objective_name, probe.effect_name)


@dataclass
class Ablation:
    """One run with a set of heads gated off."""

    heads: list[Head]
    fill: str
    output: object  # the probe's outputs for this run (batch of 1)
    objective: float  # L with the heads ablated
    clean_objective: float  # L of the model
    effect: float  # the probe's effect


@torch.no_grad()
def ablate(probe: Probe, heads: list[Head], fill: str = ZERO) -> Ablation:
    """Gate off `heads` together (zeroed or replaced by their mean) and rerun the probe's input."""
    gates = head_gates(probe.families, heads, probe.dtype, probe.device)
    out = probe.run(gates, fill, 1)
    return Ablation(
        heads=list(heads),
        fill=fill,
        output=out,
        objective=float(probe.objective(out)[0]),
        clean_objective=float(probe.objective(probe.clean)[0]),
        effect=float(probe.effect(out)[0]),
    )


def top_predictions(logits: Tensor, k: int = 5) -> list[tuple[int, float]]:
    """logits (V,) -> the k most likely ids with their probabilities."""
    probs = logits.float().softmax(-1)
    values, ids = probs.topk(min(k, probs.numel()))
    return list(zip(ids.tolist(), values.tolist(), strict=True))
