"""A GPT-style decoder-only transformer on the project's attention core (nanoGPT-like, pre-norm).

Each block is x + attn(ln_1(x)), then x + mlp(ln_2(x)), as in GPT-2; the attention is
`models.attention.MultiHeadAttention` with a causal mask, so a query only attends to the tokens
before it and itself (S12). The same module runs our own character-level model
(`weights/gpt-stdlib`) and Hugging Face GPT-2 checkpoints (`models.gpt_io.load_gpt`).
"""

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.attention import ZERO, AttentionRecord, MultiHeadAttention, causal_mask, layer_gate


@dataclass
class GPTConfig:
    vocab_size: int = 97  # number of token ids (our character alphabet, or GPT-2's 50257 BPE tokens)
    block_size: int = 256  # longest sequence the learned position table covers
    n_layer: int = 3  # number of transformer blocks
    n_head: int = 4  # attention heads per block; d_head = n_embd // n_head
    n_embd: int = 128  # d, the number of channels of the residual stream
    d_mlp: int = 512  # hidden width of each MLP (GPT-2: 4 * n_embd); 0 gives an attention-only model
    bias: bool = True  # biases in Linear layers and LayerNorms (GPT-2 has them)
    layer_norm_eps: float = 1e-5  # LayerNorm epsilon (GPT-2: 1e-5)
    tie_weights: bool = True  # the output head reuses the token embedding matrix (GPT-2 does)

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, GPTConfig] = {
    # the embedded default trained by scripts/train_gpt.py on the standard library's docstrings: attention
    # only (no MLPs), the smallest kind of model that forms induction heads, and one that trains fast on a CPU
    "gpt-stdlib": GPTConfig(
        vocab_size=97, block_size=128, n_layer=2, n_head=4, n_embd=128, d_mlp=0, tie_weights=False
    ),
    # a few dozen steps of training for the smoke test
    "gpt-nano": GPTConfig(vocab_size=97, block_size=64, n_layer=2, n_head=2, n_embd=32, d_mlp=128),
    # long context with random weights for the capture-overhead benchmark
    "gpt-bench": GPTConfig(vocab_size=97, block_size=1024, n_layer=4, n_head=4, n_embd=128),
}


@dataclass
class GPTOutput:
    """B batch, T tokens, d = n_embd, V = vocab_size, L = n_layer."""

    logits: Tensor  # (B, T, V) next-token logits
    last_hidden_state: Tensor  # (B, T, d) after the final LayerNorm
    hidden_states: list[Tensor]  # L + 1 tensors (B, T, d): embeddings, then each block's output
    attentions: list[AttentionRecord] | None  # one record per layer when capture=True


class MLP(nn.Module):
    def __init__(self, d_model: int, d_hidden: int, bias: bool):
        super().__init__()
        self.fc = nn.Linear(d_model, d_hidden, bias=bias)
        self.proj = nn.Linear(d_hidden, d_model, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(F.gelu(self.fc(x), approximate="tanh"))  # GPT-2's "gelu_new"


class Block(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_mlp: int, bias: bool, eps: float):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d_model, eps=eps, bias=bias)
        self.attention = MultiHeadAttention(d_model, n_heads, bias=bias)
        self.ln_2 = nn.LayerNorm(d_model, eps=eps, bias=bias) if d_mlp else None
        self.mlp = MLP(d_model, d_mlp, bias) if d_mlp else None

    def forward(
        self, x: Tensor, mask: Tensor, capture: bool = False, head_gate: Tensor | None = None,
        gate_fill: str = ZERO,
    ) -> tuple[Tensor, AttentionRecord | None]:  # fmt: skip
        attn_out, record = self.attention(
            self.ln_1(x), mask=mask, capture=capture, head_gate=head_gate, gate_fill=gate_fill
        )
        x = x + attn_out
        if self.mlp is not None:
            x = x + self.mlp(self.ln_2(x))
        return x, record


class GPT(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        block_size: int,
        n_layer: int,
        n_head: int,
        n_embd: int,
        d_mlp: int = 512,
        bias: bool = True,
        layer_norm_eps: float = 1e-5,
        tie_weights: bool = True,
    ):
        super().__init__()
        self.block_size = block_size
        self.token_embedding = nn.Embedding(vocab_size, n_embd)
        self.position_embedding = nn.Embedding(block_size, n_embd)
        self.blocks = nn.ModuleList(
            Block(n_embd, n_head, d_mlp, bias, layer_norm_eps) for _ in range(n_layer)
        )
        self.ln_f = nn.LayerNorm(n_embd, eps=layer_norm_eps, bias=bias)
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        if tie_weights:
            self.lm_head.weight = self.token_embedding.weight
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2's scaled init of the residual projections
            if name.endswith(("out_proj.weight", "mlp.proj.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    @property
    def layers(self) -> nn.ModuleList:
        return self.blocks

    def forward(
        self,
        input_ids: Tensor,
        capture: bool = False,
        head_gates: Tensor | None = None,
        gate_fill: str = ZERO,
    ) -> GPTOutput:
        """input_ids (B, T) long with T <= block_size; head_gates (L, H) or (L, B, H), one gate per layer
        and head (`models.attention.gate_heads`), None for the plain model."""
        _, t = input_ids.shape
        if t > self.block_size:
            raise ValueError(
                f"sequence of {t} tokens is longer than the context of {self.block_size}; "
                f"keep the last {self.block_size} tokens"
            )
        pos = torch.arange(t, device=input_ids.device)
        x = self.token_embedding(input_ids) + self.position_embedding(pos)  # (B, T, d)
        mask = causal_mask(t, device=input_ids.device)  # (T, T), True on and below the diagonal
        hidden_states, records = [x], []
        for i, block in enumerate(self.blocks):
            x, record = block(
                x, mask, capture=capture, head_gate=layer_gate(head_gates, i), gate_fill=gate_fill
            )
            hidden_states.append(x)
            records.append(record)
        x = self.ln_f(x)
        return GPTOutput(
            logits=self.lm_head(x),
            last_hidden_state=x,
            hidden_states=hidden_states,
            attentions=records if capture else None,
        )


def build_gpt(config: GPTConfig) -> GPT:
    return GPT(**asdict(config))


@dataclass
class Generation:
    """The ids, and what each new token's query attended to when it was predicted."""

    ids: list[int]  # the prompt followed by the generated ids
    n_prompt: int  # how many of `ids` were the prompt
    rows: list[Tensor]  # one per step: (L, H, t) attention of the last position over the t tokens so far


@torch.no_grad()
def generate(model: GPT, ids: list[int], n_new: int, temperature: float = 0.0, seed: int = 0) -> Generation:
    """Append n_new tokens one at a time (greedy when temperature is 0), keeping each step's new row.

    The whole sequence must stay within the context: prompt length + n_new <= block_size.
    """
    if not ids:
        raise ValueError("generation needs a prompt of at least one token")
    if len(ids) + n_new > model.block_size:
        raise ValueError(
            f"prompt of {len(ids)} + {n_new} new tokens exceeds the context of {model.block_size}; "
            f"ask for at most {model.block_size - len(ids)}"
        )
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    out, rows = list(ids), []
    for _ in range(n_new):
        result = model(torch.tensor([out], device=device), capture=True)
        rows.append(torch.stack([r.probs[0, :, -1].cpu() for r in result.attentions]))  # (L, H, t)
        logits = result.logits[0, -1]  # (V,)
        if temperature > 0:
            next_id = torch.multinomial((logits / temperature).softmax(-1), 1, generator=generator)
        else:
            next_id = logits.argmax()
        out.append(int(next_id))
    return Generation(out, len(ids), rows)
