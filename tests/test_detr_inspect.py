"""The share of a DETR attention map inside a box (`share_inside_box`), on hand-made maps."""

import numpy as np
import pytest

from models.detr.inspect import share_inside_box

CELL = (16, 16)
IMAGE = (64, 96)  # (H, W): a 4 x 6 feature map of 16-pixel cells


def test_all_mass_inside_the_box_gives_one():
    att = np.zeros((4, 6))
    att[1, 2] = 0.6
    att[2, 3] = 0.4
    assert share_inside_box(att, (32, 16, 64, 48), CELL, IMAGE) == pytest.approx(1.0)
    assert share_inside_box(att, (0, 0, 96, 64), CELL, IMAGE) == pytest.approx(1.0)


def test_uniform_map_gives_the_box_area_fraction_on_a_cell_aligned_box():
    att = np.full((4, 6), 1 / 24)
    # rows 1..2, columns 2..4: 2 x 3 of 24 cells
    assert share_inside_box(att, (32, 16, 80, 48), CELL, IMAGE) == pytest.approx(6 / 24)


def test_mass_outside_the_box_gives_zero():
    att = np.zeros((4, 6))
    att[0, 0] = att[3, 5] = 0.5
    assert share_inside_box(att, (32, 16, 80, 48), CELL, IMAGE) == 0.0
    assert share_inside_box(att, (200, 200, 300, 300), CELL, IMAGE) == 0.0  # a box off the image
    assert share_inside_box(np.zeros((4, 6)), (0, 0, 96, 64), CELL, IMAGE) == 0.0  # an empty map


def test_each_cell_is_spread_evenly_over_its_pixels():
    att = np.zeros((2, 2))
    att[0, 1] = 0.75  # top-right cell covers x 16..32, y 0..16
    att[1, 0] = 0.25
    assert share_inside_box(att, (16, 0, 32, 16), CELL, (32, 32)) == pytest.approx(0.75)
    assert share_inside_box(att, (16, 0, 24, 16), CELL, (32, 32)) == pytest.approx(0.375)  # half the cell
    # a box over part of a cell that misses its centre still holds that part of its mass
    assert share_inside_box(att, (0, 17, 7.5, 32), CELL, (32, 32)) == pytest.approx(0.25 * 15 / 16 * 7.5 / 16)


def test_cells_are_cut_at_the_image_edge():
    """A 40-pixel-wide input at stride 16 gives 3 columns; the last one has only 8 pixels of image."""
    att = np.zeros((1, 3))
    att[0, 2] = 1.0
    assert share_inside_box(att, (32, 0, 40, 16), CELL, (16, 40)) == pytest.approx(1.0)
    assert share_inside_box(att, (32, 0, 36, 16), CELL, (16, 40)) == pytest.approx(0.5)


def test_fractional_cells_as_on_a_resized_image():
    """The page measures cells in pixels of the original image: 16-pixel cells of a 2x-downsized input."""
    att = np.full((3, 3), 1 / 9)
    assert share_inside_box(att, (0, 0, 48, 48), (16 * 2.5, 16 * 2.5), (120, 120)) == pytest.approx(0.16)


def test_matches_counting_pixels_on_an_integer_box():
    """The reference: every cell's mass copied evenly onto its stride x stride pixels, then counted."""
    rng = np.random.default_rng(0)
    att = rng.random((5, 7))
    att /= att.sum()
    pixels = np.kron(att, np.ones((8, 8))) / 64  # (40, 56)
    for x0, y0, x1, y1 in [(3, 5, 30, 21), (0, 0, 56, 40), (17, 9, 18, 39), (50, 1, 56, 2)]:
        expected = pixels[y0:y1, x0:x1].sum()
        assert share_inside_box(att, (x0, y0, x1, y1), (8, 8), (40, 56)) == pytest.approx(expected)
