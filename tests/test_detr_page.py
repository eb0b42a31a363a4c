"""The DETR page: inspection arrays against the model's outputs, the figures' shapes, the page in AppTest
(clicks sent as the browser sends them, and the model run once whatever the user changes)."""

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save
from streamlit.proto.WidgetStates_pb2 import WidgetState
from streamlit.testing.v1 import AppTest

import models.detr.detr
from models.detr.api import SMALL_CONFIG, run_detr
from models.detr.box_ops import box_xyxy_to_cxcywh
from models.detr.inspect import (
    cell_extent,
    detections,
    encoder_maps,
    is_object,
    match_ground_truth,
    positional_encoding,
    scores_labels,
    untrained,
    upsample,
)
from models.detr.matcher import hungarian_match
from models.detr.preprocess import postprocess, preprocess
from models.detr.scenes import make_scene
from tests.conftest import count_calls
from tests.test_images import png_bomb
from ui.detr.common import TABS
from viz.detr import (
    attention_overlay,
    background,
    detections_figure,
    map_grid,
    matching_heatmap,
    overlay_rgb,
)

PAGE = str(Path(__file__).parents[1] / "app_pages" / "detr.py")
SMALL = "Untrained small DETR (random weights)"


@pytest.fixture(scope="module")
def small():
    return untrained(SMALL_CONFIG)


@pytest.fixture(scope="module")
def scene():
    return make_scene(7, 96)


@pytest.fixture(scope="module")
def result(small, scene):
    return run_detr(small, scene.image, threshold=0.0)


@pytest.fixture(scope="module")
def reference(small, scene):
    """The model's own outputs on the scene: (batch, DetrOutput with capture)."""
    batch = preprocess([scene.image], SMALL_CONFIG.min_size, SMALL_CONFIG.max_size)
    with torch.no_grad():
        return batch, small.model(batch.pixels, batch.mask, capture=True)


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def test_encoder_maps_are_rows_and_columns_of_the_attention(result, reference):
    _, out = reference
    probs = out.attentions.encoder[1].probs[0].numpy()  # (nh, HW, HW)
    y, x = 1, 2
    i = y * result.w + x
    np.testing.assert_allclose(
        encoder_maps(result, y, x)[1].reshape(-1, result.h * result.w), probs[:, i], atol=1e-6
    )
    np.testing.assert_allclose(
        encoder_maps(result, y, x, reverse=True)[1].reshape(-1, result.h * result.w),
        probs[:, :, i],
        atol=1e-6,
    )
    np.testing.assert_allclose(encoder_maps(result, y, x).sum((-1, -2)), 1, atol=1e-5)  # nothing is padding
    with pytest.raises(ValueError, match="outside the 8 x 8 feature map"):
        encoder_maps(result, 8, 0)


def test_encoder_is_kept_as_q_and_k_and_the_whole_maps_are_computed_on_request(result, reference):
    _, out = reference
    family = result.encoder_attention
    assert family.probs is None  # the fused kernel ran: no map was kept
    assert family.q.shape == (SMALL_CONFIG.num_encoder_layers, SMALL_CONFIG.n_heads, 64, 16)
    whole = np.stack([r.probs[0].numpy() for r in out.attentions.encoder])  # (E, nh, HW, HW)
    np.testing.assert_allclose(result.encoder.reshape(whole.shape), whole, atol=1e-6)
    assert result.nbytes >= family.nbytes + result.decoder_cross.nbytes + result.decoder_self.nbytes
    cross = np.stack([r.probs[0].numpy() for r in out.attentions.decoder_cross])
    np.testing.assert_allclose(result.decoder_cross.reshape(cross.shape), cross, atol=1e-6)


def test_cells_detections_and_positions_follow_the_model(small, result, reference):
    batch, out = reference
    assert result.input_size == (128, 128) and result.stride == 16
    assert cell_extent(result) == (16 * 96 / 128,) * 2
    det = postprocess(out, batch.orig_sizes, threshold=0.0)[0]
    scores, labels = scores_labels(result)
    np.testing.assert_allclose(scores[det.query_index.numpy()], det.scores.numpy(), atol=1e-6)
    np.testing.assert_array_equal(labels[det.query_index.numpy()], det.labels.numpy())
    threshold = float(np.median(scores))
    kept = detections(result, threshold)
    assert (scores[kept] >= threshold).all() and (np.diff(scores[kept]) <= 0).all()
    assert len(kept) == (scores >= threshold).sum()
    np.testing.assert_array_equal(
        is_object(result), out.pred_logits[0].argmax(-1).numpy() != SMALL_CONFIG.num_classes
    )
    _, _, pos = small.model.backbone(batch.pixels, batch.mask)  # what the encoder adds to Q and K
    np.testing.assert_allclose(positional_encoding(result, SMALL_CONFIG.d_model), pos[0].numpy(), atol=1e-6)


def test_matching_is_the_hungarian_assignment(result, scene, reference):
    m = match_ground_truth(result, scene.boxes, scene.labels)
    n, k = SMALL_CONFIG.num_queries, len(scene.labels)
    assert m.total.shape == (n, k) and len(m.pred) == k
    np.testing.assert_allclose(m.total, m.cls + m.bbox + m.giou, atol=1e-5)
    scale = torch.tensor([96.0] * 4)
    targets = [
        {
            "labels": torch.from_numpy(scene.labels),
            "boxes": box_xyxy_to_cxcywh(torch.from_numpy(scene.boxes) / scale),
        }
    ]
    pred = box_xyxy_to_cxcywh(torch.from_numpy(result.layer_boxes[-1]) / scale)
    _, out = reference  # the matcher on the model's own logits
    rows, cols = hungarian_match(out.pred_logits, pred[None], targets)[0]
    assert sorted(zip(m.pred.tolist(), m.gt.tolist())) == sorted(zip(rows.tolist(), cols.tolist()))
    empty = match_ground_truth(result, np.zeros((0, 4)), np.zeros(0, dtype=np.int64))
    assert empty.total.shape == (n, 0) and len(empty.pred) == 0


def test_upsample_keeps_constants_and_shape():
    out = upsample(np.full((2, 3, 4, 5), 0.25, dtype=np.float32), (8, 10))
    assert out.shape == (2, 3, 8, 10)
    np.testing.assert_allclose(out, 0.25)


def test_map_grid_tiles_every_map_scaled_to_its_maximum():
    rng = np.random.default_rng(0)
    maps = rng.random((3, 4, 5, 6)).astype(np.float32)
    bg = background(np.zeros((40, 48, 3), dtype=np.uint8))
    fig = map_grid(bg, maps, ["a", "b", "c"], list("wxyz"), (8.0, 8.0))
    z = np.asarray(fig.data[0].z)
    assert z.shape == (3 * 6 - 1, 4 * 7 - 1) and z.dtype == np.uint8 and fig.data[0].zmax == 255
    np.testing.assert_allclose(z[6:11, 14:20] / 255, maps[1, 2] / maps[1, 2].max(), atol=0.5 / 255)
    assert (z[5] == 0).all() and (z[:, 6] == 0).all()  # gaps between tiles, drawn transparent
    targets = fig.data[1]  # one click target per tile, row-major, at the tile's centre
    assert len(targets.x) == 12 and (targets.x[6], targets.y[6]) == (2 * 7 * 8 + 24, 1 * 6 * 8 + 20)
    np.testing.assert_allclose(np.asarray(targets.customdata)[6], [1, 2, maps[1, 2].max()], rtol=1e-6)
    assert targets.text[6] == "b, y"
    assert len(fig.layout.images) == 12
    named = map_grid(bg, maps, ["a", "b", "c"], list("wxyz"), (8.0, 8.0), col_ids=[5, 9, 2, "mean"])
    assert named.data[1].customdata[7][:2] == [1, "mean"]  # what a click on tile (1, 3) sends back
    with pytest.raises(ValueError, match="labels"):
        map_grid(bg, maps, ["a"], list("wxyz"), (8.0, 8.0))
    with pytest.raises(ValueError, match="rows, cols, h, w"):
        map_grid(bg, maps[0], ["a"], list("wxyz"), (8.0, 8.0))


def test_overlay_figures_and_png():
    image = np.full((40, 48, 3), 100, dtype=np.uint8)
    bg = background(image)
    attn = np.zeros((5, 6), dtype=np.float32)
    attn[2, 3] = 1
    fig = attention_overlay(bg, attn, (8.0, 8.0), 0.5, box=(0, 0, 10, 10), point=(4, 4))
    assert np.asarray(fig.data[0].z).shape == (5, 6) and fig.data[0].x0 == 4 and fig.data[0].dx == 8
    scale = fig.to_dict()["data"][0]["colorscale"]  # plotly.js knows no "Inferno": the stops must be sent
    assert scale[0] == [0.0, "rgba(0,0,4,0.000)"] and scale[-1] == [1.0, "rgba(252,255,164,1.000)"]
    with pytest.raises(ValueError, match="2-D"):
        attention_overlay(bg, attn[None], (8.0, 8.0))
    np.testing.assert_array_equal(overlay_rgb(image, attn, (40, 48), opacity=0.0), image)
    hot = overlay_rgb(image, attn, (40, 48), opacity=1.0)
    assert hot.shape == image.shape and hot[20, 28].sum() > hot[2, 2].sum()
    blocks = overlay_rgb(image, attn, (40, 48), opacity=1.0, smooth=False)
    np.testing.assert_array_equal(blocks[:16], image[:16])  # rows 0-1 of the map are 0: untouched
    assert (blocks[16:24, 24:32] == blocks[16, 24]).all() and blocks[16, 24].sum() > 600  # one bright cell
    fig = detections_figure(bg, [[1, 2, 10, 12], [5, 5, 30, 30]], ["a", "b"], [0, 1], selected=1, ids=[7, 3])
    assert len(fig.data) == 2 and fig.data[1].line.width > fig.data[0].line.width
    assert set(fig.data[1].customdata) == {3}  # every point of a box's outline names its query
    with pytest.raises(ValueError, match="2 boxes for 1 labels"):
        detections_figure(bg, [[1, 2, 10, 12], [5, 5, 30, 30]], ["a"], [0])


def test_matching_costs_are_drawn_by_the_core_with_rounded_values():
    cost = np.array([[0.123456, -1.5], [2.25, 0.0], [1.0, 3.0]])
    fig = matching_heatmap(cost, [1, 0], [0, 1], ["q0", "q1", "q2"], ["a", "b"], title="sum")
    assert fig.data[0].texttemplate == "%{z:.2f}" and fig.data[0].zmid == 0
    drawn = [shape for shape in fig.layout.shapes if shape.layer != "below"]  # not the mask's backing
    outlined = [(shape.x0 + 0.5, shape.y0 + 0.5) for shape in drawn]  # (column, row)
    assert outlined == [(0, 1), (1, 0)]  # the assignment's cells
    with pytest.raises(ValueError, match="expected \\(3, 3\\)"):
        matching_heatmap(cost, [], [], ["q0", "q1", "q2"], ["a", "b", "c"])


def chart_element(at: AppTest, key: str):
    for element in at.get("plotly_chart"):
        if element.proto.id.endswith(key):
            return element
    raise KeyError(f"no chart {key}; have {[e.proto.id[-20:] for e in at.get('plotly_chart')]}")


def chart(at: AppTest, key: str) -> dict:
    return json.loads(chart_element(at, key).proto.spec)


def click(at: AppTest, key: str, customdata) -> AppTest:
    """Select a point of chart `key` as the browser does: the chart's selection state, with the point's
    customdata (a numpy row arrives as {"0": a, "1": b}), sent with every other widget's state."""
    states = at._tree.get_widget_states()
    state = WidgetState(id=chart_element(at, key).proto.id)
    point = {"curve_number": 1, "point_number": 0, "point_index": 0, "x": 0, "y": 0, "customdata": customdata}
    state.string_value = json.dumps(
        {"selection": {"points": [point], "point_indices": [0], "box": [], "lasso": []}}
    )
    states.widgets.append(state)
    return at._run(states)


def title(at: AppTest, key: str) -> str:
    return chart(at, key)["layout"]["title"]["text"]


def z_shape(spec: dict) -> tuple[int, ...]:
    """Shape of a figure's first heatmap z, whether plotly sent it as a list or as a typed array."""
    z = spec["data"][0]["z"]
    if isinstance(z, dict):  # {"dtype", "bdata", "shape": "h, w"}
        return tuple(int(s) for s in str(z["shape"]).split(","))
    return np.asarray(z, dtype=float).shape


@pytest.fixture
def forwards(monkeypatch) -> list:
    """Every DETR forward pass from here on, counted."""
    return count_calls(monkeypatch, (models.detr.detr.DETR, "forward"))


def open_tab(at: AppTest, label: str) -> AppTest:
    """Open the page's tab `label` as a click does (the page reruns with that tab open)."""
    at.session_state["dp_tab"] = label
    return at.run()


@pytest.fixture
def app() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    at.sidebar.radio(key="dp_model_source").set_value(SMALL).run()
    at.radio(key="dp_image_source").set_value("Upload an image").run()
    return at


def test_page_without_trained_weights_says_so():
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    assert not at.exception
    default_shipped = (Path(__file__).parents[1] / "weights" / "detr-shapes" / "model.safetensors").exists()
    assert default_shipped or "No trained default detector is shipped yet" in at.sidebar.warning[0].value


def test_upload_choose_detection_change_layer_and_head(app):
    at = app
    at.file_uploader(key="dp_upload").set_value(
        ("scene.png", png(make_scene(3, 96).image), "image/png")
    ).run()
    assert not at.exception and not at.error
    h = w = 128 // 16  # the small model is DC5 (stride 16) at 128 pixels
    assert z_shape(chart(at, "dp_overlay")) == (h, w)
    at.slider(key="dp_threshold").set_value(0.0).run()  # every query is a detection: the strip shows 12
    assert z_shape(chart(at, "dp_strip")) == (h, 12 * (w + 1) - 1)
    at.selectbox(key="dp_query").set_value(5).run()
    assert title(at, "dp_overlay").startswith("query 5:")  # the select box reran the cross-attention too
    at.selectbox(key="dp_layer").set_value(0)
    at.selectbox(key="dp_head").set_value(2).run()
    assert not at.exception
    overlay = chart(at, "dp_overlay")
    assert z_shape(overlay) == (h, w)
    assert (
        overlay["layout"]["title"]["text"].startswith("query 5:")
        and "layer 0, head 2" in overlay["layout"]["title"]["text"]
    )
    n_layers, n_heads = SMALL_CONFIG.num_decoder_layers, SMALL_CONFIG.n_heads
    assert z_shape(chart(at, "dp_grid")) == (n_layers * (h + 1) - 1, (n_heads + 1) * (w + 1) - 1)
    at.radio(key="dp_resolution").set_value("upsampled (bilinear)").run()
    assert z_shape(chart(at, "dp_overlay")) == (8 * h, 8 * w)
    open_tab(at, "Encoder self-attention")
    at.number_input(key="dp_enc_x").set_value(2)
    at.radio(key="dp_enc_direction").set_value("which positions attend to it").run()
    assert not at.exception
    assert z_shape(chart(at, "dp_enc_click")) == (h, w)
    open_tab(at, "Decoder self-attention")
    assert z_shape(chart(at, "dp_dself")) == (SMALL_CONFIG.num_queries,) * 2
    open_tab(at, "Per-layer predictions")
    assert "S22" in " ".join(c.value for c in at.caption)
    assert not at.exception


@pytest.mark.parametrize(
    "name, data, message",
    [
        ("empty.png", b"", "is empty"),
        ("notes.png", b"this is not a picture", "not an image"),
        ("cut.png", png(make_scene(1, 96).image)[:400], "truncated or corrupt"),
        ("huge.png", png_bomb(7000, 7000), "the limit is 40,000,000"),
        ("bomb.png", png_bomb(12_000, 12_000), "decompression bomb"),
    ],
)
def test_bad_uploads_get_a_message(app, name, data, message):
    app.file_uploader(key="dp_upload").set_value((name, data, "image/png")).run()
    assert not app.exception
    assert message in app.error[0].value
    assert not app.get("plotly_chart")


def test_scene_shows_the_matching_and_a_broken_checkpoint_gets_a_message(tmp_path):
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    at.sidebar.radio(key="dp_model_source").set_value(SMALL).run()
    assert not at.exception
    open_tab(at, "Matching (ground truth)")
    n_objects = len(make_scene(0, 128).labels)
    for key in ("dp_match_class", "dp_match_l1", "dp_match_giou", "dp_match_sum"):
        assert z_shape(chart(at, key)) == (SMALL_CONFIG.num_queries, n_objects)
    bad = tmp_path / "broken.pth"
    bad.write_bytes(b"not a checkpoint")
    at.sidebar.radio(key="dp_model_source").set_value("DETR by name or path").run()
    at.sidebar.text_input(key="dp_ckpt_path").set_value(str(bad)).run()
    assert not at.exception
    assert "Cannot load the checkpoint" in at.sidebar.error[0].value


def test_uploaded_checkpoint_is_loaded(small):
    data = save({k: v.contiguous() for k, v in small.model.state_dict().items()})
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    at.sidebar.radio(key="dp_model_source").set_value("Upload a DETR checkpoint").run()
    at.sidebar.file_uploader(key="dp_ckpt").set_value(
        ("small.safetensors", data, "application/octet-stream")
    ).run()
    assert not at.exception and not at.sidebar.error
    assert "6 classes" in " ".join(c.value for c in at.caption)


def test_clicks_and_controls_never_rerun_the_model(app, forwards):
    at = app
    at.file_uploader(key="dp_upload").set_value(("s.png", png(make_scene(29, 112).image), "image/png")).run()
    assert not at.exception and len(forwards) == 1
    at.slider(key="dp_threshold").set_value(0.0).run()
    strip = chart(at, "dp_strip")["data"][1]["customdata"]  # [row, query, largest weight] per tile
    query = strip[3][1]
    click(at, "dp_strip", strip[3])
    assert at.session_state.dp_query == query and title(at, "dp_overlay").startswith(f"query {query}:")
    click(at, "dp_detections", 7)  # a box's outline carries its query as one number per point
    assert title(at, "dp_overlay").startswith("query 7:")
    click(at, "dp_grid", [1, "mean", 0.5])
    assert title(at, "dp_overlay").endswith("· layer 1, mean over heads")
    click(at, "dp_grid", [2, 3, 0.5])
    assert title(at, "dp_overlay").endswith("· layer 2, head 3")
    open_tab(at, "Encoder self-attention")  # a full run: the detections and the encoder's section
    click(at, "dp_enc_click", {"0": 2, "1": 5, "2": 0.01})  # a numpy row arrives as a dict
    assert title(at, "dp_enc_click").startswith("(2, 5): where it attends")
    at.selectbox(key="dp_enc_head").set_value("max").run()
    at.radio(key="dp_enc_direction").set_value("which positions attend to it").run()
    open_tab(at, "Decoder self-attention")
    at.selectbox(key="dp_dself_layer").set_value(1).run()
    open_tab(at, "Per-layer predictions")
    at.select_slider(key="dp_pred_layer").set_value(0).run()
    open_tab(at, "Positional encoding")
    at.slider(key="dp_pos_channel").set_value(3).run()
    open_tab(at, "Cross-attention")
    at.slider(key="dp_opacity").set_value(0.3).run()  # reruns the sections on screen; the encoder's is closed
    assert not at.exception
    open_tab(at, "Encoder self-attention")
    assert title(at, "dp_enc_click") == "(2, 5): which positions attend to it, layer 2, max over heads"
    assert not at.exception
    assert len(forwards) == 1  # the model ran once for this image, whatever the user changed


def test_a_visit_draws_the_open_tab_only(monkeypatch):
    """A visit computes the detections and the open tab's section; the other tabs' maps are computed when
    their tab is opened, one section each time."""
    import ui.detr.encoder
    import ui.detr.matching
    import ui.detr.positional

    calls = count_calls(
        monkeypatch,
        (ui.detr.encoder, "encoder_maps"),
        (ui.detr.matching, "match_ground_truth"),
        (ui.detr.positional, "positional_encoding"),
    )
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    at.sidebar.radio(key="dp_model_source").set_value(SMALL).run()  # a generated scene
    assert not at.exception and not at.error
    assert [t.label for t in at.tabs] == list(TABS)
    assert chart(at, "dp_overlay") and calls == []  # the cross-attention tab, and nothing of the others
    with pytest.raises(KeyError):
        chart(at, "dp_match_sum")
    for label, computed, key in [
        ("Matching (ground truth)", "match_ground_truth", "dp_match_sum"),
        ("Encoder self-attention", "encoder_maps", "dp_enc_click"),
        ("Positional encoding", "positional_encoding", "dp_pos"),
    ]:
        del calls[:]
        open_tab(at, label)
        assert not at.exception and not at.error, label
        assert calls == [computed], label
        assert chart(at, key), label
        with pytest.raises(KeyError):
            chart(at, "dp_overlay")  # the cross-attention tab is closed
