"""Positional encodings: golden values, the one-hot identity on MiniLM, DETR parity, RoPE, the page."""

import base64
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

import models.bert
from models.bert_positions import input_parts, offset_share, permutation_gap, run_variants, shuffled_order
from models.maps import head_statistics
from models.positional import (
    apply_rope,
    check_size,
    detr_channel_name,
    detr_feature_mask,
    detr_feature_size,
    detr_resized_size,
    detr_sine,
    learned_by_lookup,
    learned_by_one_hot,
    one_hot_positions,
    position_similarity,
    rope_scores,
    scores_by_offset,
    similarity_to_point,
    sinusoidal,
)
from tests.conftest import count_calls, figure
from viz.heatmap import RASTER_SIDE, masked_colour, raster_indices
from viz.positional import (
    channel_maps,
    encoding_heatmap,
    point_similarity_map,
    raster_side,
    similarity_heatmap,
    statistic_comparison,
    where_added_diagram,
)

PAGE = Path(__file__).resolve().parents[1] / "app_pages" / "positional.py"


@pytest.fixture(scope="module")
def minilm():
    from models.bert import load_bert

    return load_bert()


# --- sinusoidal -----------------------------------------------------------------------------------


def test_sinusoidal_golden_values():
    pe = sinusoidal(3, 4)  # ω = 1, 0.01
    expected = [
        [0.0, 1.0, 0.0, 1.0],
        [0.8414709848, 0.5403023059, 0.0099998333, 0.9999500004],
        [0.9092974268, -0.4161468365, 0.0199986667, 0.9998000067],
    ]
    torch.testing.assert_close(pe, torch.tensor(expected), atol=1e-7, rtol=0)
    big = sinusoidal(101, 8)  # ω_1 = 10000^(-2/8) = 0.1, ω_3 = 10000^(-6/8) = 0.001
    assert big[5, 2].item() == pytest.approx(0.4794255386, abs=1e-7)  # sin(0.5)
    assert big[5, 3].item() == pytest.approx(0.8775825619, abs=1e-7)  # cos(0.5)
    assert big[100, 6].item() == pytest.approx(0.0998334166, abs=1e-7)  # sin(0.1)


def test_sinusoidal_positions_argument_picks_rows():
    full = sinusoidal(50, 16)
    rows = torch.tensor([0, 7, 49])
    torch.testing.assert_close(sinusoidal(50, 16, positions=rows), full[rows])


def test_sinusoidal_similarity_depends_only_on_offset():
    sim = position_similarity(sinusoidal(64, 32).double())
    _, means, spreads = scores_by_offset(sim)
    assert spreads.max() < 1e-5
    assert means[63] == pytest.approx(16.0)  # offset 0: Σ sin² + cos² over 16 pairs
    assert means[63] > means[64] > means[66]  # falls off with the offset nearby


@pytest.mark.parametrize(
    ("n", "d", "needle"),
    [(8193, 64, "8192"), (0, 64, "8192"), (16, 4098, "4096"), (16, 7, "even"), (16, 0, "4096")],
)
def test_sizes_out_of_range_name_the_limit(n, d, needle):
    with pytest.raises(ValueError, match=needle):
        check_size(n, d)
    with pytest.raises(ValueError, match=needle):
        sinusoidal(n, d)


def test_largest_allowed_sizes_work():
    check_size(8192, 4096)
    assert sinusoidal(8192, 2).shape == (8192, 2)


# --- learned: one-hot × table on the real MiniLM ----------------------------------------------------


def test_one_hot_times_table_equals_lookup_on_minilm(minilm):
    table = minilm.model.embeddings.position_embeddings.weight.detach()
    assert table.shape == (512, 384)
    positions = torch.arange(512)
    one_hot = one_hot_positions(positions, 512)
    assert torch.equal(one_hot, torch.eye(512))
    by_matrix = learned_by_one_hot(table, positions)
    assert torch.equal(by_matrix, learned_by_lookup(table, positions))
    assert torch.equal(by_matrix, table)
    assert torch.equal(learned_by_one_hot(table, torch.tensor([3, 3, 0])), table[[3, 3, 0]])


def test_one_hot_rejects_positions_past_the_table():
    with pytest.raises(ValueError, match="0..511"):
        one_hot_positions(torch.tensor([0, 512]), 512)


def test_position_is_added_to_the_token_embedding(minilm):
    ids = minilm.encode("Position is simply added.").ids
    parts = input_parts(minilm, ids)
    table = minilm.model.embeddings.position_embeddings.weight.detach()
    assert torch.equal(parts["position"], table[: len(ids)])
    assert torch.equal(parts["position"], parts["position_one_hot"])
    torch.testing.assert_close(parts["sum"], parts["token"] + parts["segment"] + parts["position"])
    torch.testing.assert_close(parts["normalised"], parts["model"], atol=1e-6, rtol=0)


# --- DETR 2-D sine ---------------------------------------------------------------------------------


def _reference_detr(mask: torch.Tensor) -> torch.Tensor:
    from transformers.models.detr.modeling_detr import DetrSinePositionEmbedding

    h, w = mask.shape
    embed = DetrSinePositionEmbedding(num_position_features=128, normalize=True)
    pixel_mask = None if not mask.any() else (~mask)[None].long()  # Hugging Face: 1 = pixel, 0 = padding
    return embed(shape=torch.Size([1, 256, h, w]), device="cpu", dtype=torch.float32, mask=pixel_mask)[0]


@pytest.mark.parametrize(
    ("image_hw", "padded_hw"),
    [((800, 1066), (800, 1066)), ((600, 800), (800, 1066)), ((800, 1201), (1100, 1333))],
)
def test_detr_sine_matches_transformers(image_hw, padded_hw):
    mask = detr_feature_mask(image_hw, padded_hw)
    ours = detr_sine(mask)
    assert ours.shape == (256, *mask.shape)
    torch.testing.assert_close(ours, _reference_detr(mask), atol=1e-5, rtol=0)


def test_detr_sine_golden_values():
    pos = detr_sine(torch.zeros(2, 3, dtype=torch.bool))  # y ∈ {π, 2π}, x ∈ {2π/3, 4π/3, 2π}
    assert pos[1, 0, 0].item() == pytest.approx(-1.0, abs=1e-5)  # y cos, pair 0: cos(π)
    assert pos[0, 1, 2].item() == pytest.approx(0.0, abs=1e-5)  # y sin: sin(2π)
    assert pos[128, 0, 0].item() == pytest.approx(math.sqrt(3) / 2, abs=1e-5)  # x sin: sin(2π/3)
    assert pos[129, 1, 1].item() == pytest.approx(-0.5, abs=1e-5)  # x cos: cos(4π/3)
    slow = 10000 ** (2 / 128)  # pair 1 divides by temperature^(2/128)
    assert pos[2, 0, 0].item() == pytest.approx(math.sin(math.pi / slow), abs=1e-5)
    assert pos[131, 0, 1].item() == pytest.approx(math.cos(4 * math.pi / 3 / slow), abs=1e-5)


def test_detr_sine_respects_padding():
    mask = torch.zeros(2, 3, dtype=torch.bool)
    mask[:, 2] = True  # last column is padding: x is normalised over the 2 image columns
    pos = detr_sine(mask)
    assert pos[129, 0, 0].item() == pytest.approx(-1.0, abs=1e-5)  # cos(π) at column 0 of 2
    torch.testing.assert_close(pos[128:, :, 2], pos[128:, :, 1])  # x stops counting in the padding
    y_of_padding = torch.tensor([0.0, 1.0]).repeat(64)  # a fully padded column counts no rows: y = 0
    torch.testing.assert_close(pos[:128, 0, 2], y_of_padding)
    with pytest.raises(ValueError, match="every position"):
        detr_sine(torch.ones(2, 3, dtype=torch.bool))


def test_detr_feature_size_follows_the_preprocessing():
    assert detr_resized_size(480, 640) == (800, 1066)
    assert detr_feature_size(480, 640) == (25, 34)
    assert detr_resized_size(1000, 3000) == (444, 1332)  # longer side capped at 1333
    assert detr_feature_size(1000, 3000) == (14, 42)
    assert detr_feature_size(800, 800) == (25, 25)
    assert detr_resized_size(640, 480) == (1066, 800)
    with pytest.raises(ValueError, match="10000"):
        detr_feature_size(20_000, 600)


@pytest.mark.parametrize(("h", "w"), [(800, 1066), (800, 1201), (444, 1332), (33, 65)])
def test_stride_32_matches_a_resnet_shaped_stack(h, w):
    """ResNet's stem (7×7/2 conv, 3×3/2 max-pool) and three stride-2 3×3 stages each round up."""
    stack = torch.nn.Sequential(
        torch.nn.Conv2d(1, 1, 7, stride=2, padding=3),
        torch.nn.MaxPool2d(3, stride=2, padding=1),
        *[torch.nn.Conv2d(1, 1, 3, stride=2, padding=1) for _ in range(3)],
    )
    with torch.no_grad():
        out = stack(torch.zeros(1, 1, h, w))
    assert tuple(out.shape[-2:]) == (math.ceil(h / 32), math.ceil(w / 32))


def test_detr_feature_mask_marks_the_padding():
    mask = detr_feature_mask((600, 800), (800, 1066))
    assert mask.shape == (25, 34)
    assert int((~mask[:, 0]).sum()) == 19  # rows whose nearest pixel row is < 600
    assert not mask[0, 0] and mask[-1, -1]
    with pytest.raises(ValueError, match="contain"):
        detr_feature_mask((800, 800), (700, 800))


def test_similarity_to_point_peaks_at_the_point():
    pos = detr_sine(torch.zeros(10, 12, dtype=torch.bool))
    sim = similarity_to_point(pos, 4, 7)
    assert sim[4, 7].item() == pytest.approx(1.0, abs=1e-6)
    assert sim.argmax().item() == 4 * 12 + 7
    assert detr_channel_name(0) == "y sin, pair 0" and detr_channel_name(131) == "x cos, pair 1"


# --- RoPE ------------------------------------------------------------------------------------------


def test_rope_golden_rotation():
    torch.testing.assert_close(
        apply_rope(torch.tensor([[1.0, 0.0]]), torch.tensor([1])), torch.tensor([[math.cos(1), math.sin(1)]])
    )
    x = torch.tensor([[0.0, 0.0, 1.0, 0.0]], dtype=torch.float64)  # pair 1 turns at θ = 10000^(-2/4) = 0.01
    expected = torch.tensor([[0.0, 0.0, math.cos(1.0), math.sin(1.0)]], dtype=torch.float64)
    torch.testing.assert_close(apply_rope(x, torch.tensor([100])), expected)


def test_rope_score_depends_only_on_relative_offset():
    gen = torch.Generator().manual_seed(0)
    q, k = (
        torch.randn(64, generator=gen, dtype=torch.float64),
        torch.randn(64, generator=gen, dtype=torch.float64),
    )
    scores = rope_scores(q, k, 200)
    _, _, spreads = scores_by_offset(scores)
    assert spreads.max() < 1e-10 * scores.abs().max()
    assert scores[0, 0].item() == pytest.approx(float(q @ k))  # offset 0: no rotation left
    pe = sinusoidal(200, 64).double()  # an added absolute encoding has no such property
    assert scores_by_offset((q + pe) @ (k + pe).T)[2].max() > 1.0


def test_rope_preserves_norms_and_checks_sizes():
    x = torch.randn(10, 32, dtype=torch.float64)
    rotated = apply_rope(x, torch.arange(10))
    torch.testing.assert_close(rotated.norm(dim=-1), x.norm(dim=-1))
    with pytest.raises(ValueError, match="even"):
        apply_rope(torch.randn(3, 5), torch.arange(3))


# --- what position does to MiniLM's attention ------------------------------------------------------


def test_shuffled_order_keeps_special_tokens():
    order = shuffled_order(10, seed=3)
    assert order[0] == 0 and order[-1] == 9
    assert sorted(order) == list(range(10)) and not np.array_equal(order, np.arange(10))
    assert np.array_equal(shuffled_order(4, seed=0)[[0, 3]], [0, 3])
    assert np.array_equal(shuffled_order(3), np.arange(3))


def test_without_positions_shuffling_only_permutes_attention(minilm):
    encoding = minilm.encode("The quick brown fox jumps over the lazy dog.")
    variants = run_variants(minilm, encoding.ids, encoding.tokens, seed=1)
    t = len(encoding.ids)
    for variant in variants.values():
        assert (variant.maps.n_layers, variant.maps.n_heads, *variant.maps.shape) == (6, 12, t, t)
        for layer in range(6):
            np.testing.assert_allclose(variant.maps.layer(layer).sum(-1), 1.0, atol=1e-5)
    assert permutation_gap(variants["positions removed"], variants["shuffled, positions removed"]) < 1e-4
    assert permutation_gap(variants["positions intact"], variants["shuffled"]) > 0.1
    intact, removed = variants["positions intact"], variants["positions removed"]
    assert max(np.abs(intact.maps.layer(i) - removed.maps.layer(i)).max() for i in range(6)) > 0.1
    shuffled = variants["shuffled"]
    assert [shuffled.tokens[i] for i in np.argsort(shuffled.order)] == encoding.tokens
    in_order = shuffled.head(0, 2, original_order=True)  # row/column i is original token i
    first, second = shuffled.order[1], shuffled.order[2]  # the original tokens seen at positions 1 and 2
    assert in_order[first, second] == shuffled.head(0, 2)[1, 2]
    previous = {name: offset_share(v.head(0, 2), -1) for name, v in variants.items()}  # a previous-token head
    assert previous["positions intact"] > 0.9 and previous["shuffled"] > 0.9
    assert previous["positions removed"] < 0.5
    stats = intact.statistics()
    assert stats["entropy"].shape == (6, 12)
    assert stats["mean_distance"][0, 2] == pytest.approx(1.0, abs=0.1)  # one position back, nearly always


def test_head_statistics_of_uniform_diagonal_and_previous_token_heads():
    uniform = torch.full((4, 4), 0.25)
    diagonal = torch.eye(4)
    previous = torch.eye(4).roll(-1, dims=1)  # query i attends to key i - 1 ...
    previous[0] = torch.tensor([1.0, 0, 0, 0])  # ... and the first query to itself
    stats = head_statistics(torch.stack([uniform, diagonal, previous])[None])  # (1, 3, 4, 4)
    assert stats["entropy"].shape == (1, 3)
    np.testing.assert_allclose(stats["entropy"][0], [2.0, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(stats["mean_distance"][0], [(6 + 4 + 4 + 6) / 16, 0.0, 3 / 4])
    np.testing.assert_allclose(stats["first_share"][0], [0.25, 0.25, 0.5])
    np.testing.assert_allclose(stats["last_share"][0], [0.25, 0.25, 0.0])
    np.testing.assert_allclose(stats["max_weight"][0], [0.25, 1.0, 1.0])


def test_offset_share_reads_one_diagonal():
    probs = np.eye(4)[[0, 0, 1, 2]]  # every query but the first attends to the previous key
    assert offset_share(probs, -1) == pytest.approx(1.0)
    assert offset_share(probs, 0) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="offset"):
        offset_share(probs, 4)


# --- figures ---------------------------------------------------------------------------------------


def test_figures_have_the_data_shapes():
    pe = sinusoidal(20, 8).numpy()
    fig = encoding_heatmap(pe[4:14], row_start=4)  # a window of the table, placed at its positions
    assert np.asarray(fig.data[0].z).shape == (10, 8) and list(fig.data[0].y) == list(range(4, 14))
    assert masked_colour(fig.layout) is not None and fig.data[0].zmin == -fig.data[0].zmax
    fig = channel_maps(detr_sine(torch.zeros(4, 5, dtype=torch.bool)).numpy(), [0, 128])
    assert len(fig.data) == 2 and np.asarray(fig.data[1].z).shape == (4, 5)
    assert fig.data[0].coloraxis == fig.data[1].coloraxis == "coloraxis"
    fig = statistic_comparison({"a": np.zeros((6, 12)), "b": np.ones((6, 12))}, "entropy")
    assert len(fig.data) == 2 and fig.layout.coloraxis.cmax == 1
    assert fig.data[0].texttemplate == "%{z:.2f}"  # values printed rounded
    fig = point_similarity_map(np.eye(3), (1, 2))
    assert fig.data[0].type == "heatmap" and (fig.data[1].x, fig.data[1].y) == ((2,), (1,))
    fig = where_added_diagram(3)
    texts = [a.text for a in fig.layout.annotations]
    assert texts.count("V = src") == 3 and texts.count("Q = src + pos") == 3


def test_big_tables_are_rasters_that_keep_a_narrow_axis():
    assert raster_side((8192, 8192)) == RASTER_SIDE  # square: the core's own side
    factor = math.ceil(8192 / raster_side((8192, 4096)))  # the pooling the raster will apply
    assert factor > 1 and math.ceil(8192 / factor) * math.ceil(4096 / factor) <= RASTER_SIDE**2
    tall = encoding_heatmap(sinusoidal(8192, 16).numpy())
    assert tall.data[0].type == "image"
    assert raster_indices(tall).shape == (8192, 16)  # every channel kept, not pooled to 2 columns
    sim = similarity_heatmap(np.zeros((300, 300), dtype=np.float32))
    assert sim.data[0].type == "image"


def test_figures_reject_bad_shapes():
    with pytest.raises(ValueError, match="2-D"):
        encoding_heatmap(np.zeros(5))
    with pytest.raises(ValueError, match="does not match"):
        encoding_heatmap(np.zeros((5, 4)), row_labels=list("abcd"))
    with pytest.raises(ValueError, match="square"):
        similarity_heatmap(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="channels"):
        channel_maps(np.zeros((4, 3, 3)), [9])
    with pytest.raises(ValueError, match="same"):
        statistic_comparison({"a": np.zeros((2, 3)), "b": np.zeros((3, 2))}, "x")


# --- the page --------------------------------------------------------------------------------------

TABS = [
    "Sinusoidal",
    "Learned (MiniLM)",
    "DETR 2-D sine",
    "Rotary (RoPE)",
    "RoPE on a real model",
    "What position does to attention",
    "Where it is added",
]


def open_tab(at, label: str):
    """Open a tab as a click does: the stateful tabs rerun the page with only that tab's section."""
    at.session_state["pos_tab"] = label
    at.run()
    assert not at.exception, at.exception
    return at


def values(array) -> np.ndarray:
    """A figure's array as sent: a list, or plotly's typed array {"dtype", "bdata"}."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"]))
    return np.asarray(array)


def png_shape(trace: dict) -> tuple[int, int]:
    image = Image.open(io.BytesIO(base64.b64decode(trace["source"].split(",", 1)[1])))
    return image.height, image.width


@pytest.fixture(scope="module")
def page():
    at = AppTest.from_file(str(PAGE), default_timeout=120).run()
    assert not at.exception
    return at


@pytest.mark.slow
def test_page_runs_and_shows_every_section(page):
    assert not page.error
    assert [t.label for t in page.tabs] == TABS
    assert len(page.get("plotly_chart")) == 3  # only the open tab is drawn: encoding, waves, similarity
    charts, body, metrics = 0, [], {}
    for label in TABS:
        open_tab(page, label)
        assert not page.error, (label, [e.value for e in page.error])
        charts += len(page.get("plotly_chart"))
        body += [m.value for m in page.markdown]
        metrics |= {m.label: m.value for m in page.metric}
    assert charts >= 18
    assert metrics["one-hot(N) @ W equals W[p] (exactly)"] == "yes"
    for claim in ("S6", "S20", "S21"):
        assert claim in " ".join(body)
    open_tab(page, "Sinusoidal")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("tab", "key", "value", "needle"),
    [
        ("Sinusoidal", "sin_n", 9000, "8192"),
        ("Sinusoidal", "sin_d", 7, "even"),
        ("Sinusoidal", "sin_d", 5000, "4096"),
        ("Rotary (RoPE)", "rope_n", 2000, "1024"),
        ("Rotary (RoPE)", "rope_d", 9, "even"),
        ("DETR 2-D sine", "detr_h", 20_000, "10000"),
    ],
)
def test_page_reports_sizes_out_of_range(page, tab, key, value, needle):
    open_tab(page, tab)
    widget = page.number_input(key=key)
    before = widget.value
    widget.set_value(value).run()
    assert not page.exception
    assert any(needle in e.value for e in page.error), [e.value for e in page.error]
    assert open_tab(page, "Where it is added").get("plotly_chart")  # the other sections still draw
    open_tab(page, tab).number_input(key=key).set_value(before).run()
    assert not page.exception and not page.error


@pytest.mark.slow
def test_a_long_similarity_is_sent_as_an_image_with_a_zoom_window(page):
    open_tab(page, "Sinusoidal")
    page.number_input(key="sin_d").set_value(16).run()
    page.number_input(key="sin_n").set_value(8192).run()
    assert not page.exception and not page.error
    chart = next(c for c in page.get("plotly_chart") if c.proto.id.endswith("sin_sim_raster"))
    assert len(chart.proto.spec) < 2_000_000  # not 67 M cells as JSON
    whole = json.loads(chart.proto.spec)
    assert whole["data"][0]["type"] == "image" and png_shape(whole["data"][0]) == (1024, 1024)
    assert "8192 × 8192" in whole["layout"]["title"]["text"]
    encoding = figure(page, "sin_pe_raster")
    assert encoding["data"][0]["type"] == "image" and png_shape(encoding["data"][0]) == (8192, 16)
    page.number_input(key="sin_sim_zr").set_value(4000).run()
    zoom = figure(page, "sin_sim_zoom")
    assert zoom["data"][0]["type"] == "heatmap" and values(zoom["data"][0]["y"])[0] == 4000
    assert "m 4000–4127, n 0–127" in zoom["layout"]["title"]["text"]
    page.number_input(key="sin_n").set_value(128).run()
    page.number_input(key="sin_d").set_value(128).run()
    assert not page.exception and not page.error


@pytest.fixture
def forward_calls(monkeypatch):
    return count_calls(monkeypatch, (models.bert.BertModel, "forward"))


@pytest.mark.slow
def test_view_controls_never_rerun_the_model(forward_calls):
    at = AppTest.from_file(str(PAGE), default_timeout=120)
    at.session_state["learned_text"] = "Forwards are counted on this learned sentence."
    at.session_state["attn_text"] = "Forwards are counted on this attention sentence."
    open_tab(at, "Learned (MiniLM)")
    assert len(forward_calls) == 1  # the sentence's embedding, once
    at.multiselect(key="learned_channels").set_value([3, 4]).run()
    assert len(figure(at, "learned_channels_waves")["data"]) == 2
    at.number_input(key="learned_table_zr").set_value(200).run()
    assert values(figure(at, "learned_table_zoom")["data"][0]["y"])[0] == 200
    assert len(forward_calls) == 1
    open_tab(at, "What position does to attention")
    assert len(forward_calls) == 5  # intact, removed, shuffled, shuffled without positions
    at.selectbox(key="attn_layer").set_value(3).run()
    at.selectbox(key="attn_head").set_value(7).run()
    at.checkbox(key="attn_reorder").check().run()
    assert figure(at, "attn_map_shuffled")["layout"]["title"]["text"] == "shuffled: layer 3, head 7"
    assert figure(at, "attn_stat_entropy")["data"][0]["texttemplate"] == "%{z:.2f}"
    open_tab(at, "DETR 2-D sine")
    at.multiselect(key="detr_channels").set_value([5]).run()
    at.number_input(key="detr_y").set_value(2).run()
    assert figure(at, "detr_point")["data"][1]["y"] == [2]
    open_tab(at, "Learned (MiniLM)")
    assert not at.exception and not at.error
    assert len(forward_calls) == 5  # no control, and no return to a tab, reruns the model


@pytest.mark.slow
def test_page_rejects_a_batch_larger_than_detr_makes(page):
    open_tab(page, "DETR 2-D sine")
    page.checkbox(key="detr_pad").check().run()
    page.number_input(key="detr_pad_h").set_value(2000).run()
    assert not page.exception
    assert any("1333" in e.value for e in page.error)
    page.number_input(key="detr_pad_h").set_value(1333).run()
    assert not page.error
    assert any("padded to 42 × 42" in m.value for m in page.markdown)
    page.checkbox(key="detr_pad").uncheck().run()


@pytest.mark.slow
def test_page_asks_for_a_sentence_instead_of_failing(page):
    open_tab(page, "What position does to attention")
    page.text_input(key="attn_text").set_value("   ").run()
    assert not page.exception
    assert any("Type a sentence" in w.value for w in page.warning)
    page.text_input(key="attn_text").set_value("Order matters.").run()
    assert not page.exception and not page.warning


@pytest.mark.slow
def test_page_reads_an_uploaded_image_size_upright_and_refuses_bad_files(page):
    open_tab(page, "DETR 2-D sine")
    img = Image.fromarray(np.zeros((300, 500, 3), dtype=np.uint8))  # 500 wide, 300 tall
    exif = Image.Exif()
    exif[0x0112] = 6  # a phone photo taken upright: stored on its side
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif)
    page.file_uploader(key="detr_upload").set_value(("phone.jpg", buf.getvalue(), "image/jpeg")).run()
    assert not page.exception and not page.error
    assert any("phone.jpg: 500 × 300 pixels" in c.value for c in page.caption)
    page.file_uploader(key="detr_upload").set_value(("notes.png", b"not an image", "image/png")).run()
    assert not page.exception
    assert any("notes.png is not an image" in e.value for e in page.error)
    page.file_uploader(key="detr_upload").set_value(None).run()
    assert not page.exception and not page.error
    assert page.get("plotly_chart")
