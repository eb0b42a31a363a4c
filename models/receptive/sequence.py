"""Sequence models over the same (B, T, d) input, and what each one can see.

Nine models share one input: RNN, LSTM and GRU (one direction or both), a 1-D CNN, full
self-attention and restricted (local-window) self-attention, the last two on the project's
attention core. For each we compute the theoretical receptive field (the input positions an output
may depend on), the effective receptive field |dy_t/dx_s| averaged over random initialisations and
inputs (Luo et al., 2016), and the number of sequential steps (timing and Table 1 of "Attention Is
All You Need" are in parallelism.py).

Every non-recurrent layer is the operator followed by tanh, the nonlinearity nn.RNN uses, and no
layer has a residual connection, so that a gradient can only reach x_s through the operator itself.
The attention layers carry no positional encoding.
"""

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.attention import MultiHeadAttention, attend, causal_mask
from models.receptive.threads import one_cpu_thread

RECURRENT = {"RNN": nn.RNN, "LSTM": nn.LSTM, "GRU": nn.GRU}
MODEL_NAMES = ("RNN", "LSTM", "GRU", "BiRNN", "BiLSTM", "BiGRU", "CNN", "Self-attention", "Local attention")
GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}  # weight matrices per recurrent step, for the multiply-add count


@dataclass(frozen=True)
class Limits:
    """What the lab accepts; beyond these a CPU computation stops being interactive."""

    max_length: int = 512  # sequence length T
    max_width: int = 256  # model width d
    max_layers: int = 32  # depth of any stack
    max_kernel: int = 15  # CNN kernel size
    max_dilation: int = 16
    max_inits: int = 32  # random initialisations averaged in the effective receptive field
    max_timing_length: int = 2048  # longest sequence in the timing sweep
    # work = T x d² x depth (x initialisations): one unit is about 50 ns of an LSTM's forward and
    # backward on one CPU thread, so these keep each model's share of a computation to about 10 s
    max_gradient_work: float = 2e8  # initialisations x T x d² x deepest stack, for the effective field
    max_timing_work: float = 2e9  # longest length x d² x deepest stack, for the timing sweep
    # memory one computation may hold (memory_bytes): eight sessions at once stay within 8 GiB
    max_run_bytes: float = 2**30


LIMITS = Limits()


@dataclass(frozen=True)
class SeqConfig:
    length: int = 64  # T, positions in the input sequence
    d_model: int = 32  # d, channels per position (even, for the bidirectional halves)
    rnn_layers: int = 1  # stacked recurrent layers
    cnn_layers: int = 4  # depth of the 1-D CNN
    kernel_size: int = 3  # CNN kernel size k
    dilation: int = 1  # CNN dilation, the same in every layer
    attn_layers: int = 1  # stacked attention layers (full and local)
    n_heads: int = 4  # attention heads; must divide d_model
    radius: int = 4  # r: local attention sees |t - s| <= r
    causal: bool = False  # CNN and attention see only s <= t (recurrent models follow their direction)


def _work(cfg: SeqConfig, length: int) -> float:
    return float(length) * cfg.d_model**2 * max(cfg.rnn_layers, cfg.cnn_layers, cfg.attn_layers)


FIELD_BATCH = 4  # random inputs per initialisation in the effective field


def memory_bytes(cfg: SeqConfig, length: int, batch: int = FIELD_BATCH, backward: bool = True) -> int:
    """Float32 bytes the hungriest of the nine models holds at `length` positions, batch `batch`: local
    attention's gathered key and value windows (B·T·(2r+1)·d, twice per layer) and its scores, and a few
    B·T·d activations per layer of every stack. With `backward` every layer's are kept for the gradient;
    without, one layer's. Full attention runs on the fused kernel, which never holds the T × T weights.
    Measured peaks at T = 512, d = 256, B = 4 with the gradient: local attention r = 512, 2 layers 10.2 GiB
    (estimate 8.2), r = 64, 4 layers 2.7 GiB (2.7); a 32-layer CNN 368 MiB (420); an 8-layer LSTM 165 MiB
    (420); full attention with 256 heads and 4 layers 109 MiB."""
    kept = (lambda n: n) if backward else (lambda n: 1)
    window = 2 * cfg.radius + 1
    local = (2 * batch * length * window * cfg.d_model + 2 * batch * cfg.n_heads * length * window) * kept(
        cfg.attn_layers
    )
    depth = max(4 * cfg.rnn_layers, cfg.cnn_layers, 3 * cfg.attn_layers)  # LSTM: four gates a step
    activations = 6 * batch * length * cfg.d_model * kept(depth)
    return 4 * (local + activations)


def largest_fitting(cfg: SeqConfig, field: str, low: int, high: int, limits: Limits = LIMITS) -> int:
    """The largest value of `field` in [low, high] at which the effective field of cfg (that field
    changed) fits max_run_bytes: the widget's maximum, derived from the memory estimate. Every term of
    memory_bytes grows with each field, so a binary search finds it; low when even low does not fit."""

    def fits(value: int) -> bool:
        changed = replace(cfg, **{field: value})
        return memory_bytes(changed, changed.length) <= limits.max_run_bytes

    if not fits(low):
        return low
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if fits(mid) else (low, mid - 1)
    return low


def longest_timing(cfg: SeqConfig, low: int, high: int, limits: Limits = LIMITS) -> int:
    """The longest length in [low, high] whose batch-1 forward (no gradient) fits max_run_bytes: the
    timing sweep's maximum, derived from the memory estimate."""
    while low < high:
        mid = (low + high + 1) // 2
        fits = memory_bytes(cfg, mid, 1, backward=False) <= limits.max_run_bytes
        low, high = (mid, high) if fits else (low, mid - 1)
    return low


def check_work(
    cfg: SeqConfig, n_inits: int | None = None, longest: int | None = None, limits: Limits = LIMITS
):
    """Raise ValueError when the effective field (n_inits) or the timing sweep (longest) runs too long
    or needs more memory than one computation may take."""
    if n_inits is not None:
        if not 1 <= n_inits <= limits.max_inits:
            raise ValueError(
                f"random initialisations = {n_inits} is outside the limit [1, {limits.max_inits}]"
            )
        work = n_inits * _work(cfg, cfg.length)
        if work > limits.max_gradient_work:
            raise ValueError(
                f"initialisations x T x d² x depth = {work:.2g} is over the limit "
                f"{limits.max_gradient_work:.0e} for the effective field; lower the initialisations, the "
                "width, the depth or the length"
            )
    if longest is not None:
        if not 16 <= longest <= limits.max_timing_length:
            raise ValueError(
                f"longest length = {longest} is outside the limit [16, {limits.max_timing_length}]"
            )
        work = _work(cfg, longest)
        if work > limits.max_timing_work:
            raise ValueError(
                f"longest length x d² x depth = {work:.2g} is over the limit {limits.max_timing_work:.0e} "
                "for the timing sweep; lower the longest length, the width or the depth"
            )
    _check_memory(cfg, n_inits, longest, limits)


def _check_memory(cfg: SeqConfig, n_inits: int | None, longest: int | None, limits: Limits) -> None:
    asked = []
    if n_inits is not None:
        asked.append(("the effective field", memory_bytes(cfg, cfg.length)))
    if longest is not None:
        asked.append((f"the timing sweep up to {longest}", memory_bytes(cfg, longest, 1, backward=False)))
    for what, need in asked:
        if need > limits.max_run_bytes:
            raise ValueError(
                f"{what} needs about {need / 2**20:,.0f} MiB at these settings; one computation may take "
                f"{limits.max_run_bytes / 2**20:,.0f} MiB. Lower the window radius ({cfg.radius}), the "
                f"attention layers ({cfg.attn_layers}), the width or the length"
            )


def check_config(cfg: SeqConfig, limits: Limits = LIMITS) -> None:
    """Raise ValueError naming the limit that cfg breaks, and how to fix it."""
    bounds = [
        ("sequence length", cfg.length, 2, limits.max_length),
        ("width d", cfg.d_model, 2, limits.max_width),
        ("recurrent layers", cfg.rnn_layers, 1, limits.max_layers),
        ("CNN depth", cfg.cnn_layers, 1, limits.max_layers),
        ("attention layers", cfg.attn_layers, 1, limits.max_layers),
        ("kernel size", cfg.kernel_size, 1, limits.max_kernel),
        ("dilation", cfg.dilation, 1, limits.max_dilation),
        ("attention heads", cfg.n_heads, 1, cfg.d_model),
        ("window radius", cfg.radius, 0, limits.max_length),
    ]
    for label, value, low, high in bounds:
        if not low <= value <= high:
            raise ValueError(
                f"{label} = {value} is outside the limit [{low}, {high}]; choose a value inside it"
            )
    if cfg.d_model % 2:
        raise ValueError(
            f"width d = {cfg.d_model} must be even: a bidirectional model gives d/2 per direction"
        )
    if cfg.d_model % cfg.n_heads:
        raise ValueError(
            f"width d = {cfg.d_model} is not divisible by {cfg.n_heads} heads; use a divisor of d"
        )


class RecurrentStack(nn.Module):
    """nn.RNN / nn.LSTM / nn.GRU, batch first; bidirectional models give d/2 channels to each direction."""

    def __init__(self, cell: str, d_model: int, n_layers: int, bidirectional: bool):
        super().__init__()
        hidden = d_model // 2 if bidirectional else d_model
        self.rnn = RECURRENT[cell](d_model, hidden, n_layers, batch_first=True, bidirectional=bidirectional)
        self.cell, self.n_layers, self.causal = cell, n_layers, not bidirectional

    def forward(self, x: Tensor) -> Tensor:
        return self.rnn(x)[0]  # (B, T, d)

    def field(self, t: int, length: int) -> tuple[int, int]:
        return (0, t) if self.causal else (0, length - 1)

    def sequential_steps(self, length: int) -> int:
        return length * self.n_layers  # step t of a layer waits for step t - 1


class ConvStack(nn.Module):
    """1-D convolutions over positions, each followed by tanh; zero padding keeps the length T."""

    def __init__(self, d_model: int, n_layers: int, kernel_size: int, dilation: int, causal: bool):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv1d(d_model, d_model, kernel_size, dilation=dilation) for _ in range(n_layers)
        )
        span = (kernel_size - 1) * dilation  # extra positions one layer sees
        self.pad = (span, 0) if causal else (span // 2, span - span // 2)  # (left, right)
        self.n_layers, self.causal = n_layers, causal

    def forward(self, x: Tensor) -> Tensor:
        h = x.transpose(1, 2)  # (B, d, T)
        for conv in self.convs:
            h = torch.tanh(conv(F.pad(h, self.pad)))
        return h.transpose(1, 2)  # (B, T, d)

    def field(self, t: int, length: int) -> tuple[int, int]:
        left, right = self.pad
        return max(0, t - self.n_layers * left), min(length - 1, t + self.n_layers * right)

    def sequential_steps(self, length: int) -> int:
        return self.n_layers


def windowed_attention(mha: MultiHeadAttention, x: Tensor, radius: int, causal: bool = False) -> Tensor:
    """Restricted self-attention computed on windows, O(T * r * d) instead of O(T^2 * d).

    Each query attends to the 2r+1 keys around it through the core's `attend`, with the window as
    an extra batch dimension; keys past either end are zero padding and masked. Equals
    `mha(x, mask=local_mask(T, r))` (test_receptive checks it).
    """
    b, t, d = x.shape
    q = mha.split_heads(mha.q_proj(x)).unsqueeze(-2)  # (B, nh, T, 1, dh)
    k, v = (F.pad(mha.split_heads(p(x)), (0, 0, radius, radius)) for p in (mha.k_proj, mha.v_proj))
    k = k.unfold(2, 2 * radius + 1, 1).transpose(-1, -2)  # (B, nh, T, 2r+1, dh): window of query i
    v = v.unfold(2, 2 * radius + 1, 1).transpose(-1, -2)
    offsets = torch.arange(-radius, radius + 1, device=x.device)
    pos = torch.arange(t, device=x.device)[:, None] + offsets  # (T, 2r+1) key position of each window slot
    valid = (pos >= 0) & (pos < t)
    if causal:
        valid &= pos <= torch.arange(t, device=x.device)[:, None]
    heads, _ = attend(q, k, v, mask=valid[:, None, :])  # (B, nh, T, 1, dh)
    merged = heads.squeeze(-2).transpose(1, 2).reshape(b, t, d)  # (B, T, d)
    return mha.out_proj(merged)


class AttentionStack(nn.Module):
    """Self-attention layers, each followed by tanh; radius None is full attention, else restricted."""

    def __init__(self, d_model: int, n_layers: int, n_heads: int, radius: int | None, causal: bool):
        super().__init__()
        self.layers = nn.ModuleList(MultiHeadAttention(d_model, n_heads) for _ in range(n_layers))
        self.n_layers, self.radius, self.causal = n_layers, radius, causal

    def forward(self, x: Tensor) -> Tensor:
        t = x.size(1)
        mask = causal_mask(t, device=x.device) if self.causal else None
        for mha in self.layers:
            if self.radius is None:
                x = torch.tanh(mha(x, mask=mask)[0])
            else:
                x = torch.tanh(windowed_attention(mha, x, self.radius, self.causal))
        return x

    def field(self, t: int, length: int) -> tuple[int, int]:
        if self.radius is None:
            return 0, t if self.causal else length - 1
        reach = self.n_layers * self.radius
        return max(0, t - reach), t if self.causal else min(length - 1, t + reach)

    def sequential_steps(self, length: int) -> int:
        return self.n_layers


def build_model(name: str, cfg: SeqConfig) -> nn.Module:
    """One of MODEL_NAMES, freshly initialised from the current torch seed."""
    if name in RECURRENT:
        return RecurrentStack(name, cfg.d_model, cfg.rnn_layers, bidirectional=False)
    if name.startswith("Bi") and name[2:] in RECURRENT:
        return RecurrentStack(name[2:], cfg.d_model, cfg.rnn_layers, bidirectional=True)
    if name == "CNN":
        return ConvStack(cfg.d_model, cfg.cnn_layers, cfg.kernel_size, cfg.dilation, cfg.causal)
    if name == "Self-attention":
        return AttentionStack(cfg.d_model, cfg.attn_layers, cfg.n_heads, None, cfg.causal)
    if name == "Local attention":
        return AttentionStack(cfg.d_model, cfg.attn_layers, cfg.n_heads, cfg.radius, cfg.causal)
    raise ValueError(f"unknown model {name!r}; choose one of {MODEL_NAMES}")


def theoretical_field(name: str, cfg: SeqConfig, t: int) -> tuple[int, int]:
    """(first, last) input position that output t can depend on, inclusive."""
    return build_model(name, replace(cfg, d_model=2, n_heads=1)).field(t, cfg.length)


def sequential_steps(name: str, cfg: SeqConfig, length: int) -> int:
    """Steps of a forward pass over `length` positions that must wait for the one before."""
    return build_model(name, replace(cfg, d_model=2, n_heads=1)).sequential_steps(length)


def input_gradient(model: nn.Module, x: Tensor, t: int) -> Tensor:
    """(B, T) |dy_t/dx_s| summed over channels, per example; dL/dy_t is 1 on every channel of y_t."""
    x = x.detach().requires_grad_(True)
    model(x)[:, t, :].sum().backward()
    return x.grad.abs().sum(-1)


@one_cpu_thread
def effective_field(
    name: str,
    cfg: SeqConfig,
    t: int,
    n_inits: int = 4,
    batch: int = 4,
    seed: int = 0,
    device: str = "cpu",
) -> np.ndarray:
    """(T,) mean |dy_t/dx_s| over n_inits random initialisations x batch random inputs (Luo et al., 2016)."""
    if not 0 <= t < cfg.length:
        raise ValueError(f"output position t = {t} is outside the sequence [0, {cfg.length - 1}]")
    total = torch.zeros(cfg.length)
    for i in range(n_inits):
        gen = torch.manual_seed(seed + i)
        model = build_model(name, cfg).to(device)
        x = torch.randn(batch, cfg.length, cfg.d_model, generator=gen).to(device)  # (B, T, d)
        total += input_gradient(model, x, t).mean(0).cpu()
    return (total / n_inits).numpy()


def field_width(gradient: np.ndarray, t: int) -> float:
    """Root-mean-square distance |s - t| under the gradient normalised to a distribution: the ERF radius."""
    weights = np.asarray(gradient, dtype=float)
    s = np.arange(weights.size)
    return float(np.sqrt((weights * (s - t) ** 2).sum() / weights.sum()))


@one_cpu_thread
def cnn_width_vs_depth(cfg: SeqConfig, depths: list[int], n_inits: int = 4, device: str = "cpu") -> dict:
    """Effective and theoretical radius of the 1-D CNN at the centre output, for each depth."""
    t = cfg.length // 2
    effective, theoretical = [], []
    for depth in depths:
        depth_cfg = replace(cfg, cnn_layers=depth, causal=False)
        effective.append(field_width(effective_field("CNN", depth_cfg, t, n_inits, device=device), t))
        lo, hi = theoretical_field("CNN", depth_cfg, t)
        theoretical.append((hi - lo) / 2)
    return {"depth": np.array(depths), "effective": np.array(effective), "theoretical": np.array(theoretical)}
