import numpy as np
import pytest

from viz.attention import attention_heatmap, head_grid, head_statistic_heatmap, pool_square, token_strip_html


def test_heatmap_keeps_repeated_tokens_apart():
    tokens = ["the", "cat", "the", "mat"]
    matrix = np.tril(np.ones((4, 4)))
    matrix[np.triu_indices(4, 1)] = np.nan
    fig = attention_heatmap(matrix, tokens, tokens)
    trace = fig.data[0]
    assert np.asarray(trace.z).shape == (4, 4)
    assert np.isnan(np.asarray(trace.z)[0, 1])
    assert list(fig.layout.xaxis.ticktext) == tokens and list(fig.layout.xaxis.tickvals) == [0, 1, 2, 3]
    assert trace.customdata[2][0].tolist() == ["the", "the"]


def test_heatmap_rejects_mismatched_labels():
    with pytest.raises(ValueError, match="does not match"):
        attention_heatmap(np.zeros((3, 4)), ["a"] * 3, ["b"] * 3)
    with pytest.raises(ValueError, match="2-D"):
        attention_heatmap(np.zeros(3), ["a"] * 3, ["b"] * 3)


def test_long_inputs_drop_tick_labels():
    tokens = [str(i) for i in range(100)]
    fig = attention_heatmap(np.zeros((100, 100)), tokens, tokens)
    assert fig.layout.xaxis.tickvals is None


def test_pool_square_averages_blocks():
    matrix = np.arange(16, dtype=float).reshape(4, 4)
    np.testing.assert_allclose(pool_square(matrix, 2), [[2.5, 4.5], [10.5, 12.5]])
    assert pool_square(np.zeros((2, 3, 5, 5)), 48).shape == (2, 3, 5, 5)


def test_head_grid_has_one_trace_per_head():
    probs = np.random.default_rng(0).random((2, 3, 96, 96))
    fig = head_grid(probs)
    assert len(fig.data) == 6
    assert np.asarray(fig.data[4].z).shape == (48, 48)
    np.testing.assert_allclose(np.asarray(fig.data[4].z).mean(), probs[1, 1].mean())
    with pytest.raises(ValueError):
        head_grid(np.zeros((2, 3, 4)))


def test_statistic_heatmap_and_token_strip():
    fig = head_statistic_heatmap(np.ones((6, 12)), "entropy")
    assert np.asarray(fig.data[0].z).shape == (6, 12)
    strip = token_strip_html(["[CLS]", "<b>", "[SEP]"], {"[CLS]", "[SEP]"})
    assert "&lt;b&gt;" in strip and strip.count("<span") == 3
