"""The data layer: maps computed on demand from q and k equal the maps the forward captured."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from models.attention import LAZY, MultiHeadAttention, causal_mask
from models.bert import BertConfig, BertModel
from models.maps import AttentionMaps, head_statistics
from models.readout import readout


@pytest.fixture(scope="module")
def bert_outputs():
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=50, hidden_size=48, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=64,
    )  # fmt: skip
    model = BertModel(config).eval()
    ids = torch.randint(0, 50, (2, 37))
    mask = torch.ones(2, 37, dtype=torch.long)
    mask[1, 30:] = 0  # the second text is padded
    with torch.no_grad():
        return model(ids, attention_mask=mask, capture=True), model(ids, attention_mask=mask, capture=LAZY)


@pytest.mark.parametrize("index", [0, 1])
def test_lazy_maps_equal_the_captured_maps_in_every_layer_and_head(bert_outputs, index):
    full, lazy = bert_outputs
    torch.testing.assert_close(lazy.last_hidden_state, full.last_hidden_state, atol=1e-5, rtol=0)
    captured = readout(index, encoder=full.attentions)["encoder"]
    assert captured.probs is not None and captured.probs.shape == (3, 4, 37, 37)
    on_demand = readout(index, encoder=lazy.attentions)["encoder"]
    assert on_demand.probs is None  # the fast path kept no (T, T) tensor
    # the same q and k as the captured forward, without its weights: every map recomputed on demand
    from_captured_qk = AttentionMaps(replace(captured, probs=None))
    from_lazy_forward = AttentionMaps(on_demand)
    for layer in range(3):
        for head in range(4):
            expected = captured.probs[layer, head].numpy()
            np.testing.assert_allclose(from_captured_qk.head(layer, head), expected, atol=1e-6, rtol=0)
            np.testing.assert_allclose(from_lazy_forward.head(layer, head), expected, atol=1e-5, rtol=0)
    if index == 1:  # padded keys get exactly zero weight
        assert (from_lazy_forward.head(2, 3)[:, 30:] == 0).all()


def test_reductions_and_layers_stream_heads(bert_outputs):
    full, lazy = bert_outputs
    maps = AttentionMaps(readout(encoder=lazy.attentions)["encoder"])
    probs = torch.stack([r.probs[0] for r in full.attentions]).numpy()  # (L, H, T, T)
    np.testing.assert_allclose(maps.head(1, "mean"), probs[1].mean(0), atol=1e-6)
    np.testing.assert_allclose(maps.head(1, "max"), probs[1].max(0), atol=1e-6)
    np.testing.assert_allclose(maps.layer(2), probs[2], atol=1e-6)
    with pytest.raises(IndexError):
        maps.head(3, 0)
    with pytest.raises(IndexError):
        maps.head(0, "median")


def test_a_layer_reads_memoised_heads_and_kept_weights_alike(bert_outputs):
    full, lazy = bert_outputs
    probs = torch.stack([r.probs[0] for r in full.attentions]).numpy()  # (L, H, T, T)
    maps = AttentionMaps(readout(encoder=lazy.attentions)["encoder"])
    memoised = maps.head(1, 2)  # one head already in the memo, the others computed into the layer
    layer = maps.layer(1)
    np.testing.assert_array_equal(layer[2], memoised)
    np.testing.assert_allclose(layer, probs[1], atol=1e-6)
    kept = AttentionMaps(readout(encoder=full.attentions)["encoder"])  # the forward kept the weights
    np.testing.assert_array_equal(kept.layer(1), probs[1])
    layer[0, 0, 0] = -1.0  # the result is the caller's own: the memo is untouched
    assert maps.head(1, 2)[0, 0] == memoised[0, 0]
    with pytest.raises(IndexError):
        maps.layer(3)
    assert not maps.head(0, 0).flags.writeable  # shared between sessions: read-only


def test_summary_equals_statistics_of_the_full_maps(bert_outputs):
    full, lazy = bert_outputs
    maps = AttentionMaps(readout(encoder=lazy.attentions)["encoder"])
    summary = maps.summary(thumbnail=8)
    probs = torch.stack([r.probs[0] for r in full.attentions]).double()  # (L, H, T, T)
    t = probs.shape[-1]
    idx = torch.arange(t, dtype=torch.float64)
    plogp = torch.where(probs > 0, probs * torch.log2(probs.clamp_min(1e-300)), 0.0)
    stats = summary["statistics"]
    np.testing.assert_allclose(stats["entropy"], -plogp.sum(-1).mean(-1), rtol=1e-5)
    np.testing.assert_allclose(
        stats["mean_distance"], (probs * (idx[:, None] - idx).abs()).sum(-1).mean(-1), rtol=1e-5
    )
    np.testing.assert_allclose(stats["first_share"], probs[..., 0].mean(-1), rtol=1e-5)
    np.testing.assert_allclose(stats["max_weight"], probs.max(-1).values.mean(-1), rtol=1e-5)
    assert summary["thumbnails"].shape == (3, 4, 8, 8)
    pooled = torch.nn.functional.adaptive_avg_pool2d(probs.float(), 8)  # (L, H, 8, 8)
    np.testing.assert_allclose(summary["thumbnails"], pooled.numpy(), atol=1e-6)


def test_statistics_of_known_maps():
    uniform = torch.full((4, 4), 0.25)
    eye = torch.eye(4)
    stats = head_statistics(torch.stack([uniform, eye]))
    np.testing.assert_allclose(stats["entropy"], [2.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(stats["mean_distance"], [1.25, 0.0], atol=1e-6)
    np.testing.assert_allclose(stats["max_weight"], [0.25, 1.0])


def test_causal_family_keeps_exact_zeros_and_memo_is_bounded():
    torch.manual_seed(1)
    attn = MultiHeadAttention(16, 2)
    x = torch.randn(1, 40, 16)
    records = []
    with torch.no_grad():
        for _ in range(2):
            x, rec = attn(x, mask=causal_mask(40), capture=LAZY)
            records.append(rec)
    maps = AttentionMaps(readout(decoder_self=records)["decoder_self"], memo_bytes=1)
    for layer in range(2):
        for head in range(2):
            weights = maps.head(layer, head)
            assert (weights[np.triu_indices(40, 1)] == 0).all()
            np.testing.assert_allclose(weights.sum(-1), 1, atol=1e-6)
    assert len(maps._memo) == 2  # the bound keeps two maps, never less
    assert maps.nbytes >= maps.family.nbytes + 2 * 40 * 40 * 4
