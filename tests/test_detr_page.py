"""The DETR page: inspection arrays against the model's outputs, the figures' shapes, the page in AppTest."""

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save
from streamlit.testing.v1 import AppTest

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
from tests.test_images import png_bomb
from viz.detr import attention_overlay, background, detections_figure, map_grid, overlay_rgb

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
    assert z.shape == (3 * 6 - 1, 4 * 7 - 1)
    np.testing.assert_allclose(z[6:11, 14:20], maps[1, 2] / maps[1, 2].max(), rtol=1e-6)
    assert np.isnan(z[5]).all() and np.isnan(z[:, 6]).all()  # gaps between tiles
    targets = fig.data[1]  # one click target per tile, row-major, at the tile's centre
    assert len(targets.x) == 12 and (targets.x[6], targets.y[6]) == (2 * 7 * 8 + 24, 1 * 6 * 8 + 20)
    np.testing.assert_allclose(np.asarray(targets.customdata)[6], [1, 2, maps[1, 2].max()], rtol=1e-6)
    assert len(fig.layout.images) == 12
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
    fig = detections_figure(bg, [[1, 2, 10, 12], [5, 5, 30, 30]], ["a", "b"], [0, 1], selected=1)
    assert len(fig.data) == 2 and fig.data[1].line.width > fig.data[0].line.width
    with pytest.raises(ValueError, match="2 boxes for 1 labels"):
        detections_figure(bg, [[1, 2, 10, 12], [5, 5, 30, 30]], ["a"], [0])


def chart(at: AppTest, key: str) -> dict:
    for element in at.get("plotly_chart"):
        if element.proto.id.endswith(key):
            return json.loads(element.proto.spec)
    raise KeyError(f"no chart {key}; have {[e.proto.id[-20:] for e in at.get('plotly_chart')]}")


def z_shape(spec: dict) -> tuple[int, ...]:
    """Shape of a figure's first heatmap z, whether plotly sent it as a list or as a typed array."""
    z = spec["data"][0]["z"]
    if isinstance(z, dict):  # {"dtype", "bdata", "shape": "h, w"}
        return tuple(int(s) for s in str(z["shape"]).split(","))
    return np.asarray(z, dtype=float).shape


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
    at.number_input(key="dp_enc_x").set_value(2)
    at.radio(key="dp_enc_direction").set_value("which positions attend to it").run()
    assert not at.exception
    assert z_shape(chart(at, "dp_enc_click")) == (h, w)
    assert z_shape(chart(at, "dp_dself")) == (SMALL_CONFIG.num_queries,) * 2
    assert "S22" in " ".join(c.value for c in at.caption)


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
    costs = chart(at, "dp_match_costs")
    n_objects = len(make_scene(0, 128).labels)
    assert z_shape({"data": costs["data"][-2:]}) == (SMALL_CONFIG.num_queries, n_objects)
    bad = tmp_path / "broken.pth"
    bad.write_bytes(b"not a checkpoint")
    at.sidebar.radio(key="dp_model_source").set_value("DETR checkpoint by path").run()
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
