"""Head importance and gradient relevance: their cost, as ratios against a forward in the same process.

    python -m benchmarks.bench_explain_grad              # CPU, 1 thread (the shared-machine setting)
    python -m benchmarks.bench_explain_grad --threads 2 --repeats 5
    python -m benchmarks.bench_explain_grad --device cuda

1. The importance table of all 72 heads of MiniLM at 128 tokens (`models.explain.ablation.importance`):
   each head ablated alone, the 72 ablations run as batches of inputs with one gate row per input, and
   Michel et al.'s gradient estimate from one forward and one backward. Target <= 10 s. Also the ratio
   against one MiniLM forward (fast path) at 128 tokens, and the time per batch size.
2. Chefer et al.'s relevance for one detection of DETR-R50 (random weights) at 800 x 1066, backbone
   included: the features once (pre-processing, ResNet, projection, no graph), then the transformer with
   every attention captured and one backward to the attention maps. Target <= 2 x one forward of the
   model (pre-processing and the fast path).
"""

import argparse

import numpy as np
import torch

from benchmarks.timing import machine, median_times
from models.attention import ZERO
from models.detr.preprocess import preprocess
from models.explain.ablation import EncoderProbe, importance
from models.explain.inputs import detr_features
from models.explain.relevance import detr_relevance
from models.registry import load_model

TEXT = (
    "Attention rollout, attention flow, value norms, gradient relevance and head ablation each answer a "
    "different question about the same model: where did this output come from, and which heads does it "
    "need? A raw attention map answers neither; it says where a head looked, not whether that mattered. "
) * 4


def minilm_ids(model, n_tokens: int) -> list[int]:
    ids = model.encode(TEXT).ids
    if len(ids) < n_tokens:
        raise ValueError(f"the benchmark text has {len(ids)} wordpieces, fewer than {n_tokens}")
    return ids[: n_tokens - 1] + ids[-1:]  # [CLS] ... [SEP]


def bench_importance(device: str, repeats: int, n_tokens: int = 128) -> dict[str, float]:
    model = load_model("all-MiniLM-L6-v2", device=device, kind="encoder")
    ids = minilm_ids(model, n_tokens)
    x = torch.tensor([ids], device=device)

    @torch.no_grad()
    def forward():
        model.model(x)

    functions = {"forward": forward}
    for chunk in (12, 24, 72):
        functions[f"importance, {chunk} per batch"] = lambda chunk=chunk: importance(
            EncoderProbe(model.model, ids), ZERO, chunk=chunk
        )
    return median_times(functions, repeats=repeats, warmup=1)


def bench_relevance(device: str, repeats: int) -> dict[str, float]:
    detector = load_model("detr-r50-untrained", device=device, kind="detr")
    image = np.random.default_rng(0).integers(0, 256, (800, 1066, 3), dtype=np.uint8)
    features = detr_features(detector, image)
    with torch.no_grad():
        logits = detector.model.predict(features.src, features.mask, features.pos).pred_logits[0]
    query = int(logits.softmax(-1)[:, :-1].max(-1).values.argmax())  # the best "detection"

    @torch.no_grad()
    def forward():
        batch = preprocess([image], detector.config.min_size, detector.config.max_size)
        detector.model(batch.pixels.to(device), batch.mask.to(device))

    def relevance():
        detr_relevance(detector.model, detr_features(detector, image), query)

    def transformer_only():
        detr_relevance(detector.model, features, query)

    return median_times(
        {"forward": forward, "relevance": relevance, "relevance, features kept": transformer_only},
        repeats=repeats,
        warmup=1,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(machine())
    times = bench_importance(args.device, args.repeats)
    base = times.pop("forward")
    print(f"\nMiniLM, 128 tokens: one forward {base * 1e3:.1f} ms")
    for name, t in times.items():
        print(f"  {name}: {t:.2f} s ({t / base:.0f}x the forward; target <= 10 s)")
    times = bench_relevance(args.device, args.repeats)
    base = times.pop("forward")
    print(f"\nDETR-R50 (random weights), 800 x 1066: one forward {base:.2f} s")
    for name, t in times.items():
        print(f"  {name}: {t:.2f} s ({t / base:.2f}x the forward; target <= 2x)")


if __name__ == "__main__":
    main()
