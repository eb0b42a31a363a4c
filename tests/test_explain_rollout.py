"""Attention rollout: the rolled-out rows equal a product of per-layer matrices built independently in numpy
from the maps a full capture kept (MiniLM, gpt-stdlib, the encoder-decoder)."""

import numpy as np
import pytest
import torch

from models.bert import load_bert
from models.date_task import TGT_VOCAB, encode_sources
from models.explain.capture import capture_text
from models.explain.rollout import layer_graph, reduce_heads, rollout, with_residual
from models.gpt_io import load_gpt
from models.registry import load_model

SENTENCE = "The animal didn't cross the street because it was too tired."


def residual_numpy(probs: np.ndarray, reduce=np.mean) -> np.ndarray:
    """probs (H, T, T) -> ½(heads reduced + I), rows renormalised."""
    a = 0.5 * reduce(probs, axis=0) + 0.5 * np.eye(probs.shape[-1])
    return a / a.sum(-1, keepdims=True)


def product(matrices: list[np.ndarray]) -> np.ndarray:
    out = np.eye(matrices[0].shape[0])
    for m in matrices:
        out = m @ out
    return out


def test_residual_and_rollout_on_hand_made_matrices():
    a = torch.tensor([[1.0, 0.0], [0.25, 0.75]], dtype=torch.float64)
    np.testing.assert_allclose(with_residual(a), [[1.0, 0.0], [0.125, 0.875]])
    b = torch.tensor([[0.5, 0.5], [0.0, 1.0]], dtype=torch.float64)
    # b applied after a: row 0 of b·a = 0.5·(1, 0) + 0.5·(0.25, 0.75)
    np.testing.assert_allclose(rollout([a, b]), [[0.625, 0.375], [0.25, 0.75]])
    with pytest.raises(ValueError, match="square"):
        with_residual(torch.ones(2, 3))


def test_head_reductions():
    w = torch.tensor([[[0.2, 0.8]], [[0.6, 0.4]]])  # (H=2, 1, 2)
    np.testing.assert_allclose(reduce_heads(w, "mean"), [[0.4, 0.6]])
    np.testing.assert_allclose(reduce_heads(w, "max"), [[0.6, 0.8]])
    np.testing.assert_allclose(reduce_heads(w, 1), [[0.6, 0.4]])
    with pytest.raises(ValueError, match="not one of"):
        reduce_heads(w, "min")


def test_minilm_rollout_is_the_product_of_its_layers():
    model = load_bert()
    captured = capture_text(model, SENTENCE)  # LAZY: the graph computes the maps from q and k
    full = model.run(model.encode(SENTENCE).ids, capture=True).attentions  # the maps the forward kept
    probs = [r.probs[0].double().numpy() for r in full]  # (H, T, T) per layer
    expected = product([residual_numpy(p) for p in probs])
    rolled = layer_graph(captured.families).rollout().numpy()
    assert rolled.shape == (len(captured.tokens["encoder"][0]),) * 2
    np.testing.assert_allclose(rolled, expected, atol=1e-6)
    np.testing.assert_allclose(rolled.sum(1), 1, atol=1e-12)
    expected_max = product([residual_numpy(p, np.max) for p in probs])  # another head reduction
    rolled_max = layer_graph(captured.families, "max").rollout().numpy()
    np.testing.assert_allclose(rolled_max, expected_max, atol=1e-6)


def test_gpt_rollout_is_the_product_of_its_layers_and_stays_causal():
    gpt = load_gpt()
    text = "Return the number of items. Return the"
    captured = capture_text(gpt, text)
    ids = gpt.tokenizer.encode(text).ids
    full = gpt.run(ids, capture=True).attentions
    expected = product([residual_numpy(r.probs[0].double().numpy()) for r in full])
    rolled = layer_graph(captured.families).rollout().numpy()
    np.testing.assert_allclose(rolled, expected, atol=1e-6)
    assert (rolled[np.triu_indices(len(ids), 1)] == 0).all()  # exactly 0 above the diagonal
    np.testing.assert_allclose(rolled.sum(1), 1, atol=1e-12)


def test_encoder_decoder_rollout_follows_the_decoder_through_the_cross_attention():
    model, config, _ = load_model("seq2seq-dates")
    captured = capture_text((model, config, {}), "Twenty-sixth of November 2026")
    assert captured.answer == "2026-11-26"
    source, read = captured.tokens["cross"][1], captured.tokens["cross"][0]  # keys: source; queries: read
    n_src, n_tgt = len(source), len(read)
    tgt_in = torch.tensor([[TGT_VOCAB.index[t] for t in read]])
    with torch.no_grad():
        out = model(encode_sources(["".join(source)]), tgt_in, capture=True)
    # Independently: the encoder's rollout R_enc, then per decoder layer R_t <- Â_self R_t and
    # R_t <- ½ R_t + ½ [C R_enc, 0] over (source, target) columns.
    r_enc = product([residual_numpy(r.probs[0].double().numpy()) for r in out.encoder_self])
    r_t = np.hstack([np.zeros((n_tgt, n_src)), np.eye(n_tgt)])
    for s, c in zip(out.decoder_self, out.cross, strict=True):
        r_t = residual_numpy(s.probs[0].double().numpy()) @ r_t
        cross = c.probs[0].double().numpy().mean(0)  # (Tt, Ts)
        r_t = 0.5 * r_t + 0.5 * np.hstack([cross @ r_enc, np.zeros((n_tgt, n_tgt))])
    graph = layer_graph(captured.families)
    assert graph.n_source == n_src and graph.n_nodes == n_src + n_tgt
    rolled = graph.rollout().numpy()
    np.testing.assert_allclose(rolled, r_t, atol=1e-6)
    np.testing.assert_allclose(rolled.sum(1), 1, atol=1e-12)
    target_part = rolled[:, n_src:]
    assert (target_part[np.triu_indices(n_tgt, 1)] == 0).all()  # the decoder's own inputs stay causal
    assert (rolled[:, :n_src].sum(1) > 0.2).all()  # every output token reads the source
