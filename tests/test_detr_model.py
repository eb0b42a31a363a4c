"""The DETR model and its API: capture equals the fast path, shapes, pre- and post-processing."""

import numpy as np
import pytest
import torch
from PIL import Image

from models.detr.api import DEFAULT_WEIGHTS, Detector, load_detr, run_detr
from models.detr.backbone import FrozenBatchNorm2d
from models.detr.coco import COCO_CLASSES
from models.detr.detr import build_detr
from models.detr.preprocess import postprocess, preprocess, resized_size
from models.detr.scenes import make_scene
from tests.conftest import TINY_DETR as TINY


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_detr(TINY).eval()


def test_capture_equals_fast_path_with_padding(tiny):
    x = torch.randn(2, 3, 64, 96)
    mask = torch.zeros(2, 64, 96, dtype=torch.bool)
    mask[1, :, 64:] = True
    with torch.no_grad():
        fast, slow = tiny(x, mask), tiny(x, mask, capture=True)
    assert fast.attentions is None
    assert torch.allclose(fast.aux_logits, slow.aux_logits, atol=1e-5)
    assert torch.allclose(fast.aux_boxes, slow.aux_boxes, atol=1e-5)


def test_output_shapes_and_attention_records(tiny):
    with torch.no_grad():
        out = tiny(torch.randn(2, 3, 64, 96), torch.zeros(2, 64, 96, dtype=torch.bool), capture=True)
    assert (out.h, out.w) == (2, 3)
    assert out.pred_logits.shape == (2, 6, 5) and out.pred_boxes.shape == (2, 6, 4)
    assert out.aux_logits.shape == (3, 2, 6, 5) and torch.equal(out.aux_logits[-1], out.pred_logits)
    assert ((out.pred_boxes >= 0) & (out.pred_boxes <= 1)).all()
    att = out.attentions
    assert [r.probs.shape for r in att.encoder] == [(2, 4, 6, 6)] * 2
    assert [r.probs.shape for r in att.decoder_self] == [(2, 4, 6, 6)] * 3
    assert [r.probs.shape for r in att.decoder_cross] == [(2, 4, 6, 6)] * 3
    assert torch.allclose(att.decoder_cross[0].probs.sum(-1), torch.ones(2, 4, 6))


def test_frozen_batchnorm_matches_batchnorm_in_eval_and_ignores_the_counter():
    bn = torch.nn.BatchNorm2d(5).eval()
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    bn.weight.data.uniform_(0.5, 1.5)
    frozen = FrozenBatchNorm2d(5)
    frozen.load_state_dict(bn.state_dict())
    x = torch.randn(2, 5, 4, 4)
    assert torch.allclose(frozen(x), bn(x), atol=1e-6)
    assert set(dict(frozen.named_buffers())) == {"weight", "bias", "running_mean", "running_var"}
    assert not list(frozen.parameters())


def test_official_resize_rule():
    assert resized_size(480, 640, 800, 1333) == (800, 1066)
    assert resized_size(400, 1200, 800, 1333) == (444, 1332)  # the longer side caps the size (int() floors)
    assert resized_size(800, 600, 800, 1333) == (1066, 800)
    assert resized_size(128, 128, 128, 256) == (128, 128)


def test_preprocess_pads_and_masks_a_batch():
    a = np.full((40, 60, 3), 255, dtype=np.uint8)
    b = np.zeros((60, 40, 3), dtype=np.uint8)
    batch = preprocess([a, Image.fromarray(b)], min_size=40, max_size=100)
    assert batch.sizes == [(40, 60), (60, 40)] and batch.orig_sizes == [(40, 60), (60, 40)]
    assert batch.pixels.shape == (2, 3, 60, 60) and batch.mask.shape == (2, 60, 60)
    assert batch.mask[0, 40:].all() and not batch.mask[0, :40].any()
    assert batch.mask[1, :, 40:].all() and (batch.pixels[0, :, 40:] == 0).all()
    assert torch.allclose(
        batch.pixels[0, :, 0, 0],
        (1 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225]),
    )
    with pytest.raises(ValueError, match="uint8"):
        preprocess([np.zeros((4, 4), dtype=np.float32)])


def test_postprocess_drops_no_object_and_scales_boxes(tiny):
    with torch.no_grad():
        out = tiny(torch.randn(1, 3, 64, 64), torch.zeros(1, 64, 64, dtype=torch.bool))
    out.aux_logits[-1, 0] = torch.tensor([[5.0, 0, 0, 0, 0]] + [[0, 0, 0, 0, 9.0]] * 5)
    out.aux_boxes[-1, 0, 0] = torch.tensor([0.5, 0.5, 0.5, 0.25])
    (det,) = postprocess(out, [(100, 200)], threshold=0.5)
    assert det.labels.tolist() == [0] and det.query_index.tolist() == [0]
    assert torch.allclose(det.boxes, torch.tensor([[50.0, 37.5, 150.0, 62.5]]))
    (everything,) = postprocess(out, [(100, 200)])
    assert len(everything.scores) == 6  # no NMS, no threshold: one detection per query


def test_run_detr_shapes(tiny):
    result = run_detr(Detector(model=tiny, config=TINY, name="tiny"), make_scene(1, 80).image, threshold=0.0)
    assert result.image_size == (80, 80) and result.input_size == (64, 64)
    assert (result.h, result.w, result.stride) == (2, 2, 32)
    assert result.encoder.shape == (2, 4, 2, 2, 2, 2)
    assert result.decoder_self.shape == (3, 4, 6, 6) and result.decoder_cross.shape == (3, 4, 6, 2, 2)
    assert result.layer_probs.shape == (3, 6, 5) and result.layer_boxes.shape == (3, 6, 4)
    assert len(result.boxes) == len(result.scores) == len(result.label_names) == 6
    assert np.all(np.diff(result.scores) <= 0)
    assert np.allclose(result.decoder_cross.sum(axis=(-2, -1)), 1, atol=1e-5)


def test_coco_names():
    assert len(COCO_CLASSES) == 91 and COCO_CLASSES[1] == "person" and COCO_CLASSES[90] == "toothbrush"
    gaps = [i for i, c in enumerate(COCO_CLASSES) if c == "N/A"]
    assert gaps == [0, 12, 26, 29, 30, 45, 66, 68, 69, 71, 83]


@pytest.mark.skipif(not (DEFAULT_WEIGHTS / "model.safetensors").exists(), reason="weights not trained yet")
def test_default_detector_finds_the_shapes_and_looks_at_them():
    from models.detr.box_ops import box_iou
    from models.detr.scenes import EVAL_SEED_OFFSET

    detector = load_detr()
    assert detector.config.class_names == ["circle", "square", "triangle", "star", "ring", "cross"]
    found = total = 0
    inside, uniform = [], []
    for i in range(10):
        scene = make_scene(EVAL_SEED_OFFSET + i, detector.config.min_size)
        result = run_detr(detector, scene.image, threshold=0.5)
        assert result.decoder_cross.shape[-2:] == (result.h, result.w) == (8, 8)
        iou = box_iou(torch.from_numpy(scene.boxes), torch.from_numpy(result.boxes))[0].numpy()  # (M, D)
        same = scene.labels[:, None] == result.labels[None, :]
        found += int(((iou >= 0.5) & same).any(1).sum())
        total += len(scene.labels)
        for box, q in zip(result.boxes.astype(int), result.query_index):
            att = result.decoder_cross[-1, :, q].mean(0)  # (8, 8), cells of 16 x 16 pixels
            cells = np.kron(att, np.ones((16, 16))) / 256
            inside.append(cells[box[1] : box[3], box[0] : box[2]].sum())
            uniform.append((box[2] - box[0]) * (box[3] - box[1]) / 128**2)
    assert found / total >= 0.6
    assert np.mean(inside) > 3 * np.mean(uniform)
