"""A Llama-family decoder (Llama, Mistral, Qwen2) on the project's attention core.

Each block is x + attn(rms_1(x)), then x + mlp(rms_2(x)), with RMSNorm, a SwiGLU MLP and rotary
positions (`models.rope`) applied to q and k per head. Grouped-query attention: n_kv_head K/V heads
serve n_head query heads, query head h reading K/V head h // (n_head // n_kv_head) (`kv_head`); k and v
are repeated per query head before `models.attention.attend`, so the core's capture (True or LAZY), its
mask convention and `models.readout` / `models.maps` work unchanged. A sliding window (Mistral, some
Qwen2 layers) is a boolean mask through the core: query i attends to keys j with i - window < j <= i,
as transformers masks it. Module names follow the Hugging Face checkpoints (`models.llama_io` loads
them by stripping the leading "model.").
"""

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models import rope
from models.attention import ZERO, AttentionRecord, attend, causal_mask, gate_heads, layer_gate


@dataclass
class LlamaConfig:
    vocab_size: int = 256  # number of token ids
    n_layer: int = 4  # number of transformer blocks
    n_head: int = 8  # query heads per block
    n_kv_head: int = 2  # key/value heads per block; n_head must be a multiple (GQA; 1 = multi-query)
    d_model: int = 256  # channels of the residual stream
    d_head: int = 32  # channels of one head (Llama: d_model // n_head; a config may set another)
    d_mlp: int = 704  # hidden width of the SwiGLU MLP
    max_positions: int = 4096  # longest input the model was trained for (RoPE itself has no table)
    rms_norm_eps: float = 1e-6  # RMSNorm epsilon
    rope_theta: float = 10000.0  # RoPE base θ: pair c turns by θ^(-2c/r) per position
    rope_scaling: dict | None = None  # None, {"rope_type": "linear", "factor"} or llama3's dict (models.rope)
    partial_rotary_factor: float = 1.0  # share of each head's channels that are rotated
    qkv_bias: bool = False  # biases on the q, k, v projections (Qwen2; Llama's attention_bias)
    out_bias: bool = False  # bias on the output projection (Llama's attention_bias; not Qwen2)
    mlp_bias: bool = False  # biases in the MLP (Llama's mlp_bias)
    tie_weights: bool = False  # the output head reuses the token embedding matrix
    sliding_window: int | None = None  # keys older than this many positions are masked; None = causal only
    window_layers: list[int] | None = None  # layers with the sliding window; None = all (Mistral)


PRESETS: dict[str, LlamaConfig] = {
    # a few steps of training for the smoke test and the unit tests
    "llama-nano": LlamaConfig(
        vocab_size=256, n_layer=2, n_head=4, n_kv_head=2, d_model=32, d_head=8, d_mlp=64, max_positions=128
    ),
    # the embedded long-context default trained by scripts/train_llama.py on the standard library's source
    "llama-stdlib": LlamaConfig(
        vocab_size=2048, n_layer=3, n_head=4, n_kv_head=2, d_model=128, d_head=32, d_mlp=384,
        max_positions=4096, rope_theta=100000.0, tie_weights=True,
    ),
    # HuggingFaceTB/SmolLM2-135M's shape with random weights, for the long-context benchmarks
    "smollm2-135m-shape": LlamaConfig(
        vocab_size=49152, n_layer=30, n_head=9, n_kv_head=3, d_model=576, d_head=64, d_mlp=1536,
        max_positions=8192, rms_norm_eps=1e-5, rope_theta=100000.0, tie_weights=True,
    ),
}  # fmt: skip


def kv_head(head: int, n_head: int, n_kv_head: int) -> int:
    """The K/V head that query head `head` reads (grouped-query attention, as transformers' repeat_kv)."""
    return head // (n_head // n_kv_head)


def kv_groups(n_head: int, n_kv_head: int) -> list[list[int]]:
    """For each K/V head, the query heads that share it: [[0, 1, 2, 3], [4, 5, 6, 7]] for 8 over 2."""
    group = n_head // n_kv_head
    return [list(range(g * group, (g + 1) * group)) for g in range(n_kv_head)]


def sliding_window_mask(t: int, window: int, device=None) -> Tensor:
    """(T, T) bool: query i may attend to key j when i - window < j <= i (transformers' sliding window)."""
    if window < 1:
        raise ValueError(f"sliding window must be >= 1, got {window}")
    idx = torch.arange(t, device=device)
    offset = idx[:, None] - idx[None, :]  # (T, T) i - j
    return (offset >= 0) & (offset < window)


@dataclass
class Unrotated:
    """One layer's queries and keys before RoPE turned them (the record holds them after)."""

    q: Tensor  # (B, n_head, T, dh)
    k: Tensor  # (B, n_kv_head, T, dh): one per K/V head; query head h reads kv_head(h, ...)


@dataclass
class LlamaOutput:
    """B batch, T tokens, d = d_model, V = vocab_size, L = n_layer, H = n_head."""

    logits: Tensor | None  # (B, T, V) next-token logits; None when the forward was asked for none
    last_hidden_state: Tensor  # (B, T, d) after the final RMSNorm
    hidden_states: list[Tensor]  # L + 1 tensors (B, T, d): embeddings, then each block's output
    attentions: list[AttentionRecord] | None  # one per layer when captured; q and k after RoPE, k and v
    #   repeated per query head (B, H, T, dh)
    unrotated: list[Unrotated] | None = None  # one per layer when captured: q, k before RoPE


class RMSNorm(nn.Module):
    def __init__(self, d: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        x32 = x.float()  # the statistic in float32 whatever the weights' dtype, as transformers does
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * normed.to(x.dtype)


class SwiGLU(nn.Module):
    def __init__(self, d_model: int, d_hidden: int, bias: bool):
        super().__init__()
        self.gate_proj = nn.Linear(d_model, d_hidden, bias=bias)
        self.up_proj = nn.Linear(d_model, d_hidden, bias=bias)
        self.down_proj = nn.Linear(d_hidden, d_model, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class GroupedQueryAttention(nn.Module):
    """Self-attention with n_kv_head K/V heads shared by n_head query heads, rotary q and k."""

    def __init__(
        self, d_model: int, n_head: int, n_kv_head: int, d_head: int, qkv_bias: bool, out_bias: bool
    ):
        super().__init__()
        if n_head % n_kv_head:
            raise ValueError(f"n_head={n_head} is not a multiple of n_kv_head={n_kv_head}")
        self.n_head, self.n_kv_head, self.d_head = n_head, n_kv_head, d_head
        self.q_proj = nn.Linear(d_model, n_head * d_head, bias=qkv_bias)
        self.k_proj = nn.Linear(d_model, n_kv_head * d_head, bias=qkv_bias)
        self.v_proj = nn.Linear(d_model, n_kv_head * d_head, bias=qkv_bias)
        self.o_proj = nn.Linear(n_head * d_head, d_model, bias=out_bias)

    def split(self, x: Tensor, heads: int) -> Tensor:
        b, t, _ = x.shape
        return x.view(b, t, heads, self.d_head).transpose(1, 2)  # (B, heads, T, dh)

    def repeat(self, x: Tensor) -> Tensor:
        """(B, n_kv_head, T, dh) -> (B, n_head, T, dh): K/V head g serves query heads g*n .. g*n + n - 1."""
        group = self.n_head // self.n_kv_head
        if group == 1:
            return x
        b, g, t, d = x.shape
        return x[:, :, None].expand(b, g, group, t, d).reshape(b, g * group, t, d)

    def forward(
        self,
        x: Tensor,
        cos: Tensor,
        sin: Tensor,
        mask: Tensor,
        capture: bool | str = False,
        unrotated=True,
        head_gate: Tensor | None = None,
        gate_fill: str = ZERO,
    ) -> tuple[Tensor, AttentionRecord | None, Unrotated | None]:
        """x (B, T, d); cos, sin (T, r); mask (T, T) bool; head_gate (H,) or (B, H) (`gate_heads`; the
        record keeps the heads before it). Returns ((B, T, d), record, q and k before RoPE when captured
        with `unrotated`)."""
        q = self.split(self.q_proj(x), self.n_head)  # (B, H, T, dh)
        k = self.split(self.k_proj(x), self.n_kv_head)  # (B, Hkv, T, dh)
        v = self.split(self.v_proj(x), self.n_kv_head)
        q_rot, k_rot = rope.rotate(q, cos, sin), rope.rotate(k, cos, sin)
        heads, record = attend(q_rot, self.repeat(k_rot), self.repeat(v), mask=mask, capture=capture)
        if head_gate is not None:
            heads = gate_heads(heads, head_gate, gate_fill)
        b, _, t, _ = heads.shape
        merged = heads.transpose(1, 2).reshape(b, t, self.n_head * self.d_head)  # (B, T, H * dh)
        return self.o_proj(merged), record, Unrotated(q, k) if capture and unrotated else None


class Block(nn.Module):
    def __init__(self, d_model: int, n_head: int, n_kv_head: int, d_head: int, d_mlp: int, eps: float,
                 qkv_bias: bool, out_bias: bool, mlp_bias: bool):  # fmt: skip
        super().__init__()
        self.input_layernorm = RMSNorm(d_model, eps)
        self.self_attn = GroupedQueryAttention(d_model, n_head, n_kv_head, d_head, qkv_bias, out_bias)
        self.post_attention_layernorm = RMSNorm(d_model, eps)
        self.mlp = SwiGLU(d_model, d_mlp, mlp_bias)

    def forward(
        self, x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor, capture=False, unrotated=True, **gate
    ):
        attn_out, record, before = self.self_attn(
            self.input_layernorm(x), cos, sin, mask, capture, unrotated, **gate
        )
        x = x + attn_out
        return x + self.mlp(self.post_attention_layernorm(x)), record, before


class Llama(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        n_layer: int,
        n_head: int,
        n_kv_head: int,
        d_model: int,
        d_head: int,
        d_mlp: int,
        max_positions: int = 4096,
        rms_norm_eps: float = 1e-6,
        rope_theta: float = 10000.0,
        rope_scaling: dict | None = None,
        partial_rotary_factor: float = 1.0,
        qkv_bias: bool = False,
        out_bias: bool = False,
        mlp_bias: bool = False,
        tie_weights: bool = False,
        sliding_window: int | None = None,
        window_layers: list[int] | None = None,
    ):
        super().__init__()
        self.n_head, self.n_kv_head, self.max_positions = n_head, n_kv_head, max_positions
        self.sliding_window = sliding_window
        self.window_layers = set(range(n_layer) if window_layers is None else window_layers)
        # float32 on the CPU, outside the state dict (as transformers' non-persistent buffer); moved per call
        self.inv_freq = rope.inverse_frequencies(d_head, rope_theta, partial_rotary_factor, rope_scaling)
        self.embed_tokens = nn.Embedding(vocab_size, d_model)
        self.layers = nn.ModuleList(
            Block(d_model, n_head, n_kv_head, d_head, d_mlp, rms_norm_eps, qkv_bias, out_bias, mlp_bias)
            for _ in range(n_layer)
        )
        self.norm = RMSNorm(d_model, rms_norm_eps)
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)
        if tie_weights:
            self.lm_head.weight = self.embed_tokens.weight
        if not self.embed_tokens.weight.is_meta:
            self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def masks(self, t: int, device) -> list[Tensor]:
        """One (T, T) bool mask per layer; layers with the same rule share one tensor (so that
        `models.readout` keeps one mask, not one per layer)."""
        causal = causal_mask(t, device=device)
        if self.sliding_window is None or self.sliding_window >= t:
            return [causal] * len(self.layers)
        window = sliding_window_mask(t, self.sliding_window, device=device)
        return [window if i in self.window_layers else causal for i in range(len(self.layers))]

    def kv_head(self, head: int) -> int:
        """The K/V head that query head `head` shares with the other heads of its group."""
        return kv_head(head, self.n_head, self.n_kv_head)

    def forward(
        self,
        input_ids: Tensor,
        capture: bool | str = False,
        unrotated: bool = True,
        head_gates: Tensor | None = None,
        gate_fill: str = ZERO,
        logits: bool = True,
    ) -> LlamaOutput:
        """input_ids (B, T) long. capture: False, True or LAZY (models.attention); with it, `unrotated`
        also keeps each layer's q and k before RoPE. head_gates (L, H) or (L, B, H), one gate per layer and
        query head (`models.attention.gate_heads`), None for the plain model. logits=False skips the output
        head (logits None): a view that shows attention only does not pay for the (T, V) logits."""
        _, t = input_ids.shape
        x = self.embed_tokens(input_ids)  # (B, T, d)
        positions = torch.arange(t, device=input_ids.device)
        cos, sin = rope.cos_sin(self.inv_freq, positions, x.dtype)  # (T, r) each
        hidden_states, records, before = [x], [], []
        for i, (block, mask) in enumerate(zip(self.layers, self.masks(t, input_ids.device))):
            gate = {"head_gate": layer_gate(head_gates, i), "gate_fill": gate_fill}
            x, record, kept = block(x, cos, sin, mask, capture, unrotated, **gate)
            hidden_states.append(x)
            records.append(record)
            before.append(kept)
        x = self.norm(x)
        return LlamaOutput(
            logits=self.lm_head(x) if logits else None,
            last_hidden_state=x,
            hidden_states=hidden_states,
            attentions=records if capture else None,
            unrotated=before if capture and unrotated else None,
        )


def build_llama(config: LlamaConfig, device: str | torch.device | None = None) -> Llama:
    """The model of `config`; on device "meta" it has no weights yet (for load_state_dict(assign=True))."""
    with torch.device(device or "cpu"):
        return Llama(**asdict(config))
