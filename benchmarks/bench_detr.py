"""DETR: the cost of full attention capture against transformers, and our small model's latency.

    python -m benchmarks.bench_detr              # CPU, 1 thread (the shared-machine setting)
    python -m benchmarks.bench_detr --threads 2 --repeats 5
    python -m benchmarks.bench_detr --small-only     # only the shipped detector

1. DETR-R50 with random weights at 800 x 1066, batch 1: our model with every attention captured
   (capture=True) / transformers' DetrForObjectDetection with output_attentions=True (eager), the same
   weights mapped into both, medians of interleaved runs. Target <= 1.0x. Also our fast path.
   On a CUDA machine the same ratio and absolute latencies in fp32 and bf16.
2. The shipped small detector (weights/detr-shapes): latency per 128 x 128 image, forward with capture
   and the whole `run_detr` (pre-processing, forward, numpy results).
"""

import argparse

import torch

from benchmarks.timing import machine, median_times
from models.detr.api import DEFAULT_WEIGHTS, load_detr, run_detr
from models.detr.checkpoint import hf_to_ours, infer_config, load_state_strict
from models.detr.detr import build_detr
from models.detr.scenes import make_scene


def r50_pair(device: str):
    import transformers  # test/benchmark oracle only

    torch.manual_seed(0)
    config = transformers.DetrConfig(use_timm_backbone=False, use_pretrained_backbone=False, num_labels=91)
    hf = transformers.DetrForObjectDetection._from_config(config, attn_implementation="eager").eval()
    state = hf_to_ours(hf.state_dict())
    ours = build_detr(infer_config(state)).eval()
    load_state_strict(ours, state, "transformers")
    return ours.to(device), hf.to(device)


@torch.no_grad()
def bench_r50(device: str, repeats: int, dtype: torch.dtype = torch.float32) -> dict[str, float]:
    ours, hf = r50_pair(device)
    ours, hf = ours.to(dtype), hf.to(dtype)
    x = torch.randn(1, 3, 800, 1066, device=device, dtype=dtype)
    mask = torch.zeros(1, 800, 1066, dtype=torch.bool, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def run(fn):
        def timed():
            fn()
            sync()

        return timed

    return median_times(
        {
            "ours, capture": run(lambda: ours(x, mask, capture=True)),
            "ours, fast": run(lambda: ours(x, mask)),
            "transformers eager, output_attentions": run(
                lambda: hf(pixel_values=x, pixel_mask=(~mask).long(), output_attentions=True)
            ),
        },
        repeats=repeats,
        warmup=1,
    )


def report(title: str, t: dict[str, float]) -> None:
    base = t["transformers eager, output_attentions"]
    print(title)
    for name, sec in t.items():
        print(f"  {name:40s} {sec * 1000:9.1f} ms   {sec / base:5.2f}x")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--small-only", action="store_true", help="skip DETR-R50, time only the shipped detector")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(machine())
    if not args.small_only:
        report("DETR-R50, random weights, 800 x 1066, batch 1, CPU fp32", bench_r50("cpu", args.repeats))
    if torch.cuda.is_available() and not args.small_only:
        print(torch.cuda.get_device_name())
        report("DETR-R50, CUDA fp32", bench_r50("cuda", 10))
        report("DETR-R50, CUDA bf16", bench_r50("cuda", 10, torch.bfloat16))
    if (DEFAULT_WEIGHTS / "model.safetensors").exists():
        detector = load_detr()
        size = detector.config.min_size
        image = make_scene(10**9, size).image
        x, mask = torch.randn(1, 3, size, size), torch.zeros(1, size, size, dtype=torch.bool)
        with torch.no_grad():
            t = median_times(
                {
                    "forward, capture": lambda: detector.model(x, mask, capture=True),
                    "run_detr (pre-process, forward, numpy)": lambda: run_detr(detector, image),
                },
                repeats=20,
            )
        print(f"small default detector ({DEFAULT_WEIGHTS.name}), {size} x {size}, CPU, per image")
        for name, sec in t.items():
            print(f"  {name:40s} {sec * 1000:9.1f} ms")


if __name__ == "__main__":
    main()
