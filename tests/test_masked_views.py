"""Masks drawn without a masked copy: a raster, a zoom window and a head map given a mask draw exactly what
they drew from the matrix with NaN in the masked cells, and the in-place softmax of a head equals the
softmax of its masked scores."""

import numpy as np
import pytest
import torch

from models.attention import LAZY
from models.llama import LlamaConfig, build_llama
from models.maps import AttentionMaps
from models.readout import Family, readout
from ui.llama_causal import head_map
from viz.export import zoom_figure
from viz.heatmap import block_max, pool_max, raster, raster_indices, value_range


def masked_map(shape, seed=0):
    """A causal probability-like matrix with a few more cells masked and one NaN among the shown ones."""
    rng = np.random.default_rng(seed)
    matrix = rng.dirichlet(np.ones(shape[1]) * 0.1, size=shape[0]).astype(np.float32)
    mask = np.tril(np.ones(shape, dtype=bool)) & (rng.random(shape) > 0.05)
    matrix[1, 0] = np.nan
    mask[1, 0] = True
    return matrix, mask


@pytest.mark.parametrize(
    "shape, side", [((1500, 1500), 1024), ((1001, 703), 256), ((300, 300), 1024), ((5, 7), 3)]
)
def test_a_masked_raster_is_the_raster_of_the_nan_matrix(shape, side):
    matrix, mask = masked_map(shape)
    with_nan = np.where(mask, matrix, np.nan)
    expected = raster(with_nan, max_side=side, title="t")
    drawn = raster(matrix, max_side=side, title="t", mask=mask)
    np.testing.assert_array_equal(raster_indices(drawn), raster_indices(expected))
    assert drawn.layout.title.text == expected.layout.title.text  # the same colour range, printed
    pooled, f = pool_max(matrix, side, mask=mask)
    np.testing.assert_array_equal(pooled, pool_max(with_nan, side)[0])
    assert np.isnan(pooled[0, -1]) and f == max(1, -(-max(shape) // side))  # a masked block stays NaN
    assert value_range(matrix, None, None, None, mask) == value_range(with_nan, None, None, None)


def test_block_max_equals_max_pooling_on_ragged_sides():
    t = torch.randn(13, 10)
    for f in (1, 2, 3, 4):
        expected = torch.nn.functional.max_pool2d(t[None, None], f, ceil_mode=True)[0, 0]
        torch.testing.assert_close(block_max(t, f), expected, rtol=0, atol=0)


def test_everything_masked_draws_grey_with_the_default_range():
    matrix = np.ones((600, 600), np.float32)
    fig = raster(matrix, mask=np.zeros_like(matrix, dtype=bool), max_side=300)
    assert (raster_indices(fig) == 255).all() and "colour 0 to 1" in fig.layout.title.text


def test_the_zoom_window_reads_the_mask_at_its_place():
    matrix, mask = masked_map((400, 400))
    fig = zoom_figure(matrix, list("x" * 400), list("y" * 400), 10, 20, 16, "q", "k", mask=mask)
    z = np.asarray(fig.data[0].z, dtype=np.float64)
    window = mask[10:26, 20:36]
    assert np.isnan(z[~window]).all()
    np.testing.assert_array_equal(z[window], matrix[10:26, 20:36][window])
    assert fig.data[0].x[0] == "20 y" and fig.data[0].y[0] == "10 x"


def family(requires_grad=False) -> Family:
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 9, 4, generator=g, requires_grad=requires_grad) for _ in range(3))
    mask = torch.ones(9, 9, dtype=torch.bool).tril()[None, None]
    return Family("decoder_self", q, k, v, scale=0.5, mask=mask, probs=None)


def test_the_in_place_softmax_equals_the_softmax_of_the_masked_scores():
    fam = family()
    for heads in (1, slice(None)):
        scores = fam.q[1, heads] @ fam.k[1, heads].transpose(-2, -1) * 0.5
        expected = scores.masked_fill(~fam.head_mask(1, heads), float("-inf")).softmax(-1)
        assert torch.equal(fam.weights(1, heads), expected)
    assert (fam.weights(0, 2).triu(1) == 0).all()


def test_weights_keep_their_gradient():
    fam = family(requires_grad=True)
    fam.weights(0, 1)[3, 1].backward()
    assert fam.q.grad[0, 1, 3].abs().sum() > 0 and fam.q.grad[0, 1, 4:].abs().sum() == 0


def test_the_head_map_and_its_mask_on_a_causal_llama():
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=50, n_layer=2, n_head=4, n_kv_head=2, d_model=32, d_head=8, d_mlp=64)
    model = build_llama(config).eval()
    ids = torch.randint(0, 50, (1, 12))
    with torch.no_grad():
        out = model(ids, capture=LAZY, unrotated=False)
        kept = model(ids, capture=True).attentions[1].probs[0, 3]  # every stage in plain torch
    maps = AttentionMaps(readout(decoder_self=out.attentions)["decoder_self"])
    probs, allowed = head_map(maps, 1, 3)
    np.testing.assert_array_equal(allowed, np.tril(np.ones((12, 12), dtype=bool)))
    np.testing.assert_allclose(probs, kept.numpy(), atol=1e-6, rtol=0)
    assert (probs[~allowed] == 0).all()
    assert head_map(maps, 1, "mean")[1] is None


@pytest.mark.parametrize("kind", ["causal", "window", "a row sees nothing"])
def test_a_banded_head_map_equals_the_whole_softmax(kind, monkeypatch):
    monkeypatch.setattr("models.maps.BAND_ROWS", 4)  # several bands, the last one ragged
    monkeypatch.setattr("models.maps.LAZY_ZEROS_BYTES", 0)  # written into an anonymous mapping
    t = 11
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, 2, t, 4, generator=g) for _ in range(3))
    i, j = torch.arange(t)[:, None], torch.arange(t)[None, :]
    mask = j <= i if kind == "causal" else (j <= i) & (j > i - 3)
    if kind == "a row sees nothing":
        mask[5] = False
    fam = Family("decoder_self", q, k, v, scale=0.5, mask=mask[None, None], probs=None)
    for head in (0, 1):
        expected = fam.weights(0, head).numpy()
        got = AttentionMaps(fam).head(0, head)
        np.testing.assert_allclose(got, expected, atol=1e-7, rtol=0)
        assert (np.isnan(got) == np.isnan(expected)).all()
        hidden = got[~mask.numpy()]
        assert ((hidden == 0) | np.isnan(hidden)).all()
        assert np.isnan(got[5]).all() == (kind == "a row sees nothing")  # as the forward's softmax
        assert not got.flags.writeable  # shared between sessions
