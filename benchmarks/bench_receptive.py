"""Time the receptive-field page's default computation, section by section, against one plain forward.

    OMP_NUM_THREADS=2 .venv/bin/python -m benchmarks.bench_receptive

The baseline is one forward pass of MiniLM over the page's default batch of sentences, run in the
same process on one thread (as the lab's computations run), so that the ratios survive a slower or
busier machine. Everything runs cold (no cache),
as the page's first visit does; the page caches each result afterwards.
"""

import time

import numpy as np
import torch

from models.bert import load_bert
from models.detr.api import CheckpointError, load_detr
from models.detr.scenes import make_scene
from models.receptive.conv_attention import error_vs_alpha, head_maps
from models.receptive.defaults import DEFAULT_SENTENCES, DEFAULTS, TABLE_MODELS, TIMING_LENGTHS, scene_image
from models.receptive.image import cnn_field_2d, detr_encoder_span
from models.receptive.norms import axis_stats, batch_norm, layer_norm, residual_trace, sentence_batch
from models.receptive.parallelism import complexity_table, time_forward
from models.receptive.sequence import (
    MODEL_NAMES,
    SeqConfig,
    cnn_width_vs_depth,
    effective_field,
    theoretical_field,
)
from models.receptive.threads import one_cpu_thread


def sequences(cfg: SeqConfig) -> None:
    for name in MODEL_NAMES:
        effective_field(name, cfg, DEFAULTS["rf_t"], n_inits=DEFAULTS["rf_inits"])
        theoretical_field(name, cfg, DEFAULTS["rf_t"])
    cnn_width_vs_depth(cfg, [1, 2, 4, 8, 16], n_inits=DEFAULTS["rf_inits"])


def parallelism(cfg: SeqConfig) -> None:
    lengths = [n for n in TIMING_LENGTHS if n <= DEFAULTS["rf_timing_max"]]
    for name in MODEL_NAMES:
        time_forward(name, cfg, lengths)
    layer_times = {name: time_forward(name, cfg, [cfg.length])[0] for name in TABLE_MODELS}
    complexity_table(cfg, layer_times)


def images() -> None:
    size, kernel = DEFAULTS["rf_img_size"], DEFAULTS["rf_img_kernel"]
    try:
        detector = load_detr()
    except CheckpointError as err:
        print(f"(DETR side skipped: {err})")
    else:
        detr_encoder_span(detector, make_scene(DEFAULTS["rf_img_seed"], size=size).image)
    cnn_field_2d(scene_image(DEFAULTS["rf_img_seed"], size), DEFAULTS["rf_img_depths"], kernel_size=kernel)


def construction() -> None:
    error_vs_alpha(kernel_size=DEFAULTS["rf_conv_kernel"], size=10, alphas=np.logspace(-1, 1.7, 18))
    head_maps(DEFAULTS["rf_conv_kernel"], DEFAULTS["rf_alpha"])


def norms_and_residuals(model) -> None:
    ids, mask, _ = sentence_batch(model, DEFAULT_SENTENCES.splitlines())
    with torch.no_grad():
        states = model.model(ids, attention_mask=mask).hidden_states
    h = states[DEFAULTS["rf_norm_layer"]]
    for version in (h, layer_norm(h), batch_norm(h, mask)):
        axis_stats(version, mask)
    x = states[0][0, : int(mask[0].sum())]
    for skip in (True, False):
        residual_trace(x, DEFAULTS["rf_res_depth"], model.config.num_attention_heads, skip=skip)


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main() -> None:
    model = load_bert()
    ids, mask, _ = sentence_batch(model, DEFAULT_SENTENCES.splitlines())

    def plain_forward() -> None:
        with torch.no_grad():
            model.model(ids, attention_mask=mask)

    plain_forward()  # warm-up
    # on one thread, as the lab's own computations run (models/receptive/threads.py): with two
    # threads on a shared machine the baseline itself swings by 10x
    baseline = min(timed(one_cpu_thread(plain_forward)) for _ in range(5))
    cfg = SeqConfig(
        length=DEFAULTS["rf_length"],
        d_model=DEFAULTS["rf_width"],
        rnn_layers=DEFAULTS["rf_rnn_layers"],
        cnn_layers=DEFAULTS["rf_cnn_layers"],
        kernel_size=DEFAULTS["rf_kernel"],
        dilation=DEFAULTS["rf_dilation"],
        attn_layers=DEFAULTS["rf_attn_layers"],
        n_heads=DEFAULTS["rf_heads"],
        radius=DEFAULTS["rf_radius"],
        causal=DEFAULTS["rf_causal"],
    )
    sections = {
        "sequences (effective fields, CNN width vs depth)": (sequences, cfg),
        "parallelism (timing sweep, complexity table)": (parallelism, cfg),
        "images (2-D CNN gradient maps, DETR encoder span)": (images,),
        "CNN = attention (error vs alpha, head maps)": (construction,),
        "norms and residuals (MiniLM batch, two deep stacks)": (norms_and_residuals, model),
    }
    print(f"torch threads outside the lab's one-thread sections: {torch.get_num_threads()}")
    print(
        f"baseline: one MiniLM forward, default batch {tuple(ids.shape)}, 1 thread: {baseline * 1e3:.1f} ms"
    )
    total = 0.0
    for label, (fn, *args) in sections.items():
        seconds = timed(fn, *args)
        total += seconds
        print(f"{label:55s} {seconds:6.2f} s  = {seconds / baseline:7.1f} x baseline")
    print(f"{'page default computation, total':55s} {total:6.2f} s  = {total / baseline:7.1f} x baseline")


if __name__ == "__main__":
    main()
