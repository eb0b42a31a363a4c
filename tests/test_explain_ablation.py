"""Head gates in the attention core, head ablation and importance (models/explain/ablation.py)."""

import numpy as np
import pytest
import torch

from models.attention import LAZY, MEAN, ZERO, MultiHeadAttention, gate_heads
from models.bert import BertConfig, BertModel
from models.detr.detr import build_detr
from models.explain.ablation import (
    CausalProbe,
    DetrProbe,
    EncoderProbe,
    Seq2SeqProbe,
    ablate,
    gradients,
    head_gates,
    importance,
)
from models.explain.inputs import DetrFeatures
from models.gpt import GPTConfig, build_gpt
from models.seq2seq import Seq2SeqConfig, build_seq2seq, greedy_generate
from tests.conftest import TINY_DETR


def tiny_bert(dtype=torch.float32) -> BertModel:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=40, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=32)  # fmt: skip
    return BertModel(config).eval().to(dtype)


def tiny_gpt(dtype=torch.float32, d_mlp=64):
    torch.manual_seed(1)
    config = GPTConfig(vocab_size=20, block_size=16, n_layer=2, n_head=4, n_embd=32, d_mlp=d_mlp)
    return build_gpt(config).eval().to(dtype)


def tiny_seq2seq(dtype=torch.float32):
    torch.manual_seed(2)
    config = Seq2SeqConfig(src_vocab_size=12, tgt_vocab_size=9, d_model=32, n_heads=4, n_encoder_layers=2,
                           n_decoder_layers=2, d_ff=48, max_len=16, dropout=0.0)  # fmt: skip
    return build_seq2seq(config).eval().to(dtype)


def tiny_detr(dtype=torch.float32):
    torch.manual_seed(3)
    return build_detr(TINY_DETR).eval().to(dtype)


def tiny_detr_features(model, dtype=torch.float32) -> DetrFeatures:
    g = torch.Generator().manual_seed(4)
    images = torch.randn(1, 3, 64, 80, generator=g).to(dtype)
    with torch.no_grad():
        feat, mask, pos = model.backbone(images, torch.zeros(1, 64, 80, dtype=torch.bool))
        return DetrFeatures(model.input_proj(feat), mask, pos)


IDS = [3, 7, 1, 9, 12, 4, 4, 30, 2]
GPT_IDS = [1, 5, 2, 7, 7, 3, 9, 1, 5, 2]
SRC, TOKENS = [3, 5, 7, 2, 9, 4], [3, 4, 5, 6, 2]


# --- the gate in the attention core ---------------------------------------------------------------


@pytest.mark.parametrize("capture", [False, True, LAZY])
@pytest.mark.parametrize("fill", [ZERO, MEAN])
def test_a_gate_of_ones_is_exactly_the_attention(capture, fill):
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4).eval()
    x = torch.randn(3, 5, 16)
    plain, _ = mha(x, capture=capture)
    for gate in (torch.ones(4), torch.ones(3, 4)):
        gated, _ = mha(x, capture=capture, head_gate=gate, gate_fill=fill)
        assert torch.equal(gated, plain)


def test_zero_gates_leave_only_the_output_bias():
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4).eval()
    out, _ = mha(torch.randn(2, 5, 16), head_gate=torch.zeros(4))
    torch.testing.assert_close(out, mha.out_proj.bias.expand(2, 5, 16), rtol=0, atol=0)


def test_mean_fill_replaces_a_head_by_its_mean_over_the_queries():
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4).eval()
    x = torch.randn(2, 5, 16)
    _, record = mha(x, capture=True)
    heads = record.out.clone()  # (B, nh, T, dh)
    heads[:, 1] = heads[:, 1].mean(1, keepdim=True)
    expected = mha.out_proj(heads.transpose(1, 2).reshape(2, 5, 16))
    gated, _ = mha(x, head_gate=torch.tensor([1.0, 0.0, 1.0, 1.0]), gate_fill=MEAN)
    torch.testing.assert_close(gated, expected)


def test_a_gate_per_row_gates_each_row_alone():
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4).eval()
    x = torch.randn(1, 5, 16).expand(2, -1, -1)
    gate = torch.tensor([[1.0, 0.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.0]])
    both, _ = mha(x, head_gate=gate)
    for row in range(2):
        alone, _ = mha(x[:1], head_gate=gate[row])
        torch.testing.assert_close(both[row : row + 1], alone)


def test_bad_gates_are_refused_with_the_shapes():
    heads = torch.zeros(2, 4, 3, 8)
    with pytest.raises(ValueError, match=r"\(4,\) or \(2, 4\)"):
        gate_heads(heads, torch.ones(3))
    with pytest.raises(ValueError, match="unknown gate fill"):
        gate_heads(heads, torch.ones(4), "noise")
    with pytest.raises(ValueError, match="head_gates are keyed by"):
        tiny_seq2seq()(torch.tensor([SRC]), torch.tensor([TOKENS]), head_gates={"decoder": torch.ones(2, 4)})


# --- gates through every model --------------------------------------------------------------------


def outputs(name: str, model, gates, fill=ZERO, rows=1):
    """Every output of one forward of a tiny model, with `gates` as its head_gates."""
    if name == "bert":
        out = model(torch.tensor([IDS]).expand(rows, -1), head_gates=gates, gate_fill=fill)
        return [out.last_hidden_state, *out.hidden_states]
    if name == "gpt":
        out = model(torch.tensor([GPT_IDS]).expand(rows, -1), head_gates=gates, gate_fill=fill)
        return [out.logits, out.last_hidden_state]
    if name == "seq2seq":
        src, tgt = torch.tensor([SRC]).expand(rows, -1), torch.tensor([TOKENS]).expand(rows, -1)
        out = model(src, tgt, head_gates=gates, gate_fill=fill)
        return [out.logits, out.memory]
    images = torch.randn(1, 3, 64, 80, generator=torch.Generator().manual_seed(5)).expand(rows, -1, -1, -1)
    out = model(images, torch.zeros(rows, 64, 80, dtype=torch.bool), head_gates=gates, gate_fill=fill)
    return [out.pred_logits, out.pred_boxes, out.aux_logits, out.aux_boxes]


MODELS = {"bert": tiny_bert, "gpt": tiny_gpt, "seq2seq": tiny_seq2seq, "detr": tiny_detr}
SHAPES = {  # the head_gates argument of each model, (layers, heads) per family
    "bert": {None: (3, 4)},
    "gpt": {None: (2, 4)},
    "seq2seq": {"encoder": (2, 4), "decoder_self": (2, 4), "cross": (2, 4)},
    "detr": {"encoder": (2, 4), "decoder_self": (3, 4), "cross": (3, 4)},
}


def ones(name: str, rows: int | None = None):
    shapes = SHAPES[name]
    made = {f: torch.ones(L, H) if rows is None else torch.ones(L, rows, H) for f, (L, H) in shapes.items()}
    return made[None] if None in made else made


@pytest.mark.parametrize("name", list(MODELS))
@torch.no_grad()
def test_gates_of_ones_leave_every_output_unchanged(name):
    model = MODELS[name]()
    plain = outputs(name, model, None, rows=2)
    for fill in (ZERO, MEAN):
        for gates in (ones(name), ones(name, rows=2)):
            for a, b in zip(plain, outputs(name, model, gates, fill, rows=2), strict=True):
                assert torch.equal(a, b)


@torch.no_grad()
def test_every_head_of_a_bert_layer_zeroed_removes_that_attention():
    """With every head of layer 1 zeroed, the layer's attention adds only its output projection's bias."""
    model = tiny_bert()
    gates = torch.ones(3, 4)
    gates[1] = 0
    ablated = model(torch.tensor([IDS]), head_gates=gates).last_hidden_state
    x = model(torch.tensor([IDS])).hidden_states[1]  # the input of layer 1 (layer 0 is not gated)
    layer = model.layers[1]
    x = layer.attention_norm(x + layer.attention.out_proj.bias)  # no attention, only the bias
    x = layer.output_norm(x + layer.output(layer.activation(layer.intermediate(x))))
    x, _ = model.layers[2](x)
    torch.testing.assert_close(ablated, x, rtol=0, atol=1e-6)


@torch.no_grad()
def test_every_head_of_a_gpt_block_zeroed_removes_that_attention():
    model = tiny_gpt()
    gates = torch.ones(2, 4)
    gates[0] = 0
    ablated = model(torch.tensor([GPT_IDS]), head_gates=gates).logits
    x = model(torch.tensor([GPT_IDS])).hidden_states[0]
    block = model.blocks[0]
    x = x + block.attention.out_proj.bias
    x = x + block.mlp(block.ln_2(x))
    x, _ = model.blocks[1](x, torch.ones(10, 10, dtype=torch.bool).tril())
    torch.testing.assert_close(ablated, model.lm_head(model.ln_f(x)), rtol=0, atol=1e-6)


# --- probes, importance and ablations -------------------------------------------------------------


def probe(name: str, dtype=torch.float32):
    model = MODELS[name](dtype)
    if name == "bert":
        return EncoderProbe(model, IDS)
    if name == "gpt":
        return CausalProbe(model, GPT_IDS)
    if name == "seq2seq":
        return Seq2SeqProbe(model, SRC, TOKENS, bos_id=1)
    return DetrProbe(model, tiny_detr_features(model, dtype), query=2)


@pytest.mark.parametrize("name", list(MODELS))
def test_gradient_importance_matches_finite_differences(name):
    """Michel et al.'s ∂L/∂g at g = 1 against a central difference of the objective in the gate, in
    float64: within 1e-3 relative for every head of every family."""
    p = probe(name, torch.float64)
    grads = gradients(p)
    eps = 1e-5
    for family, (n_layers, n_heads) in p.families.items():
        fd = np.zeros((n_layers, n_heads))
        for layer in range(n_layers):
            for head in range(n_heads):
                values = []
                for sign in (1, -1):
                    gates = head_gates(p.families, dtype=torch.float64)
                    gates[family][layer, head] += sign * eps
                    with torch.no_grad():
                        values.append(float(p.objective(p.run(gates, ZERO, 1))[0]))
                fd[layer, head] = (values[0] - values[1]) / (2 * eps)
        assert np.abs(fd).max() > 0
        np.testing.assert_allclose(grads[family], fd, rtol=1e-3, atol=1e-3 * np.abs(fd).max() * 1e-3)


@pytest.mark.parametrize("name", ["gpt", "seq2seq", "bert"])
@pytest.mark.parametrize("fill", [ZERO, MEAN])
def test_batched_ablations_equal_one_head_at_a_time(name, fill):
    p = probe(name)
    result = importance(p, fill, chunk=5)  # chunks that cut across layers and families
    for family, layer, head in p.heads:
        alone = ablate(p, [(family, layer, head)], fill)
        assert result.measured[family][layer, head] == pytest.approx(alone.effect, abs=1e-5)
        assert result.delta[family][layer, head] == pytest.approx(
            alone.objective - alone.clean_objective, abs=1e-5
        )


def test_the_causal_effect_is_the_change_of_the_next_token_loss():
    p = probe("gpt")
    run = ablate(p, [("decoder_self", 1, 2), ("decoder_self", 0, 0)], MEAN)
    logits = run.output[0, :-1]  # (T - 1, V)
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor(GPT_IDS[1:]))
    assert run.objective == pytest.approx(float(loss), abs=1e-6)
    assert run.effect == pytest.approx(run.objective - run.clean_objective, abs=1e-6)
    assert ablate(p, [], ZERO).effect == 0


def test_the_encoder_effect_is_one_minus_the_cosine_similarity():
    p = probe("bert")
    run = ablate(p, [("encoder", 0, 1)], ZERO)
    cos = torch.nn.functional.cosine_similarity(run.output[0], p.clean[0], dim=0)
    assert run.effect == pytest.approx(1 - float(cos), abs=1e-6) and run.effect > 0
    assert p.objective(p.clean)[0] == pytest.approx(float(p.clean[0].norm()), rel=1e-6)  # e · e/‖e‖


def test_the_detr_effect_is_the_drop_of_the_detection_score():
    p = probe("detr")
    run = ablate(p, [("cross", 2, 1), ("encoder", 0, 3)], ZERO)
    probs = run.output[0][0, 2].softmax(-1)
    assert run.effect == pytest.approx(float(p.clean_score - probs[p.class_id]), abs=1e-6)
    assert run.objective == pytest.approx(-float(probs[p.class_id].log()), abs=1e-5)


@torch.no_grad()
def test_seq2seq_decodes_again_with_the_heads_gated():
    p = probe("seq2seq")
    src = torch.tensor([SRC])
    plain = greedy_generate(p.model, src, 9, 1, 2)[0].tolist()
    assert p.redecode(None, ZERO, eos_id=2) == plain
    assert p.redecode(head_gates(p.families), MEAN, eos_id=2) == plain


def test_no_run_writes_to_the_shared_model():
    p = probe("gpt")
    gradients(p)
    importance(p)
    assert all(param.grad is None for param in p.model.parameters())


def test_ablating_an_unknown_head_says_what_the_model_has():
    p = probe("gpt")
    with pytest.raises(ValueError, match="has 2 layers x 4 heads"):
        ablate(p, [("decoder_self", 2, 0)])
    with pytest.raises(ValueError, match="no 'cross' attention"):
        ablate(p, [("cross", 0, 0)])
