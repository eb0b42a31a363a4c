import numpy as np
import pytest

from viz.attention import attention_heatmap, head_overview, head_statistic_heatmap, token_strip_html


def test_attention_heatmap_numbers_repeated_tokens():
    tokens = ["the", "cat", "the", "mat"]
    fig = attention_heatmap(np.eye(4), tokens, tokens)
    assert list(fig.data[0].y) == ["0 the", "1 cat", "2 the", "3 mat"]
    assert fig.layout.yaxis.title.text == "query (attending)"
    with pytest.raises(ValueError):
        attention_heatmap(np.zeros((3, 4)), ["a"] * 3, ["b"] * 3)


def test_long_inputs_spread_their_ticks():
    tokens = [str(i) for i in range(100)]
    fig = attention_heatmap(np.zeros((100, 100)), tokens, tokens)
    assert len(fig.layout.xaxis.tickvals) == 15


def test_head_overview_is_laid_out_in_layer_and_head_units():
    thumbs = np.random.default_rng(0).random((2, 3, 8, 8)).astype(np.float32)
    fig = head_overview(thumbs)
    trace = fig.data[0]
    z = np.asarray(trace.z)
    assert z.shape == (16, 24) and z.dtype == np.uint8
    assert int(trace.x[8 + 3]) == 1 and int(trace.y[8 + 2]) == 1  # cell (10, 11) is layer 1, head 1
    markers = fig.data[1]
    assert np.asarray(markers.customdata)[4].tolist() == [1, 1]  # what a click on that thumbnail sends
    assert (markers.x[4], markers.y[4]) == (1.5, 1.5)
    np.testing.assert_array_equal(z[8:16, 8:16], np.rint(255 * thumbs[1, 1] / thumbs[1, 1].max()))
    with pytest.raises(ValueError):
        head_overview(np.zeros((2, 3, 4)))


def test_statistic_heatmap_prints_rounded_values_and_token_strip():
    fig = head_statistic_heatmap(np.full((6, 12), 0.7799999713897705), "entropy")
    assert np.asarray(fig.data[0].z).shape == (6, 12)
    assert fig.data[0].texttemplate == "%{z:.2f}"
    strip = token_strip_html(["[CLS]", "<b>", "[SEP]"], {"[CLS]", "[SEP]"})
    assert "&lt;b&gt;" in strip and strip.count("<span") == 3
