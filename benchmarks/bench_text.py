"""MiniLM forward at 128 and 512 tokens, CPU, batch 1: capture overhead and ours vs transformers.

    python -m benchmarks.bench_text

Prints, per length: full-capture ÷ fast path (target ≤ 1.3) and ours with capture ÷
transformers.BertModel eager with output_attentions=True (target ≤ 1.0).
"""

import torch
from transformers import BertModel as HFBertModel

from benchmarks.timing import machine, median_times
from models.bert import default_model_path, load_bert


def main(lengths=(128, 512)) -> None:
    ours = load_bert()
    reference = HFBertModel.from_pretrained(str(default_model_path()), attn_implementation="eager").eval()
    print(f"machine: {machine()}")
    for n in lengths:
        ids = torch.randint(1000, 30000, (1, n))
        ids[0, 0], ids[0, -1] = 101, 102

        @torch.no_grad()
        def fast(ids=ids):
            ours.model(ids)

        @torch.no_grad()
        def capture(ids=ids):
            ours.model(ids, capture=True)

        @torch.no_grad()
        def hf(ids=ids):
            reference(ids, output_attentions=True)

        t = median_times({"fast": fast, "capture": capture, "hf": hf}, repeats=15)
        print(
            f"{n:4d} tokens: fast {t['fast'] * 1e3:6.1f} ms, capture {t['capture'] * 1e3:6.1f} ms, "
            f"transformers {t['hf'] * 1e3:6.1f} ms | capture/fast {t['capture'] / t['fast']:.2f}x "
            f"(target <= 1.3) | ours/transformers {t['capture'] / t['hf']:.2f}x (target <= 1.0)"
        )


if __name__ == "__main__":
    main()
