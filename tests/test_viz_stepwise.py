"""viz.stepwise and viz.causal: shapes, masked cells, the causal staircase."""

import numpy as np
import pytest

from viz.attention import attention_heatmap
from viz.causal import causal_mask_path, generation_rows, mark_targets, overlay_causal_mask
from viz.heatmap import MARGIN, MASK_GREY, masked_colour
from viz.stepwise import (
    channels_by_tokens,
    char_labels,
    grid_shape,
    labelled_heatmap,
    mark_column_groups,
    outline,
    tokens_by_channels,
    weight_heatmap,
)


def test_tokens_by_channels_and_transpose():
    m = np.arange(12.0).reshape(3, 4)
    fig = tokens_by_channels(m, ["a", "b", "a"], "channel (d = 4)")
    assert np.asarray(fig.data[0].z).shape == (3, 4)
    assert fig.layout.xaxis.title.text == "channel (d = 4)"
    assert list(fig.layout.yaxis.ticktext) == ["0 a", "1 b", "2 a"]  # repeated tokens stay apart
    assert fig.data[0].zmin == -11 and fig.data[0].zmax == 11  # centred on 0
    fig_t = channels_by_tokens(m.T, ["a", "b", "a"], "channel")
    assert np.asarray(fig_t.data[0].z).shape == (4, 3)


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="does not match"):
        tokens_by_channels(np.zeros((3, 4)), ["a", "b"], "c")
    with pytest.raises(ValueError, match="tokens, channels"):
        tokens_by_channels(np.zeros(3), ["a", "b", "c"], "c")


def test_masked_cells_stay_nan_over_a_grey_background():
    m = np.array([[1.0, np.nan], [0.5, 0.5]])
    fig = tokens_by_channels(m, ["x", "y"], "c")
    assert np.isnan(np.asarray(fig.data[0].z, dtype=float)[0, 1])
    assert masked_colour(fig.layout) == MASK_GREY and fig.layout.margin.t == MARGIN["t"]  # the core's
    assert fig.data[0].hoverongaps is False


def test_a_mask_draws_minus_infinity_as_masked_and_the_colours_ignore_it():
    scores = np.array([[2.0, -np.inf], [-1.0, 0.5]])
    fig = labelled_heatmap(
        scores, ["a", "b"], ["a", "b"], "query", "key", mask=np.isfinite(scores), decimals=2
    )
    z = np.asarray(fig.data[0].z, dtype=float)
    assert np.isnan(z[0, 1]) and z[1, 0] == -1.0
    assert (fig.data[0].zmin, fig.data[0].zmax) == (-2.0, 2.0)  # symmetric over the shown values
    assert fig.data[0].texttemplate == "%{z:.2f}"


def test_outline_and_column_groups():
    fig = tokens_by_channels(np.zeros((3, 6)), ["a", "b", "c"], "c")
    outline(fig, row=1)
    outline(fig, col=5)
    drawn = fig.layout.shapes[1:]  # after the mask's grey backing
    assert len(drawn) == 2 and drawn[0].y0 == 0.5
    with pytest.raises(ValueError, match="outside"):
        outline(fig, row=3)
    mark_column_groups(fig, 2)
    assert len(fig.layout.shapes[1:]) == 4  # two head boundaries added
    with pytest.raises(ValueError, match="groups"):
        mark_column_groups(fig, 4)


def test_outline_and_groups_on_a_raster():
    fig = weight_heatmap(np.ones((300, 384)), "in", "out")  # past the cell budget: an image
    assert fig.data[0].type == "image" and grid_shape(fig) == (300, 384)
    outline(fig, row=299)
    mark_column_groups(fig, 32)
    assert fig.layout.shapes[0].x1 == 383.5 and len(fig.layout.shapes) == 1 + 11  # an image: no backing


def test_char_labels_make_space_and_newline_visible():
    assert char_labels(["a", " ", "\n"]) == ["a", "␣", "⏎"]


def inside(polygon: list[tuple[float, float]], x: float, y: float) -> bool:
    """Even-odd ray casting."""
    hit = False
    for (x0, y0), (x1, y1) in zip(polygon, polygon[1:] + polygon[:1], strict=True):
        if (y0 > y) != (y1 > y) and x < x0 + (y - y0) * (x1 - x0) / (y1 - y0):
            hit = not hit
    return hit


def test_causal_staircase_covers_exactly_the_upper_triangle():
    t = 5
    polygon = [tuple(map(float, p.split(","))) for p in causal_mask_path(t)[2:-2].split(" L ")]
    for i in range(t):  # cell centres: x = key j, y = query i
        for j in range(t):
            assert inside(polygon, j, i) == (j > i), (i, j)
    fig = overlay_causal_mask(attention_heatmap(np.eye(t), list("abcde"), list("abcde")), t)
    assert fig.layout.shapes[1].path == causal_mask_path(t)  # over the mask's grey backing
    with pytest.raises(ValueError, match="T >= 2"):
        causal_mask_path(1)


def test_generation_rows_stack_into_a_lower_triangle():
    rows = [np.full(3, 1 / 3), np.full(4, 1 / 4), np.full(5, 1 / 5)]
    fig = generation_rows(rows, list("abcdef"), n_prompt=3)
    z = np.asarray(fig.data[0].z, dtype=float)
    assert z.shape == (3, 5)
    assert np.isnan(z[0, 3:]).all() and np.isnan(z[1, 4:]).all() and not np.isnan(z[2]).any()
    assert list(fig.layout.xaxis.ticktext) == ["0 a", "1 b", "2 c", "3 d", "4 e"]
    assert masked_colour(fig.layout) == MASK_GREY
    with pytest.raises(ValueError, match="should attend over"):
        generation_rows([np.ones(2)], list("abcd"), n_prompt=3)


def test_induction_targets_are_marked_at_the_heatmaps_labels():
    tokens = list("abab")
    fig = mark_targets(attention_heatmap(np.eye(4), tokens, tokens), [None, None, 1, None], tokens)
    assert list(fig.data[-1].x) == ["1 b"] and list(fig.data[-1].y) == ["2 a"]
    assert list(fig.layout.yaxis.range) == [3.5, -0.5]  # the markers do not pad the axes
    assert len(mark_targets(attention_heatmap(np.eye(4), tokens, tokens), [None] * 4, tokens).data) == 1
    with pytest.raises(ValueError, match="targets"):
        mark_targets(attention_heatmap(np.eye(4), tokens, tokens), [None], tokens)


def test_weight_heatmap_keeps_in_by_out():
    fig = weight_heatmap(np.ones((6, 2)), "input channel", "output channel")
    assert np.asarray(fig.data[0].z).shape == (6, 2)
    with pytest.raises(ValueError, match="2-D"):
        weight_heatmap(np.ones(3), "a", "b")
