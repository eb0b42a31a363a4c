"""Causal GPT forward at 256 and 1024 tokens, CPU, batch 1: the cost of capturing attention.

    python -m benchmarks.bench_causal

Uses the `gpt-bench` preset (4 layers x 4 heads, d = 128, context 1024) with random weights: the
timing does not depend on what the weights learned. Prints, per length, full capture (every
AttentionRecord built, the masked scores and weights materialised) ÷ the fast path (fused
scaled_dot_product_attention with the causal mask), both run in turn in the same process.
"""

import torch

from benchmarks.timing import machine, median_times
from models.gpt import PRESETS, build_gpt


def main(lengths=(256, 1024)) -> None:
    torch.manual_seed(0)
    config = PRESETS["gpt-bench"]
    model = build_gpt(config).eval()
    print(f"machine: {machine()}")
    print(f"model: gpt-bench, {config.n_layer} layers x {config.n_head} heads, d = {config.n_embd}")
    for n in lengths:
        ids = torch.randint(1, config.vocab_size, (1, n))

        @torch.no_grad()
        def fast(ids=ids):
            model(ids)

        @torch.no_grad()
        def capture(ids=ids):
            model(ids, capture=True)

        t = median_times({"fast": fast, "capture": capture}, repeats=15 if n <= 256 else 7)
        print(
            f"{n:5d} tokens: fast {t['fast'] * 1e3:7.1f} ms, capture {t['capture'] * 1e3:7.1f} ms | "
            f"capture/fast {t['capture'] / t['fast']:.2f}x"
        )


if __name__ == "__main__":
    main()
