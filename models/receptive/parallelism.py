"""Parallelism: forward time against length, and Table 1 of "Attention Is All You Need" measured.

A recurrent layer takes n steps that each wait for the one before; convolution and attention take
one step per layer. The maximum path length between two positions is read from the exact zeros of
one layer's input gradient: layers are stacked until the first and last positions are linked.
"""

import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from models.receptive.sequence import GATES, SeqConfig, build_model, sequential_steps
from models.receptive.threads import one_cpu_thread


@one_cpu_thread
def time_forward(
    name: str,
    cfg: SeqConfig,
    lengths: list[int],
    repeats: int = 5,
    device: str = "cpu",
    progress: Callable[[float], None] | None = None,
    budget_s: float = 0.5,
) -> np.ndarray:
    """Fastest of `repeats` forward times in seconds of one batch-1 input at each length, on device.

    Repeats stop early once a length has used `budget_s` seconds, so that long sequences on a
    slow device take one measured run, not five.
    """
    torch.manual_seed(0)
    model = build_model(name, cfg).to(device).eval()
    times = []
    for i, length in enumerate(lengths):
        x = torch.randn(1, length, cfg.d_model, device=device)
        runs = []
        with torch.inference_mode():
            model(x)  # warm-up: allocator, kernel selection
            for _ in range(repeats):
                _sync(device)
                start = time.perf_counter()
                model(x)
                _sync(device)
                runs.append(time.perf_counter() - start)
                if sum(runs) > budget_s:
                    break
        times.append(min(runs))  # the least disturbed run: other processes only ever add time
        if progress:
            progress((i + 1) / len(lengths))
    return np.array(times)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def connectivity(model: nn.Module, length: int, d_model: int) -> np.ndarray:
    """(T, T) bool: output t depends on input s, read from the exact zeros of the gradient of one input.

    The T gradients (one per output position) are one batched backward pass: half the time of T passes
    at T = 512, where the loop made the receptive-field lab's table take 9 s."""
    gen = torch.manual_seed(1)
    x = torch.randn(1, length, d_model, generator=gen, requires_grad=True)
    y = model(x)  # (1, T, d)
    ones = torch.eye(length).reshape(length, 1, length, 1).expand(length, *y.shape)  # row t: 1 on y_t
    (grad,) = torch.autograd.grad(y, x, grad_outputs=ones, is_grads_batched=True)  # (T, 1, T, d)
    return (grad[:, 0].abs().sum(-1) > 0).numpy()


def hops_to_connect(adjacency: np.ndarray, causal: bool, max_hops: int) -> int | None:
    """Fewest layers of this one-layer connectivity after which the two ends of the sequence are linked.

    Causal models need the last output to reach the first input; the others also the first output the
    last input. None if max_hops layers are not enough.
    """
    step = adjacency.astype(np.int64)
    last, first = step[-1], step[0]  # inputs that the last / first output reaches
    for hops in range(1, max_hops + 1):
        if last[0] and (causal or first[-1]):
            return hops
        last, first = np.minimum(last @ step, 1), np.minimum(first @ step, 1)
    return None


@one_cpu_thread
def complexity_table(cfg: SeqConfig, layer_times: dict[str, float]) -> list[dict]:
    """Table 1 of "Attention Is All You Need" with the numbers of this configuration.

    layer_times maps "Self-attention", "RNN", "CNN", "Local attention" to a measured forward time of
    the whole stack in seconds; it is divided by the stack's depth. Multiply-adds are counted from
    the layer shapes (the mixing step only, as in the paper: attention without its projections).
    The maximum path length is measured: the connectivity of one layer is read from the exact zeros
    of its input gradient, and layers are stacked until the two ends of the sequence are linked.
    """
    n, d, k, r = cfg.length, cfg.d_model, cfg.kernel_size, cfg.radius
    one = replace(cfg, d_model=8, n_heads=1, rnn_layers=1, cnn_layers=1, attn_layers=1)
    torch.manual_seed(0)
    rows = []
    specs = [
        ("Self-attention", "Self-attention", "O(n²·d)", 2 * n * n * d, "O(1)", "O(1)", cfg.attn_layers),
        ("Recurrent", "RNN", "O(n·d²)", GATES["RNN"] * 2 * n * d * d, "O(n)", "O(n)", cfg.rnn_layers),
        (
            "Convolutional",
            "CNN",
            "O(k·n·d²)",
            k * n * d * d,
            "O(1)",
            "O(n/k), O(logₖ n) dilated",
            cfg.cnn_layers,
        ),
        (
            "Self-attention (restricted)",
            "Local attention",
            "O(r·n·d)",
            2 * n * (2 * r + 1) * d,
            "O(1)",
            "O(n/r)",
            cfg.attn_layers,
        ),
    ]
    for label, name, per_layer, macs, seq_ops, path, depth in specs:
        model = build_model(name, one)
        if name == "RNN":
            hops_text = f"{n} steps (1 layer)"
        else:
            hops = hops_to_connect(connectivity(model, n, one.d_model), cfg.causal, max_hops=n)
            hops_text = "never" if hops is None else f"{hops} layer{'s' if hops > 1 else ''}"
        rows.append(
            {
                "layer type": label,
                "complexity per layer": per_layer,
                f"multiply-adds per layer (n={n}, d={d})": f"{macs:,}",
                "time per layer (ms)": f"{1e3 * layer_times[name] / depth:.3f}"
                if name in layer_times
                else "",
                "sequential operations": seq_ops,
                "sequential steps here": sequential_steps(name, cfg, n) // depth,
                "maximum path length": path,
                "path length measured": hops_text,
            }
        )
    return rows
