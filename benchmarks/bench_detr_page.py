"""DETR page: server-side time to redraw after the user changes query, layer or head, CPU.

    python -m benchmarks.bench_detr_page            # the default detector and DETR-R50 (random weights)
    python -m benchmarks.bench_detr_page --quick    # the default detector only

The page runs the model once per (model, image) and caches the result; a change of query, layer or
head only slices the cached arrays and rebuilds two figures (the overlay and the layer x head grid),
serialised as Streamlit sends them. That redraw is timed at 800 x 1066 pixels against the baseline a
page without the cache would pay, one forward pass with attention capture, in the same process.
The whole page script rerun (every tab, in AppTest) is timed too. Target: redraw <= 150 ms.
"""

import argparse
import io
import time
from pathlib import Path

import numpy as np
import plotly.io as pio
import torch
from PIL import Image

from benchmarks.timing import machine, median_times
from models.detr.api import DEFAULT_WEIGHTS, SMALL_CONFIG, load_detr, run_detr
from models.detr.detr import DetrConfig
from models.detr.inspect import cell_extent, scores_labels, untrained, upsample
from models.detr.scenes import make_scene
from viz.detr import attention_overlay, background, map_grid

PAGE = str(Path(__file__).parents[1] / "app_pages" / "detr.py")


def redraw(result, bg, query: int, layer: int, head: int | None, upsampled: bool) -> int:
    """What the cross-attention view does on a change: slice, (upsample), two figures, to JSON."""
    maps = result.decoder_cross[:, :, query]  # (L, nh, h, w)
    attn = maps[layer].mean(0) if head is None else maps[layer, head]
    cell = shown_cell = cell_extent(result)
    if upsampled:
        attn, shown_cell = upsample(attn, (result.h * 8, result.w * 8)), (cell[0] / 8, cell[1] / 8)
    overlay = attention_overlay(bg, attn, shown_cell, 0.6, box=result.layer_boxes[-1, query])
    grid_maps = np.concatenate([maps, maps.mean(1, keepdims=True)], axis=1)
    grid = map_grid(
        bg,
        grid_maps,
        [f"layer {i}" for i in range(maps.shape[0])],
        [f"head {j}" for j in range(maps.shape[1])] + ["mean"],
        cell,
        0.6,
    )
    return len(pio.to_json(overlay, validate=False)) + len(pio.to_json(grid, validate=False))


def page_rerun_seconds(source: str, image: np.ndarray, repeats: int = 3) -> float:
    """Median seconds of a whole page rerun in AppTest after a head change (model result cached)."""
    from streamlit.testing.v1 import AppTest

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    at = AppTest.from_file(PAGE, default_timeout=600)
    at.run()
    at.sidebar.radio(key="dp_model_source").set_value(source).run()
    at.radio(key="dp_image_source").set_value("Upload an image").run()
    at.file_uploader(key="dp_upload").set_value(("bench.png", buf.getvalue(), "image/png")).run()
    assert not at.exception, at.exception
    times = []
    for i in range(repeats):
        at.selectbox(key="dp_head").set_value(i % 2)
        start = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def bench(name: str, detector, image: np.ndarray, source: str) -> None:
    start = time.perf_counter()
    result = run_detr(detector, image, threshold=0.0)
    first = time.perf_counter() - start
    bg = background(image)
    query = int(scores_labels(result)[0].argmax())
    n_layers, n_heads, n_queries = result.decoder_cross.shape[:3]
    state = {"i": 0}

    def change(upsampled: bool):
        def fn():
            state["i"] += 1
            i = state["i"]
            redraw(
                result,
                bg,
                (query + i) % n_queries,
                i % n_layers,
                None if i % (n_heads + 1) == n_heads else i % (n_heads + 1),
                upsampled,
            )

        return fn

    def forward():
        run_detr(detector, image, threshold=0.0)

    t = median_times(
        {"redraw": change(False), "redraw_up": change(True), "forward": forward},
        repeats=5 if detector.config.backbone_depth >= 50 else 15,
        warmup=1,
    )
    rerun = page_rerun_seconds(source, image)
    ms = {k: v * 1e3 for k, v in t.items()} | {"rerun": rerun * 1e3}
    ratio = {k: v / ms["forward"] for k, v in ms.items()}
    print(
        f"{name}: image {image.shape[0]}x{image.shape[1]}, feature map {result.h}x{result.w}, "
        f"{n_layers} decoder layers x {n_heads} heads, {n_queries} queries (first run {first:.2f} s)\n"
        f"  baseline, forward+capture: {ms['forward']:8.1f} ms\n"
        f"  redraw, raw map:         {ms['redraw']:8.1f} ms  ({ratio['redraw']:.3f}x forward, <= 150)\n"
        f"  redraw, upsampled map:   {ms['redraw_up']:8.1f} ms  ({ratio['redraw_up']:.3f}x)\n"
        f"  page rerun (AppTest):    {ms['rerun']:8.1f} ms  ({ratio['rerun']:.3f}x)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="the default detector only")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"machine: {machine()}")
    image = make_scene(0, 1066).image[:800]  # (800, 1066, 3): shorter side 800, kept as is by DETR-R50
    if (DEFAULT_WEIGHTS / "model.safetensors").exists():
        bench("the default detector (weights/detr-shapes)", load_detr(), image, "Default detector (shapes)")
    else:
        bench(
            "small DETR (untrained, the default's architecture)",
            untrained(SMALL_CONFIG),
            image,
            "Untrained small DETR (random weights)",
        )
    if not args.quick:
        r50 = DetrConfig(class_names=[f"class {i}" for i in range(91)])
        bench("DETR-R50 (random weights)", untrained(r50), image, "Untrained DETR-R50 (random weights)")


if __name__ == "__main__":
    main()
