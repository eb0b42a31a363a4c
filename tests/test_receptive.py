import base64
import importlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from streamlit.testing.v1 import AppTest

from models.attention import MultiHeadAttention, causal_mask, local_mask
from models.detr.api import Detector, run_detr
from models.detr.detr import DetrConfig, build_detr
from models.detr.scenes import make_scene
from models.receptive.conv_attention import construction_error, conv_as_attention, error_vs_alpha, head_maps
from models.receptive.image import (
    cnn_field_2d,
    detr_encoder_span,
    encoder_span,
    field_distance_2d,
    mean_attention_distance,
    theoretical_radius_2d,
    uniform_span,
)
from models.receptive.norms import axis_stats, batch_norm, layer_norm, residual_trace
from models.receptive.parallelism import complexity_table, connectivity, hops_to_connect
from models.receptive.sequence import (
    MODEL_NAMES,
    SeqConfig,
    build_model,
    check_config,
    check_work,
    cnn_width_vs_depth,
    effective_field,
    input_gradient,
    theoretical_field,
    windowed_attention,
)
from tests.conftest import count_calls
from viz.heatmap import MARGIN, MASK_GREY, masked_colour
from viz.norms import norm_axes_figure, residual_figure
from viz.receptive import effective_field_figure, field_maps_figure, head_maps_figure

PAGE = str(Path(__file__).parents[1] / "app_pages" / "receptive_fields.py")
SMALL = SeqConfig(length=24, d_model=8, n_heads=2, cnn_layers=3, radius=2)


def support(name: str, cfg: SeqConfig, t: int) -> tuple[int, int]:
    """First and last input position with a nonzero gradient of output t."""
    torch.manual_seed(0)
    grad = input_gradient(build_model(name, cfg), torch.randn(2, cfg.length, cfg.d_model), t).sum(0)
    nonzero = torch.nonzero(grad).flatten()
    return int(nonzero[0]), int(nonzero[-1])


@pytest.mark.parametrize(
    "kernel, dilation, depth, causal, t, expected",
    [
        (3, 1, 1, False, 10, (9, 11)),
        (3, 1, 4, False, 10, (6, 14)),
        (5, 2, 2, False, 12, (4, 20)),  # 2 layers x (5 - 1) x 2 / 2 = 8 each side
        (4, 1, 2, False, 10, (8, 14)),  # even kernel: 1 left, 2 right per layer
        (3, 1, 3, True, 10, (4, 10)),
        (3, 3, 2, True, 13, (1, 13)),  # dilated: 2 layers x 2 x 3 = 12 to the left
        (3, 1, 6, True, 10, (0, 10)),  # 12 to the left, clipped at the start
        (7, 1, 5, False, 2, (0, 17)),  # clipped at the start, 15 to the right
    ],
)
def test_cnn_theoretical_field_matches_settings_and_gradient_support(
    kernel, dilation, depth, causal, t, expected
):
    cfg = replace(SMALL, kernel_size=kernel, dilation=dilation, cnn_layers=depth, causal=causal)
    assert theoretical_field("CNN", cfg, t) == expected
    assert support("CNN", cfg, t) == expected  # the gradient is nonzero exactly on the theoretical field


@pytest.mark.parametrize(
    "name, causal, t, expected",
    [
        ("RNN", False, 7, (0, 7)),
        ("BiGRU", False, 7, (0, 23)),
        ("Self-attention", False, 7, (0, 23)),
        ("Self-attention", True, 7, (0, 7)),
        ("Local attention", False, 7, (5, 9)),
        ("Local attention", True, 7, (5, 7)),
    ],
)
def test_theoretical_field_of_other_models(name, causal, t, expected):
    cfg = replace(SMALL, causal=causal)
    assert theoretical_field(name, cfg, t) == expected
    assert support(name, cfg, t) == expected


@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU", "CNN", "Self-attention", "Local attention"])
def test_causal_models_have_exactly_zero_gradient_to_the_right(name):
    cfg = replace(SMALL, causal=True, attn_layers=2)
    t = 10
    grad = effective_field(name, cfg, t, n_inits=2)
    assert np.all(grad[t + 1 :] == 0.0)
    assert np.all(grad[max(0, t - 2) : t + 1] > 0)  # and not zero everywhere


def test_bidirectional_and_non_causal_models_see_the_right():
    for name in ("BiRNN", "BiLSTM", "BiGRU", "CNN", "Self-attention"):
        assert effective_field(name, SMALL, 10, n_inits=1)[11] > 0, name


@pytest.mark.parametrize("radius, causal", [(0, False), (2, False), (3, True), (40, False)])
def test_windowed_attention_equals_the_band_mask(radius, causal):
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4)
    x = torch.randn(2, 20, 16)
    mask = local_mask(20, radius)
    if causal:
        mask = mask & causal_mask(20)
    expected, _ = mha(x, mask=mask, capture=True)
    torch.testing.assert_close(windowed_attention(mha, x, radius, causal), expected, atol=1e-5, rtol=1e-5)


def test_recurrent_gradient_decays_with_distance_and_attention_reaches_everything():
    cfg = SeqConfig(length=48, d_model=16)
    rnn = effective_field("RNN", cfg, 47, n_inits=4)
    assert rnn[47] > 10 * rnn[30] > 0
    attention = effective_field("Self-attention", cfg, 24, n_inits=4)
    assert attention.min() > 0.1 * attention.max()


def test_cnn_effective_field_grows_slower_than_its_theoretical_field():
    curve = cnn_width_vs_depth(SeqConfig(length=96, d_model=8), [1, 4, 16], n_inits=3)
    assert np.all(np.diff(curve["effective"]) > 0)
    assert np.all(curve["effective"][1:] < curve["theoretical"][1:])
    growth = curve["effective"][-1] / curve["effective"][0]
    assert 2 < growth < 8  # about sqrt(16) = 4, far from the linear 16


def test_path_lengths_measured_from_the_gradient():
    n = 16
    full = build_model("Self-attention", replace(SMALL, length=n, attn_layers=1))
    conv = build_model("CNN", replace(SMALL, length=n, cnn_layers=1, kernel_size=3))
    local = build_model("Local attention", replace(SMALL, length=n, attn_layers=1, radius=2))
    assert hops_to_connect(connectivity(full, n, SMALL.d_model), causal=False, max_hops=n) == 1
    assert hops_to_connect(connectivity(conv, n, SMALL.d_model), causal=False, max_hops=n) == n - 1
    assert hops_to_connect(connectivity(local, n, SMALL.d_model), causal=False, max_hops=n) == 8
    assert hops_to_connect(np.eye(n, dtype=bool), causal=False, max_hops=n) is None


def test_complexity_table_rows():
    rows = complexity_table(replace(SMALL, length=16), {"RNN": 1e-3})
    assert [r["layer type"] for r in rows][:2] == ["Self-attention", "Recurrent"]
    assert rows[1]["sequential steps here"] == 16 and rows[0]["sequential steps here"] == 1
    assert rows[0]["path length measured"] == "1 layer"
    assert rows[1]["time per layer (ms)"] == "1.000"


@pytest.mark.parametrize(
    "change, words",
    [
        ({"length": 100_000}, "sequence length = 100000 is outside the limit [2, 512]"),
        ({"d_model": 1024}, "width d = 1024 is outside the limit [2, 256]"),
        ({"cnn_layers": 0}, "CNN depth = 0 is outside the limit [1, 32]"),
        ({"kernel_size": 99}, "kernel size = 99 is outside the limit [1, 15]"),
        ({"d_model": 31, "n_heads": 1}, "must be even"),
        ({"n_heads": 3}, "not divisible by 3 heads"),
    ],
)
def test_limits_name_the_limit(change, words):
    with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("]", r"\]")):
        check_config(replace(SeqConfig(), **change))


def test_work_limits_name_the_limit():
    big = SeqConfig(length=512, d_model=256, rnn_layers=32)
    with pytest.raises(
        ValueError, match=r"initialisations x T x d² x depth = 1.1e\+09 is over the limit 2e\+08"
    ):
        check_work(big, n_inits=1)
    with pytest.raises(ValueError, match=r"longest length x d² x depth = 4.3e\+09 is over the limit 2e\+09"):
        check_work(big, longest=2048)
    with pytest.raises(ValueError, match=r"random initialisations = 40 is outside the limit \[1, 32\]"):
        check_work(SeqConfig(), n_inits=40)
    with pytest.raises(ValueError, match=r"longest length = 8 is outside the limit \[16, 2048\]"):
        check_work(SeqConfig(), longest=8)
    check_work(SeqConfig(), n_inits=4, longest=512)  # the page's defaults pass


def test_other_limits():
    check_config(SeqConfig())
    with pytest.raises(ValueError, match="limit 128"):
        cnn_field_2d(np.zeros((1, 300, 300)), [1])
    with pytest.raises(ValueError, match="depths"):
        cnn_field_2d(np.zeros((1, 16, 16)), [64])
    with pytest.raises(ValueError, match="kernel size 17 exceeds the limit 15"):
        cnn_field_2d(np.zeros((1, 16, 16)), [1], kernel_size=17)
    with pytest.raises(ValueError, match="limit"):
        residual_trace(torch.randn(4, 8), 1000, 2, skip=True)
    with pytest.raises(ValueError, match="outside the sequence"):
        effective_field("CNN", SMALL, SMALL.length)
    with pytest.raises(ValueError, match="unknown model"):
        build_model("Transformer-XL", SMALL)


def test_conv_construction_error_below_1e3_for_3x3():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 8, 9, generator=gen, dtype=torch.float64)
    weight = torch.randn(4, 3, 3, 3, generator=gen, dtype=torch.float64)
    bias = torch.randn(4, generator=gen, dtype=torch.float64)
    assert construction_error(x, weight, bias, alpha=20.0) < 1e-3
    assert construction_error(x, weight, bias, alpha=0.5) > 0.1  # a soft score blurs: far from the conv
    out, _ = conv_as_attention(x, weight, bias, alpha=40.0)
    torch.testing.assert_close(out, F.conv2d(x, weight, bias, padding=1), atol=1e-9, rtol=1e-9)


def test_conv_construction_error_falls_with_alpha_also_for_5x5():
    alphas, errors = error_vs_alpha(kernel_size=5, size=9, alphas=[0.5, 2, 8, 32])
    assert np.all(np.diff(errors) < 0) and errors[-1] < 1e-6


def test_each_head_attends_to_its_offset():
    maps = head_maps(3, alpha=30.0)  # (9, 5, 5) around the centre pixel
    for h, (dy, dx) in enumerate([(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1)]):
        assert maps[h, 2 + dy, 2 + dx] > 0.999


def test_conv_construction_rejects_even_kernels():
    with pytest.raises(ValueError, match="odd"):
        conv_as_attention(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 2, 2), None, 1.0)


def test_cnn_2d_field_fills_its_theoretical_square():
    size, kernel = 33, 3
    maps = cnn_field_2d(
        make_scene(0, size=size).image.transpose(2, 0, 1) / 255.0, [1, 3], kernel_size=kernel, n_inits=2
    )
    for m, depth in zip(maps, [1, 3]):
        r = theoretical_radius_2d(depth, kernel)
        ys, xs = np.nonzero(m)
        assert ys.min() == xs.min() == size // 2 - r and ys.max() == xs.max() == size // 2 + r
    assert field_distance_2d(maps[1]) > field_distance_2d(maps[0])


def test_mean_attention_distance():
    coords = np.array([[0, 0], [0, 3], [4, 0]])
    assert mean_attention_distance(np.eye(3), coords) == 0.0
    to_first = np.zeros((2, 3, 3))
    to_first[:, :, 0] = 1.0  # both heads: every query attends to position 0
    np.testing.assert_allclose(mean_attention_distance(to_first, coords), [7 / 3, 7 / 3])
    np.testing.assert_allclose(mean_attention_distance(to_first[0], coords, [False, True, True]), 3.5)
    with pytest.raises(ValueError, match="disagree"):
        mean_attention_distance(np.eye(4), coords)


def test_encoder_span_of_a_tiny_random_detr():
    torch.manual_seed(0)
    config = DetrConfig(
        num_classes=2, backbone_depth=18, backbone_width=8, d_model=16, n_heads=2, num_encoder_layers=2,
        num_decoder_layers=1, dim_feedforward=16, num_queries=3, min_size=96, max_size=96,
    )  # fmt: skip
    detector = Detector(build_detr(config).eval(), config, "tiny")
    result = run_detr(detector, make_scene(0, size=64).image)
    spans = encoder_span(result.encoder, result.stride, 64 / 96, (3, 3))
    assert spans.shape == (2, 2) and np.all(spans > 0)
    measured, uniform = detr_encoder_span(detector, make_scene(0, size=64).image)  # what the page calls
    np.testing.assert_allclose(measured, spans, rtol=1e-5)
    assert 0 < uniform < 3 * 32 * 64 / 96
    # a head that attends uniformly over the 3 x 3 cells covering the image: distances of a 3 x 3 grid
    uniform = np.zeros((1, 1, 3, 3, 3, 3))
    uniform[..., :, :] = 1 / 9
    ys, xs = np.mgrid[0:3, 0:3].reshape(2, -1)
    grid = np.hypot(ys[:, None] - ys[None], xs[:, None] - xs[None]).mean()
    np.testing.assert_allclose(encoder_span(uniform, 32, 0.5, (3, 3)), [[16 * grid]])
    assert uniform_span(3, 3, 32, 0.5, (3, 3)) == pytest.approx(16 * grid)
    with pytest.raises(ValueError, match="h, w, h, w"):
        encoder_span(np.zeros((1, 1, 3, 3, 2, 2)), 32, 1.0)


def test_layer_norm_and_batch_norm_fix_different_axes():
    torch.manual_seed(0)
    h = torch.randn(3, 5, 16) + torch.arange(16.0) + 3 * torch.randn(3, 5, 1)  # channel and token offsets
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 0, 0, 0]])
    ln = axis_stats(layer_norm(h), mask)
    np.testing.assert_allclose(ln.token_mean, 0, atol=1e-5)
    np.testing.assert_allclose(ln.token_std, 1, atol=1e-3)
    assert np.abs(ln.channel_mean).max() > 0.3  # layer norm leaves the channel statistics alone
    bn_out = batch_norm(h, mask)
    bn = axis_stats(bn_out, mask)
    np.testing.assert_allclose(bn.channel_mean, 0, atol=1e-5)
    np.testing.assert_allclose(bn.channel_std, 1, atol=1e-3)
    assert np.abs(bn.token_mean).max() > 0.3
    assert torch.all(bn_out[mask == 0] == 0)
    changed = h.clone()
    changed[2] += 100  # another sentence changes: batch norm of sentence 0 changes, layer norm does not
    assert not torch.allclose(batch_norm(changed, mask)[0], bn_out[0])
    torch.testing.assert_close(layer_norm(changed)[0], layer_norm(h)[0])


def test_tokens_collapse_without_the_skip_connection():
    torch.manual_seed(0)
    x = torch.randn(12, 32)
    with_skip = residual_trace(x, 8, 4, skip=True)
    without = residual_trace(x, 8, 4, skip=False)
    assert without.cosine[-1] > 0.99 and without.effective_rank[-1] < 1.5
    assert with_skip.cosine[-1] < 0.9 and with_skip.effective_rank[-1] > 5
    assert with_skip.grad_norm[0] > without.grad_norm[0]
    assert len(without.grad_norm) == 9


def test_figures_check_shapes():
    with pytest.raises(ValueError, match="same models"):
        effective_field_figure({"RNN": np.ones(4)}, {"CNN": (0, 1)}, 1)
    with pytest.raises(ValueError, match="must be"):
        effective_field_figure({"RNN": np.ones(4), "CNN": np.ones(5)}, {"RNN": (0, 1), "CNN": (0, 1)}, 1)
    with pytest.raises(ValueError, match="radii"):
        field_maps_figure(np.ones((2, 4, 4)), [1, 2], [1])
    with pytest.raises(ValueError, match="labels"):
        norm_axes_figure(np.ones((3, 4)), np.ones((3, 4)), np.ones((3, 4)), ["a"], 0, 0)
    fig = effective_field_figure({"RNN": np.array([0, 1.0, 2.0])}, {"RNN": (0, 2)}, 2)
    assert np.isnan(fig.data[0].y[0]) and fig.data[0].y[2] == 1.0  # exact zero left out on the log axis


def test_the_lab_heatmaps_are_drawn_by_the_core():
    maps = field_maps_figure(np.ones((2, 5, 5)), [1, 2], [1, 2], image=np.zeros((5, 5)))
    heads = head_maps_figure(head_maps(3, alpha=10.0), 3)
    tokens = ["0:[CLS]", "0:the", "0:the", "0:[SEP]"]  # a token may repeat in a sentence
    small = np.arange(4 * 6, dtype=np.float32).reshape(4, 6)
    axes = norm_axes_figure(small, small, small, tokens, 1, 2)
    for fig in (maps, heads, axes):
        margin = fig.layout.margin.to_plotly_json()  # the core's; taller above a figure title
        assert masked_colour(fig.layout) == MASK_GREY and margin | {"t": MARGIN["t"]} == MARGIN
        assert all(t.type == "heatmap" and t.hoverongaps is False and t.customdata is None for t in fig.data)
    assert len(maps.data) == 3 and maps.data[0].showscale is False and maps.data[2].showscale is True
    assert len([s for s in maps.layout.shapes if s.layer != "below"]) == 2  # one theoretical field per depth
    h = heads.data[0].z.shape[0]
    assert list(heads.data[0].y) == list(range(-(h // 2), h - h // 2))  # key offsets, centred
    assert "weight %{z:.4g}" in heads.data[0].hovertemplate
    assert list(axes.data[0].y) == ["0 0:[CLS]", "1 0:the", "2 0:the", "3 0:[SEP]"]  # one row per token
    assert len([s for s in axes.layout.shapes if s.layer != "below"]) == 6  # the row and column in each panel
    big = np.zeros((200, 384), dtype=np.float32)  # over the core's cell budget: drawn as images
    assert {t.type for t in norm_axes_figure(big, big, big, ["0:x"] * 200, 0, 0).data} == {"image"}
    traces = {"a": {"cosine": [1, 2], "effective_rank": [3, 4], "grad_norm": [5, 6]}, "b": {}}
    with pytest.raises(KeyError):
        residual_figure(traces)
    traces["b"] = traces["a"]
    fig = residual_figure(traces)
    assert [t.name for t in fig.data] == ["a"] * 3 + ["b"] * 3
    assert [t.showlegend for t in fig.data] == [True, False, False] * 2


def open_tab(at: AppTest, label: str) -> AppTest:
    """Open the lab's tab `label` as a click does (the page reruns with that tab open)."""
    at.session_state["rf_tab"] = label
    return at.run()


SMALL_LAB = {  # the lab's cheap settings
    "rf_length": 16,
    "rf_t": 8,
    "rf_inits": 1,
    "rf_timing_max": 32,
    "rf_img_size": 16,
    "rf_img_depths": [1, 2],
    "rf_res_depth": 3,
    "rf_sentences": "A cat.\nTwo small dogs ran.",
}


def small_page(**state) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=180)
    for key, value in (SMALL_LAB | state).items():
        at.session_state[key] = value
    return at.run()


def values(array) -> np.ndarray:
    """A trace array from a figure's JSON, decoding plotly's typed-array form {"dtype", "bdata"}."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"])
    return np.asarray(array)


def figure(at, key):
    chart = next(c for c in at.get("plotly_chart") if key in c.proto.id)
    return json.loads(chart.proto.spec)


@pytest.mark.slow
def test_page_runs_and_draws_every_section():
    at = small_page()
    assert not at.exception, at.exception
    assert not at.error
    assert [t.label for t in at.tabs] == TABS
    text = " ".join(m.value for m in at.markdown) + " ".join(c.value for c in at.caption)
    erf = figure(at, "rf_erf_chart")
    assert len(erf["data"]) == 2 * len(MODEL_NAMES)  # a profile and a theoretical bar per model
    assert len(values(erf["data"][0]["x"])) == 16
    fields = at.dataframe[0].value
    assert list(fields["model"]) == list(MODEL_NAMES)
    assert fields["theoretical field"][6] == "s = 4..12 (9 positions)"  # CNN: 4 layers of k = 3 around t = 8
    open_tab(at, "Parallelism")
    assert not at.exception and not at.error
    timing = figure(at, "rf_timing")
    assert (
        len(timing["data"]) == 2 * len(MODEL_NAMES) and len(values(timing["data"][0]["x"])) == 2
    )  # lengths 16, 32
    table = at.dataframe[0].value
    assert list(table["layer type"]) == [
        "Self-attention",
        "Recurrent",
        "Convolutional",
        "Self-attention (restricted)",
    ]
    text += " ".join(c.value for c in at.caption)
    open_tab(at, "Images")
    assert not at.exception and not at.error
    assert len(figure(at, "rf_maps")["data"]) == 3  # the image and two depths
    span = figure(at, "rf_span")["data"]
    detr_missing = any("trained detector" in i.value for i in at.info)
    assert len(span) == 1 if detr_missing else len(span) > 1  # the CNN curve, then one trace per DETR head
    open_tab(at, "CNN = attention")
    assert len(figure(at, "rf_head_maps")["data"]) == 9
    text += " ".join(c.value for c in at.caption)
    open_tab(at, "Norms")
    axes = figure(at, "rf_norm_axes")
    assert len(axes["data"]) == 3
    open_tab(at, "Residuals")
    assert len(figure(at, "rf_residual")["data"]) == 6
    assert not at.exception and not at.error
    for claim in ("S1", "S2", "S3", "S7", "S8", "S9"):
        assert claim in text


@pytest.mark.slow
def test_page_names_the_limit_and_keeps_working():
    at = small_page(rf_length=1, rf_heads=3, rf_img_size=4000, rf_res_depth=500)
    assert not at.exception
    assert "sequence length T = 1 is outside the limit [2, 512]; 2 is used" in [w.value for w in at.warning]
    assert [e.value for e in at.error] == ["width d = 32 is not divisible by 3 heads; use a divisor of d"]
    open_tab(at, "Parallelism")
    assert "Fix the sequence settings" in " ".join(w.value for w in at.warning)
    open_tab(at, "Images")
    assert "image side (pixels) = 4000 is outside the limit [8, 128]; 128 is used" in [
        w.value for w in at.warning
    ]
    open_tab(at, "CNN = attention")
    assert figure(at, "rf_head_maps")  # the other sections still draw
    open_tab(at, "Residuals")
    assert "attention layers = 500 is outside the limit [1, 64]; 64 is used" in [w.value for w in at.warning]
    assert len(values(figure(at, "rf_residual")["data"][0]["y"])) == 65  # the input and 64 layers
    assert not at.exception and not at.error
    open_tab(at, "Sequences")
    at.number_input(key="rf_heads").set_value(4).run()
    assert not at.exception and not at.error  # the sequence error is gone
    assert len(values(figure(at, "rf_erf_chart")["data"][0]["x"])) == 2


COMPUTATIONS = {  # the function computing each section's results: counted, to see what is computed again
    "fields": ("models.receptive.sequence", "effective_field"),
    "timings": ("models.receptive.parallelism", "time_forward"),
    "maps": ("models.receptive.image", "cnn_field_2d"),
    "conv errors": ("models.receptive.conv_attention", "error_vs_alpha"),
    "stacks": ("models.receptive.norms", "residual_trace"),
    "minilm": ("models.bert", "BertModel.forward"),
}
TABS = ["Sequences", "Parallelism", "Images", "CNN = attention", "Norms", "Residuals"]
DRAWN = dict(
    zip(TABS, ["sequences", "parallelism", "images", "construction", "norms", "residuals"], strict=True)
)
DRAWINGS = {  # a figure of each section: counted, to see which sections ran
    "sequences": ("viz.receptive", "effective_field_figure"),
    "parallelism": ("viz.receptive", "timing_figure"),
    "images": ("viz.receptive", "field_maps_figure"),
    "construction": ("viz.receptive", "head_maps_figure"),
    "norms": ("viz.norms", "norm_axes_figure"),
    "residuals": ("viz.norms", "residual_figure"),
}


def counting(calls: dict, name: str, original):
    def counted(*args, **kwargs):
        calls[name] += 1
        return original(*args, **kwargs)

    return counted


@pytest.fixture
def counted(monkeypatch):
    """name -> calls so far of each function in COMPUTATIONS and DRAWINGS, with every cache empty."""
    import streamlit as st

    assert not set(COMPUTATIONS) & set(DRAWINGS)

    calls = dict.fromkeys([*COMPUTATIONS, *DRAWINGS], 0)
    for name, (module, path) in (COMPUTATIONS | DRAWINGS).items():
        owner = importlib.import_module(module)
        *outer, attribute = path.split(".")
        for part in outer:
            owner = getattr(owner, part)
        monkeypatch.setattr(owner, attribute, counting(calls, name, getattr(owner, attribute)))
    st.cache_data.clear()
    st.cache_resource.clear()  # ui.results keeps its results there
    yield calls
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.mark.slow
def test_a_control_recomputes_only_its_own_section(counted):
    def since(before: dict, names) -> dict:
        return {name: counted[name] - before[name] for name in names if counted[name] != before[name]}

    at = small_page()
    for tab in TABS[1:]:
        open_tab(at, tab)
    assert not at.exception and all(counted.values())  # every section computed once
    changes = [
        ("CNN = attention", "slider", "rf_alpha", 20.0, {}),  # its error curve is kept per kernel
        ("Sequences", "slider", "rf_t", 5, {"fields": len(MODEL_NAMES)}),  # not the CNN's depth curve
        ("Images", "number_input", "rf_img_kernel", 5, {"maps": 2}),  # two depths
        ("Norms", "slider", "rf_norm_channel", 7, {}),  # MiniLM is not run again
        ("Residuals", "number_input", "rf_res_depth", 4, {"stacks": 2}),  # with and without the skip
        ("Parallelism", "number_input", "rf_timing_max", 64, {"timings": len(MODEL_NAMES)}),  # new length
    ]
    for tab, kind, key, value, computed in changes:
        open_tab(at, tab)
        before = dict(counted)
        getattr(at, kind)(key=key).set_value(value).run()
        assert not at.exception, key
        assert since(before, COMPUTATIONS) == computed, key
        assert since(before, DRAWINGS) == {DRAWN[tab]: 1}, key  # its own section only

    # a setting two sections share reruns its own section; the other reads it when its tab is opened
    open_tab(at, "Sequences")
    before = dict(counted)
    at.number_input(key="rf_kernel").set_value(5).run()
    assert since(before, DRAWINGS) == {"sequences": 1}
    assert set(since(before, COMPUTATIONS)) == {"fields"}
    before = dict(counted)
    open_tab(at, "Parallelism")
    assert since(before, DRAWINGS) == {"parallelism": 1}
    assert set(since(before, COMPUTATIONS)) == {"timings"}  # the new kernel's timings
    open_tab(at, "Norms")
    before = dict(counted)
    at.text_area(key="rf_sentences").set_value("A dog.\nTwo small dogs ran.").run()
    assert since(before, DRAWINGS) == {"norms": 1}
    assert since(before, COMPUTATIONS) == {"minilm": 1}  # the batch
    before = dict(counted)
    open_tab(at, "Residuals")
    assert since(before, DRAWINGS) == {"residuals": 1}
    assert since(before, COMPUTATIONS) == {"minilm": 1, "stacks": 2}  # the new first sentence
    assert "A dog." in " ".join(c.value for c in at.caption)
    assert not at.exception


@pytest.mark.slow
def test_a_visit_computes_only_the_open_tab(monkeypatch):
    """A default visit draws the Sequences tab and computes nothing of the other sections; opening a tab
    computes that one."""
    import streamlit as st

    import models.bert
    import models.receptive.conv_attention
    import models.receptive.image
    import models.receptive.norms
    import models.receptive.parallelism
    import models.receptive.sequence

    calls = count_calls(
        monkeypatch,
        (models.receptive.sequence, "effective_field"),
        (models.receptive.parallelism, "time_forward"),
        (models.receptive.image, "cnn_field_2d"),
        (models.receptive.conv_attention, "error_vs_alpha"),
        (models.receptive.norms, "residual_trace"),
        (models.bert.BertModel, "forward"),
    )
    st.cache_data.clear()
    st.cache_resource.clear()  # ui.results keeps its results there
    try:
        at = small_page()
        assert not at.exception, at.exception
        assert set(calls) == {"effective_field"}
        assert [c for c in at.get("plotly_chart") if "rf_" in c.proto.id]  # the sequence section drew
        del calls[:]
        open_tab(at, "Images")
        assert not at.exception
        assert set(calls) == {"cnn_field_2d"}  # the image section alone
    finally:
        st.cache_data.clear()
        st.cache_resource.clear()


@pytest.mark.slow
def test_page_rejects_empty_and_too_many_sentences():
    at = small_page(rf_sentences="   \n", rf_tab="Norms")
    assert not at.exception and any("at least one sentence" in w.value for w in at.warning)
    at = small_page(rf_sentences="\n".join(["word"] * 20), rf_tab="Norms")
    assert any("exceed the limit of 16" in e.value for e in at.error)


def test_one_cpu_thread_restores_the_thread_count():
    from models.receptive.threads import one_cpu_thread

    seen = []

    @one_cpu_thread
    def inner():
        seen.append(torch.get_num_threads())

    @one_cpu_thread
    def outer():
        inner()
        seen.append(torch.get_num_threads())
        raise RuntimeError("fails inside")

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with pytest.raises(RuntimeError):
            outer()
        assert seen == [1, 1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
def test_page_draws_the_detr_encoder_span(monkeypatch):
    import streamlit as st

    import models.detr.api

    torch.manual_seed(0)
    config = DetrConfig(
        num_classes=2, backbone_depth=18, backbone_width=8, d_model=16, n_heads=2, num_encoder_layers=3,
        num_decoder_layers=1, dim_feedforward=16, num_queries=3, min_size=96, max_size=96,
    )  # fmt: skip
    tiny = Detector(build_detr(config).eval(), config, "tiny")
    monkeypatch.setattr(models.detr.api, "load_detr", lambda path=None, device="cpu": tiny)
    st.cache_resource.clear()
    st.cache_data.clear()
    try:
        at = small_page(rf_tab="Images")
        assert not at.exception, at.exception
        span = figure(at, "rf_span")["data"]
        assert len(span) == 1 + 2  # the CNN curve and one trace per encoder head
        assert len(values(span[1]["x"])) == 3  # one point per encoder layer
    finally:
        st.cache_resource.clear()
        st.cache_data.clear()
