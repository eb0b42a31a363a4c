import math

import pytest
import torch

from models.attention import (
    MultiHeadAttention,
    attend,
    causal_mask,
    combine_masks,
    local_mask,
    padding_mask,
)


def qkv(b=2, nh=3, tq=7, tk=7, dh=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(b, nh, tq, dh, generator=g),
        torch.randn(b, nh, tk, dh, generator=g),
        torch.randn(b, nh, tk, dh, generator=g),
    )


def test_record_shapes_and_stages():
    q, k, v = qkv(tq=5, tk=7)
    out, rec = attend(q, k, v, capture=True)
    assert out.shape == (2, 3, 5, 8)
    assert rec.scores.shape == rec.probs.shape == (2, 3, 5, 7)
    torch.testing.assert_close(rec.scores, q @ k.transpose(-2, -1))
    torch.testing.assert_close(rec.scaled, rec.scores / math.sqrt(8))
    torch.testing.assert_close(rec.probs, rec.scaled.softmax(-1))
    torch.testing.assert_close(rec.out, rec.probs @ v)
    torch.testing.assert_close(rec.probs.sum(-1), torch.ones(2, 3, 5))


def test_causal_mask_gives_exact_zeros_above_the_diagonal():
    q, k, v = qkv()
    _, rec = attend(q, k, v, mask=causal_mask(7), capture=True)
    upper = torch.ones(7, 7, dtype=torch.bool).triu(1)
    assert (rec.probs[..., upper] == 0).all()
    assert torch.isneginf(rec.masked[..., upper]).all()
    assert torch.isfinite(rec.masked[..., ~upper]).all()
    assert (rec.probs[..., ~upper] > 0).all()
    torch.testing.assert_close(rec.probs.sum(-1), torch.ones(2, 3, 7))


def test_causal_mask_aligns_at_the_end_for_cached_keys():
    mask = causal_mask(2, 4)
    assert mask.tolist() == [[True, True, True, False], [True, True, True, True]]


def test_local_mask_band():
    mask = local_mask(6, radius=1)
    assert mask.sum().item() == 6 + 2 * 5
    assert mask[0].tolist() == [True, True, False, False, False, False]
    q, k, v = qkv(tq=6, tk=6)
    _, rec = attend(q, k, v, mask=mask, capture=True)
    assert (rec.probs[..., ~mask] == 0).all()
    with pytest.raises(ValueError, match="radius"):
        local_mask(4, -1)


def test_padding_and_combined_masks():
    key_padding = torch.tensor([[False] * 5 + [True] * 2, [False] * 7])
    mask = combine_masks(padding_mask(key_padding), causal_mask(7), None)
    assert mask.shape == (2, 1, 7, 7)
    q, k, v = qkv()
    _, rec = attend(q, k, v, mask=mask, capture=True)
    assert (rec.probs[0, :, :, 5:] == 0).all()
    assert (rec.probs[1, :, 6, :] > 0).all()
    assert combine_masks(None, None) is None


def test_any_boolean_mask():
    mask = torch.rand(7, 7, generator=torch.Generator().manual_seed(1)) > 0.5
    mask.fill_diagonal_(True)
    q, k, v = qkv()
    _, rec = attend(q, k, v, mask=mask, capture=True)
    assert (rec.probs[..., ~mask] == 0).all()


@pytest.mark.parametrize("mask", [None, causal_mask(7), local_mask(7, 2)])
def test_capture_matches_the_fused_path(mask):
    torch.manual_seed(0)
    mha = MultiHeadAttention(24, 4).eval()
    x = torch.randn(2, 7, 24)
    fast, none = mha(x, mask=mask)
    slow, rec = mha(x, mask=mask, capture=True)
    assert none is None
    assert (fast - slow).abs().max() <= 1e-5
    assert rec.q.shape == (2, 4, 7, 6)


def test_cross_attention_takes_keys_and_values_from_memory():
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 2)
    x, memory = torch.randn(1, 3, 16), torch.randn(1, 5, 16)
    out, rec = mha(x, memory, capture=True)
    assert out.shape == (1, 3, 16) and rec.probs.shape == (1, 2, 3, 5)
    torch.testing.assert_close(rec.v, mha.split_heads(mha.v_proj(memory)))


def test_heads_must_divide_width():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 3)


def test_item_drops_the_batch_axis():
    q, k, v = qkv()
    key_padding = torch.tensor([[False] * 6 + [True], [False] * 7])
    _, rec = attend(q, k, v, mask=padding_mask(key_padding), capture=True)
    one = rec.item(0)
    assert one.probs.shape == (3, 7, 7) and one.q.shape == (3, 7, 8)
    torch.testing.assert_close(one.masked, rec.masked[0])
    assert torch.isneginf(one.masked[..., 6]).all()
