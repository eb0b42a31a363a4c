"""Llama-family decoders at long length, CPU, batch 1: what a view costs against a forward and transformers.

    python -m benchmarks.bench_llama            # both models, 1,024 and 4,096 tokens, 1 and 2 threads
    python -m benchmarks.bench_llama --models smollm2-135m-shape --lengths 1024 --threads 1

Models: the embedded long model `llama-stdlib` when the registry has it (else the `llama-stdlib` preset's
shape with random weights, labelled so), and a random Llama of SmolLM2-135M's shape (30 layers, 9 query /
3 K/V heads, width 576, intermediate 1536, vocab 49152, RoPE θ 100000: `models.llama.PRESETS`, nothing
downloaded). Our weights are saved with `models.llama_io.save_llama` and read by transformers, so both run
the same numbers. Per model, length and thread count, every timing in the same process, interleaved:

- fast: our forward, capture off (fused attention);
- first view: the causal page's first head view, through the page's own functions without Streamlit
  (`head_view` below): one forward with capture=LAZY and the readout (`models.long_heads.llama_maps`), layer 0
  head 0's (T × T) map from q and k and its mask (`head_map`), the figures `ui.widgets.matrix_view` draws
  (`matrix_figure`: cells, or a raster of the whole map beside a 128 × 128 `zoom_figure`), and each figure
  turned into JSON as st.plotly_chart does (`sent`);
- hf eager: transformers' LlamaForCausalLM with attn_implementation="eager" and output_attentions=True
  (every layer's (H, T, T) weights kept); above MAX_HF_KEPT bytes of maps (4,096 tokens for the 30-layer
  model: 18 GB), the same eager forward with output_attentions=False, which builds the same weights per
  layer and drops them, so that it fits in memory (and is, if anything, faster);
- layer: every head's map of one layer on demand (`AttentionMaps.layer`, from the kept q and k) ÷ that
  layer's own time inside transformers' eager forward (a forward hook on the decoder layer);
- head switch: another head of layer 0 in the same view, from the kept q and k;
- head scores: what the page measures once per input besides (`models.long_heads`: every head on the
  text and on the repeated-block probe, plus the probe's forward), as a ratio to the fast forward;
- CPU time: beside each first-view ratio, the same ratio of the process's CPU seconds (median), which
  the other jobs of a shared machine disturb less than wall time;
- peak RSS: the process's peak resident memory during each step (VmHWM, reset per step through
  /proc/self/clear_refs).

Targets (issue 12): first view ÷ fast ≤ 1.2, first view ÷ hf eager ≤ 0.8, layer ≤ 1.0, head switch ≤ 300 ms
at 4,096 tokens (issue 11's budget for the page's switch).
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import plotly.io
import plotly.tools
import torch

from benchmarks.timing import machine
from models.errors import ModelLoadError
from models.llama import PRESETS, build_llama
from models.llama_io import load_llama, save_llama
from models.long_heads import llama_maps, long_head_scores, repeated_block
from models.maps import AttentionMaps
from models.registry import load_model, names
from ui.llama_causal import head_map
from ui.widgets import MAX_ZOOM_WIDTH, ZOOM_WIDTH
from viz.export import matrix_figure, zoom_figure
from viz.heatmap import CELL_BUDGET

MAX_HF_KEPT = 4 * 2**30  # bytes of attention maps transformers may keep with output_attentions=True
AXES = ("query (attending)", "key (attended to)")  # matrix_view's axis titles


def rss_peak_reset() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS


def rss_peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def models_to_run(which: list[str], directory: Path) -> list[tuple[str, Path]]:
    """(label, directory of a Hugging Face-format checkpoint) per model asked for."""
    out = []
    for name in which:
        if name == "llama-stdlib" and "llama-stdlib" in names("causal"):
            try:
                ours = load_model("llama-stdlib", kind="causal")
            except ModelLoadError as err:
                print(f"llama-stdlib is registered but cannot be loaded ({err}); timing its shape instead")
            else:
                path = directory / name
                save_llama(ours.model, ours.config, path)
                out.append(("llama-stdlib (trained, embedded)", path))
                continue
        torch.manual_seed(0)
        config = PRESETS[name]
        path = directory / name
        save_llama(build_llama(config).eval(), config, path)
        label = "llama-stdlib shape, random weights" if name == "llama-stdlib" else f"{name}, random weights"
        out.append((label, path))
    return out


def sent(fig) -> str:
    """What st.plotly_chart does with a figure before it leaves the server: a dict, then JSON."""
    return plotly.io.to_json(plotly.tools.return_figure_from_figure_or_data(fig, True), validate=False)


def head_view(maps: AttentionMaps, layer: int, head: int, tokens: list[str]) -> None:
    """ui.llama_causal.head_view's work on the page's first visit, without Streamlit: the head's map and its
    mask, the figures of ui.widgets.matrix_view with the zoom window at its default place, their JSON."""
    probs, allowed = head_map(maps, layer, head)
    title = f"layer {layer}, head {head}"
    if probs.size <= CELL_BUDGET:
        sent(matrix_figure(probs, tokens, tokens, title, *AXES, mask=allowed))
        return
    sent(matrix_figure(probs, tokens, tokens, title, *AXES, mask=allowed, height=640))
    width = min(ZOOM_WIDTH, MAX_ZOOM_WIDTH, *probs.shape)
    sent(zoom_figure(probs, tokens, tokens, 0, 0, width, *AXES, mask=allowed))


class LayerTimer:
    """Wall time of one decoder layer's forward inside transformers' model (pre and post hooks)."""

    def __init__(self, layer: torch.nn.Module):
        self.start = 0.0
        self.last = 0.0
        layer.register_forward_pre_hook(self._pre)
        layer.register_forward_hook(self._post)

    def _pre(self, *_):
        self.start = time.perf_counter()

    def _post(self, *_):
        self.last = time.perf_counter() - self.start


def load_both(path: Path):
    """(ours, transformers' eager model, the timer of its middle layer), the same weights."""
    import transformers

    ours = load_llama(path)
    hf = transformers.AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager").eval()
    return ours, hf, LayerTimer(hf.model.layers[ours.config.n_layer // 2])


def bench(label: str, ours, hf, timer: LayerTimer, n: int, repeats: int) -> dict:
    cfg = ours.config
    layer = cfg.n_layer // 2
    ids = torch.randint(1, cfg.vocab_size, (1, n), generator=torch.Generator().manual_seed(1))
    tokens = [str(i) for i in ids[0].tolist()]
    kept_bytes = 4 * cfg.n_layer * cfg.n_head * n * n
    keep = kept_bytes <= MAX_HF_KEPT
    state: dict = {}

    @torch.no_grad()
    def fast():
        ours.model(ids)

    @torch.no_grad()
    def first_view():  # the page's default layer and head: 0, 0
        maps = llama_maps(ours.model, ids[0].tolist())
        head_view(maps, 0, 0, tokens)
        state["maps"] = maps

    @torch.no_grad()
    def hf_eager():
        hf(ids, output_attentions=keep)
        state["hf_layer"] = timer.last

    @torch.no_grad()
    def layer_on_demand():
        AttentionMaps(state["maps"].family).layer(layer)  # an empty memo: every map of the layer computed

    @torch.no_grad()
    def head_switch():
        state["switch"] = state.get("switch", 0) % (cfg.n_head - 1) + 1  # another head each time
        head_view(AttentionMaps(state["maps"].family), 0, state["switch"], tokens)

    steps = {"fast": fast, "hf": hf_eager, "first_view": first_view, "layer": layer_on_demand}
    steps["switch"] = head_switch
    samples = {name: [] for name in [*steps, "hf_layer"]}
    cpu = {name: [] for name in steps}  # the process's CPU seconds: what the other jobs on the machine spare
    peaks = dict.fromkeys(steps, 0.0)
    fast(), hf_eager(), first_view()  # warm-up
    for _ in range(repeats):  # interleaved, so that the other jobs on the machine slow every step alike
        for name, fn in steps.items():
            if name in ("fast", "hf"):
                state.pop("maps", None)  # the previous input's maps go, as the page's store would drop them
            rss_peak_reset()
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            samples[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
            peaks[name] = max(peaks[name], rss_peak_mb())
        samples["hf_layer"].append(state["hf_layer"])
    maps = state["maps"]

    @torch.no_grad()
    def head_scores():
        probe, period = repeated_block(n, 1, cfg.vocab_size, bos=int(ids[0, 0]))
        long_head_scores(AttentionMaps(maps.family), llama_maps(ours.model, probe.tolist()), period)

    start = time.perf_counter()
    head_scores()
    scores_time = time.perf_counter() - start

    t = {name: statistics.median(values) for name, values in samples.items()}
    c = {name: statistics.median(values) for name, values in cpu.items()}
    return {
        "model": label,
        "n": n,
        "threads": torch.get_num_threads(),
        "fast": t["fast"],
        "first_view": t["first_view"],
        "hf": t["hf"],
        "cpu_view_fast": c["first_view"] / c["fast"],
        "cpu_view_hf": c["first_view"] / c["hf"],
        "hf_kept": keep,
        "layer": t["layer"],
        "hf_layer": t["hf_layer"],
        "switch": t["switch"],
        "scores": scores_time,
        "peak_fast": peaks["fast"],
        "peak_view": max(peaks["first_view"], peaks["layer"], peaks["switch"]),
        "peak_hf": peaks["hf"],
    }


def secs(t: float) -> str:
    return f"{t * 1e3:.0f} ms" if t < 1 else f"{t:.2f} s"


def row(r: dict) -> str:
    hf_note = "" if r["hf_kept"] else " (maps not kept)"
    return (
        f"| {r['model']} | {r['n']} | {r['threads']} | {secs(r['fast'])} | {secs(r['first_view'])} | "
        f"**{r['first_view'] / r['fast']:.2f}×** (CPU {r['cpu_view_fast']:.2f}×) | "
        f"{secs(r['hf'])}{hf_note} | "
        f"**{r['first_view'] / r['hf']:.2f}×** (CPU {r['cpu_view_hf']:.2f}×) | {secs(r['layer'])} / "
        f"{secs(r['hf_layer'])} = "
        f"**{r['layer'] / r['hf_layer']:.2f}×** | {secs(r['switch'])} | "
        f"{secs(r['scores'])} ({r['scores'] / r['fast']:.1f}×) | "
        f"{r['peak_fast']:.0f} / {r['peak_view']:.0f} / {r['peak_hf']:.0f} MB |"
    )


HEADER = (
    "| model | tokens | threads | fast forward | first view | ÷ fast (CPU time) | hf eager | "
    "÷ hf (CPU time) | layer on demand ÷ hf layer | head switch | head scores (÷ fast) | "
    "peak RSS fast / view / hf |\n"
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["llama-stdlib", "smollm2-135m-shape"])
    parser.add_argument("--lengths", nargs="+", type=int, default=[1024, 4096])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(HEADER, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for label, path in models_to_run(args.models, Path(tmp)):
            ours, hf, timer = load_both(path)
            for n in args.lengths:
                for threads in args.threads:
                    torch.set_num_threads(threads)
                    print(row(bench(label, ours, hf, timer, n, args.repeats)), flush=True)
            del ours, hf


if __name__ == "__main__":
    main()
