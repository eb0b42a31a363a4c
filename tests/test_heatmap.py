"""The heatmap core: cells for small matrices, a raster whose pixels are the pooled matrix for big ones."""

import json

import numpy as np
import pytest

from viz.heatmap import (
    CELL_BUDGET,
    LEVELS,
    MASK_GREY,
    colour_lut,
    heatmap,
    index_labels,
    label_index,
    masked_colour,
    pool_max,
    quantise,
    raster,
    raster_indices,
)


def test_small_matrix_is_cells_with_hover_from_the_axis_labels():
    tokens = ["the", "cat", "the", "mat"]
    matrix = np.tril(np.full((4, 4), 0.78))  # 0.78 is 0.7799999713897705 in float32
    mask = np.tril(np.ones((4, 4), bool))
    fig = heatmap(matrix, index_labels(tokens), index_labels(tokens), mask=mask, decimals=2)
    trace = fig.data[0]
    assert trace.type == "heatmap"
    z = np.asarray(trace.z)
    assert np.isnan(z[0, 1]) and z[1, 0] == np.float32(0.78)
    assert list(trace.x) == ["0 the", "1 cat", "2 the", "3 mat"]  # repeated tokens stay apart
    assert trace.customdata is None  # no string per cell
    assert trace.texttemplate == "%{z:.2f}"  # printed rounded
    assert masked_colour(fig.layout) == MASK_GREY  # masked cells show the one grey
    assert label_index("12 the") == 12 and label_index(3) == 3


def test_labels_must_match_the_matrix():
    with pytest.raises(ValueError, match="does not match"):
        heatmap(np.zeros((3, 4)), ["a"] * 3, ["b"] * 3)
    with pytest.raises(ValueError, match="2-D"):
        heatmap(np.zeros(3))


def test_pool_max_takes_block_maxima_and_ignores_nan():
    matrix = np.arange(36, dtype=np.float32).reshape(6, 6)
    matrix[0:2, 0:2] = np.nan
    pooled, f = pool_max(matrix, max_side=3)
    assert f == 2 and pooled.shape == (3, 3)
    assert np.isnan(pooled[0, 0])
    assert pooled[0, 1] == 9 and pooled[2, 2] == 35
    ragged, f = pool_max(np.ones((5, 7), np.float32), max_side=3)
    assert f == 3 and ragged.shape == (2, 3)


def test_big_matrix_becomes_a_raster_whose_pixels_are_the_pooled_matrix():
    rng = np.random.default_rng(0)
    t = 1500
    matrix = rng.dirichlet(np.ones(t) * 0.1, size=t).astype(np.float32)
    matrix[np.triu_indices(t, 1)] = np.nan  # masked
    assert matrix.size > CELL_BUDGET
    fig = heatmap(matrix, index_labels(["w"] * t), index_labels(["w"] * t), zmin=0.0, zmax=0.5)
    assert fig.data[0].type == "image"
    pooled, f = pool_max(matrix)
    assert f == 2
    indices = raster_indices(fig)
    assert indices.shape == pooled.shape == (750, 750)
    np.testing.assert_array_equal(indices, quantise(pooled, 0.0, 0.5))
    assert (indices[np.triu_indices(750, 1)] == LEVELS).all()  # masked blocks are the grey index
    assert fig.data[0].dx == 2 and fig.data[0].x0 == 0.5  # pixels sit on their cells
    assert len(fig.layout.xaxis.tickvals) <= 16
    assert len(fig.to_json()) < 1_000_000


def test_quantise_and_lut():
    q = quantise(np.array([[0.0, 0.5, 1.0, 2.0, np.nan]]), 0.0, 1.0)
    assert q.tolist() == [[0, 127, 254, 254, LEVELS]]
    lut = colour_lut("Viridis", 255)
    assert lut.shape == (255, 3) and lut.dtype == np.uint8
    assert lut[0].tolist() == [68, 1, 84]  # Viridis' first colour, #440154


def test_a_view_of_512_tokens_sends_little():
    matrix = np.random.default_rng(1).random((512, 512)).astype(np.float32)
    spec = raster(matrix, index_labels(["tok"] * 512), index_labels(["tok"] * 512)).to_json()
    assert len(spec) < 400_000  # a JSON heatmap with per-cell hover text was over 6 MB
    assert json.loads(spec)["data"][0]["type"] == "image"
