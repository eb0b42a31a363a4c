"""DETR page: what a click costs on the server and on the wire, CPU, at 800 x 1066 pixels.

    python -m benchmarks.bench_detr_page            # the default detector and DETR-R50 (random weights)
    python -m benchmarks.bench_detr_page --quick    # the default detector only

The page runs the model once per (model, image) and keeps the result, and draws the open tab's section
only (each click below opens its section's tab first); every control lives in a fragment, so a click
reruns the sections it concerns and never the model. Here the page runs in AppTest and each click is sent
as the browser sends it: the widget's value (or the clicked point's customdata) with the id of the
fragment that holds it, so that the server reruns that fragment, or the fragments its callback names (a
new query redraws the detections and the cross-attention). Per click: the server time of that rerun
(median) and the bytes it sends (every message, and the figures' JSON among them; the browser's message
cache may spare some of them). Target: <= 150 ms and <= 2 MB a click. The forward pass, which a page
without the kept result would pay at every click, is timed as the baseline.
"""

import argparse
import io
import json
import statistics
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from streamlit.proto.WidgetStates_pb2 import WidgetState
from streamlit.runtime.forward_msg_queue import ForwardMsgQueue
from streamlit.runtime.scriptrunner import ScriptRunner
from streamlit.testing.v1 import AppTest, local_script_runner

from benchmarks.timing import machine, median_times
from models.detr.api import DEFAULT_WEIGHTS, SMALL_CONFIG, load_detr, run_detr
from models.detr.detr import DetrConfig
from models.detr.inspect import untrained
from models.detr.scenes import make_scene
from ui.detr.common import CROSS, DECODER_SELF, DETECTIONS, ENCODER, POSITIONAL, PREDICTIONS, TAB_KEY, TABS

PAGE = str(Path(__file__).parents[1] / "app_pages" / "detr.py")
TAB_OF = {section: label for label, section in TABS.items()}  # the page draws the open tab's section only
REPEATS = 5


@dataclass
class Rerun:
    """What one rerun costs: the server's seconds in the script (callbacks and fragments, not AppTest's
    parsing of the result), wall-clock and on the script thread's CPU (steadier on a busy machine), every
    message's bytes and the figures' JSON bytes among them."""

    seconds: float = 0.0
    cpu: float = 0.0
    total: int = 0
    figures: int = 0
    counting: bool = False

    def start(self) -> None:
        self.seconds, self.cpu, self.total, self.figures, self.counting = 0.0, 0.0, 0, 0, True

    def message(self, msg) -> None:
        """ForwardMsgQueue's hook: called with every message the server sends."""
        if not self.counting:
            return
        self.total += msg.ByteSize()
        if msg.HasField("delta") and msg.delta.new_element.WhichOneof("type") == "plotly_chart":
            self.figures += len(msg.delta.new_element.plotly_chart.spec)

    def timed(self, run_script):
        """Wraps ScriptRunner._run_script: its time is the server's time for a rerun."""

        def wrapper(runner, rerun_data):
            start, start_cpu = time.perf_counter(), time.thread_time()
            try:
                return run_script(runner, rerun_data)
            finally:
                if self.counting:
                    self.seconds += time.perf_counter() - start
                    self.cpu += time.thread_time() - start_cpu

        return wrapper


def chart_id(at: AppTest, key: str) -> str:
    return next(e.proto.id for e in at.get("plotly_chart") if e.proto.id.endswith(key))


def table_id(at: AppTest, key: str) -> str:
    return next(e.proto.id for e in at.get("dataframe") if e.proto.id.endswith(key))


def selection(element_id: str, value: dict) -> WidgetState:
    return WidgetState(id=element_id, string_value=json.dumps({"selection": value}))


def point(element_id: str, customdata) -> WidgetState:
    """A click on a figure's point, as the browser reports it."""
    data = {"curve_number": 1, "point_number": 0, "point_index": 0, "x": 0, "y": 0, "customdata": customdata}
    return selection(element_id, {"points": [data], "point_indices": [0], "box": [], "lasso": []})


def rerun(at: AppTest, fragment: str, cost: Rerun, extra: WidgetState | None = None) -> None:
    """One rerun as the browser asks for it after a change inside `fragment`, measured into `cost`."""
    states = at._tree.get_widget_states()
    if extra is not None:
        states.widgets.append(extra)
    (fragment_id,) = at._fragment_storage.resolve_target(fragment)
    plain = local_script_runner.RerunData
    local_script_runner.RerunData = partial(plain, fragment_id=fragment_id)
    cost.start()
    try:
        at._run(states)
    finally:
        local_script_runner.RerunData = plain
        cost.counting = False
    assert not at.exception, at.exception


def clicks(at: AppTest, n_queries: int, n_layers: int, n_heads: int, h: int, w: int) -> dict:
    """name -> (fragment, change(i)): change sets a widget (returns None) or returns a click's state."""

    def set_widget(kind: str, key: str, values):
        return lambda i: getattr(at, kind)(key=key).set_value(values[i % len(values)]) and None

    return {
        "threshold": (DETECTIONS, set_widget("slider", "dp_threshold", [0.005, 0.0])),
        "query (select box)": (DETECTIONS, set_widget("selectbox", "dp_query", [3, n_queries - 1])),
        "query (box click)": (DETECTIONS, lambda i: point(chart_id(at, "dp_detections"), [1, 2][i % 2])),
        "query (table row)": (
            DETECTIONS,
            lambda i: selection(table_id(at, "dp_query_table"), {"rows": [4 + i % 2], "columns": []}),
        ),
        "query (strip tile)": (DETECTIONS, lambda i: point(chart_id(at, "dp_strip"), [0, 5 + i % 2, 0.5])),
        "layer": (CROSS, set_widget("selectbox", "dp_layer", [0, n_layers - 1])),
        "head": (CROSS, set_widget("selectbox", "dp_head", [1, "mean"])),
        "grid tile click": (
            CROSS,
            lambda i: point(chart_id(at, "dp_grid"), [i % n_layers, i % n_heads, 0.5]),
        ),
        "resolution (upsampled)": (CROSS, set_widget("radio", "dp_resolution", ["upsampled (bilinear)"])),
        "opacity": (CROSS, set_widget("slider", "dp_opacity", [0.5, 0.7])),
        "encoder point click": (
            ENCODER,
            lambda i: point(chart_id(at, "dp_enc_click"), {"0": (2 + i) % h, "1": (3 + i) % w, "2": 0.01}),
        ),
        "encoder head": (ENCODER, set_widget("selectbox", "dp_enc_head", [2, "max"])),
        "encoder reverse": (
            ENCODER,
            set_widget("radio", "dp_enc_direction", ["which positions attend to it", "where it attends"]),
        ),
        "decoder self head": (DECODER_SELF, set_widget("selectbox", "dp_dself_head", [4, "mean"])),
        "predictions layer": (PREDICTIONS, set_widget("select_slider", "dp_pred_layer", [0, n_layers - 1])),
        "positional channel": (POSITIONAL, set_widget("slider", "dp_pos_channel", [5, 200 % (2 * h * w)])),
    }


def open_page(source: str, image: np.ndarray) -> AppTest:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    at = AppTest.from_file(PAGE, default_timeout=600)
    at.run()
    at.sidebar.radio(key="dp_model_source").set_value(source).run()
    at.radio(key="dp_image_source").set_value("Upload an image").run()
    at.file_uploader(key="dp_upload").set_value(("bench.png", buf.getvalue(), "image/png")).run()
    at.slider(key="dp_threshold").set_value(0.0).run()  # every query a detection: the most to draw
    assert not at.exception, at.exception
    return at


def bench(name: str, detector, image: np.ndarray, source: str, cost: Rerun) -> None:
    forward = median_times({"forward": lambda: run_detr(detector, image, threshold=0.0)}, repeats=3, warmup=1)
    result = run_detr(detector, image, threshold=0.0)
    n_layers, n_heads, n_queries = result.decoder_cross.shape[:3]
    family = result.encoder_attention
    whole = 4 * family.n_layers * family.n_heads * (result.h * result.w) ** 2
    at = open_page(source, image)
    full = []
    for _ in range(3):
        cost.start()
        at.run()
        cost.counting = False
        full.append(cost.seconds)
    print(
        f"{name}: image {image.shape[0]}x{image.shape[1]}, feature map {result.h}x{result.w}, "
        f"{family.n_layers} encoder + {n_layers} decoder layers x {n_heads} heads, {n_queries} queries\n"
        f"  result kept: {result.nbytes / 2**20:.1f} MiB (encoder maps: {whole / 2**20:.0f} MiB)\n"
        f"  baseline, forward pass:  {forward['forward'] * 1e3:8.1f} ms\n"
        f"  whole page run:      {statistics.median(full) * 1e3:8.1f} ms, {cost.total / 1e3:.0f} kB sent\n"
        f"  {'click':<24}{'server ms':>10}{'CPU ms':>8}{'sent kB':>10}{'figures kB':>12}"
    )
    worst = (0.0, 0.0, 0)
    for click, (fragment, change) in clicks(at, n_queries, n_layers, n_heads, result.h, result.w).items():
        samples = []
        for i in range(REPEATS):
            at.session_state[TAB_KEY] = TAB_OF.get(fragment, next(iter(TABS)))  # the click's tab is open
            at.run()  # AppTest's tree holds only what the last rerun drew: draw the page again, untimed
            rerun(at, fragment, cost, change(i))
            samples.append((cost.seconds * 1e3, cost.cpu * 1e3, cost.total / 1e3, cost.figures / 1e3))
        ms, cpu, kb, figures = (statistics.median(column) for column in zip(*samples))
        worst = (max(worst[0], ms), max(worst[1], cpu), max(worst[2], max(s[2] for s in samples)))
        print(f"  {click:<24}{ms:10.1f}{cpu:8.1f}{kb:10.1f}{figures:12.1f}")
    print(
        f"  worst click: {worst[0]:.1f} ms ({worst[1]:.1f} ms CPU), median of {REPEATS}; "
        f"{worst[2] / 1e3:.2f} MB at most (target <= 150 ms, <= 2 MB)"
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
    cost = Rerun()
    ForwardMsgQueue.on_before_enqueue_msg(cost.message)
    ScriptRunner._run_script = cost.timed(ScriptRunner._run_script)
    image = make_scene(0, 1066).image[:800]  # (800, 1066, 3): shorter side 800, kept as is by DETR-R50
    if (DEFAULT_WEIGHTS / "model.safetensors").exists():
        bench(
            "the default detector (weights/detr-shapes)",
            load_detr(),
            image,
            "Default detector (shapes)",
            cost,
        )
    else:
        bench(
            "small DETR (untrained, the default's architecture)",
            untrained(SMALL_CONFIG),
            image,
            "Untrained small DETR (random weights)",
            cost,
        )
    if not args.quick:
        r50 = DetrConfig(class_names=[f"class {i}" for i in range(91)])
        bench("DETR-R50 (random weights)", untrained(r50), image, "Untrained DETR-R50 (random weights)", cost)


if __name__ == "__main__":
    main()
