"""Positional encodings: golden values, the one-hot identity on MiniLM, DETR parity, RoPE, the page."""

import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from models.bert_positions import input_parts, offset_share, permutation_gap, run_variants, shuffled_order
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
from viz.positional import channel_maps, encoding_heatmap, statistic_comparison, where_added_diagram

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
        assert variant.probs.shape == (6, 12, t, t)
        np.testing.assert_allclose(variant.probs.sum(-1), 1.0, atol=1e-5)
    assert permutation_gap(variants["positions removed"], variants["shuffled, positions removed"]) < 1e-4
    assert permutation_gap(variants["positions intact"], variants["shuffled"]) > 0.1
    assert np.abs(variants["positions intact"].probs - variants["positions removed"].probs).max() > 0.1
    shuffled = variants["shuffled"]
    assert [shuffled.tokens[i] for i in np.argsort(shuffled.order)] == encoding.tokens
    previous = {
        name: offset_share(v.probs[0, 2], -1) for name, v in variants.items()
    }  # a previous-token head
    assert previous["positions intact"] > 0.9 and previous["shuffled"] > 0.9
    assert previous["positions removed"] < 0.5


def test_offset_share_reads_one_diagonal():
    probs = np.eye(4)[[0, 0, 1, 2]]  # every query but the first attends to the previous key
    assert offset_share(probs, -1) == pytest.approx(1.0)
    assert offset_share(probs, 0) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="offset"):
        offset_share(probs, 4)


# --- figures ---------------------------------------------------------------------------------------


def test_figures_have_the_data_shapes():
    pe = sinusoidal(20, 8).numpy()
    fig = encoding_heatmap(pe[::2], positions=np.arange(0, 20, 2))
    assert np.asarray(fig.data[0].z).shape == (10, 8) and list(fig.data[0].y) == list(range(0, 20, 2))
    fig = channel_maps(detr_sine(torch.zeros(4, 5, dtype=torch.bool)).numpy(), [0, 128])
    assert len(fig.data) == 2 and np.asarray(fig.data[1].z).shape == (4, 5)
    fig = statistic_comparison({"a": np.zeros((6, 12)), "b": np.ones((6, 12))}, "entropy")
    assert len(fig.data) == 2 and fig.layout.coloraxis.cmax == 1
    fig = where_added_diagram(3)
    texts = [a.text for a in fig.layout.annotations]
    assert texts.count("V = src") == 3 and texts.count("Q = src + pos") == 3


def test_figures_reject_bad_shapes():
    with pytest.raises(ValueError, match="2-D"):
        encoding_heatmap(np.zeros(5))
    with pytest.raises(ValueError, match="entries"):
        encoding_heatmap(np.zeros((5, 4)), positions=np.arange(4))
    with pytest.raises(ValueError, match="channels"):
        channel_maps(np.zeros((4, 3, 3)), [9])
    with pytest.raises(ValueError, match="same"):
        statistic_comparison({"a": np.zeros((2, 3)), "b": np.zeros((3, 2))}, "x")


# --- the page --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def page():
    at = AppTest.from_file(str(PAGE), default_timeout=120).run()
    assert not at.exception
    return at


@pytest.mark.slow
def test_page_runs_and_shows_every_section(page):
    assert not page.error
    assert len(page.tabs) == 6
    assert len(page.get("plotly_chart")) >= 18
    metrics = {m.label: m.value for m in page.metric}
    assert metrics["one-hot(N) @ W equals W[p] (exactly)"] == "yes"
    body = " ".join(m.value for m in page.markdown)
    for claim in ("S6", "S20", "S21"):
        assert claim in body


@pytest.mark.slow
@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("sin_n", 9000, "8192"),
        ("sin_d", 7, "even"),
        ("sin_d", 5000, "4096"),
        ("rope_n", 2000, "1024"),
        ("rope_d", 9, "even"),
        ("detr_h", 20_000, "10000"),
    ],
)
def test_page_reports_sizes_out_of_range(page, key, value, needle):
    widget = page.number_input(key=key)
    before = widget.value
    widget.set_value(value).run()
    assert not page.exception
    assert any(needle in e.value for e in page.error), [e.value for e in page.error]
    assert page.get("plotly_chart")  # the other sections still draw
    page.number_input(key=key).set_value(before).run()
    assert not page.exception and not page.error


@pytest.mark.slow
def test_page_rejects_a_batch_larger_than_detr_makes(page):
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
    page.text_input(key="attn_text").set_value("   ").run()
    assert not page.exception
    assert any("Type a sentence" in w.value for w in page.warning)
    page.text_input(key="attn_text").set_value("Order matters.").run()
    assert not page.exception and not page.warning


@pytest.mark.slow
def test_page_reads_an_uploaded_image_size_upright_and_refuses_bad_files(page):
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
    assert page.get("plotly_chart")  # the other sections still draw
    page.file_uploader(key="detr_upload").set_value(None).run()
    assert not page.exception and not page.error
