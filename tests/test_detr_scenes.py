"""The procedural scenes our default detector learns from."""

import numpy as np
import pytest

from models.detr.scenes import EVAL_SEED_OFFSET, SHAPE_CLASSES, make_scene, shape_mask


def test_same_seed_same_scene_and_different_seeds_differ():
    a, b, c = make_scene(7), make_scene(7), make_scene(8)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.boxes, b.boxes)
    assert np.array_equal(a.masks, b.masks) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.image, c.image)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, EVAL_SEED_OFFSET, EVAL_SEED_OFFSET + 1])
def test_boxes_are_the_tight_boxes_of_the_masks(seed):
    s = make_scene(seed, size=96)
    assert s.image.shape == (96, 96, 3) and s.image.dtype == np.uint8
    assert len(s.boxes) == len(s.labels) == len(s.masks) >= 1
    for box, mask in zip(s.boxes, s.masks):
        rows, cols = np.nonzero(mask)
        assert box.tolist() == [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
    assert not (s.masks.sum(0) > 1).any()  # visible masks never overlap


def test_object_counts_classes_and_sizes_vary():
    scenes = [make_scene(i) for i in range(60)]
    counts = [len(s.labels) for s in scenes]
    assert 1 <= min(counts) and max(counts) <= 8 and len(set(counts)) >= 5
    assert set(np.concatenate([s.labels for s in scenes]).tolist()) == set(range(len(SHAPE_CLASSES)))
    widths = np.concatenate([s.boxes[:, 2] - s.boxes[:, 0] for s in scenes])
    assert widths.min() < 20 and widths.max() > 45


def test_shapes_differ_and_ring_has_a_hole():
    masks = {k: shape_mask(k, 64, 32, 32, 20, 0.3) for k in SHAPE_CLASSES}
    areas = {k: int(m.sum()) for k, m in masks.items()}
    assert len(set(areas.values())) == len(SHAPE_CLASSES)
    assert masks["circle"][32, 32] and not masks["ring"][32, 32]
    with pytest.raises(ValueError, match="unknown shape"):
        shape_mask("hexagon", 64, 32, 32, 20, 0.0)
