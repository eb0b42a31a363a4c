"""Value-weighted norms (Kobayashi et al. 2020): the terms α^h_ij f^h(x_j), summed over keys and heads with
the output bias, give back each attention sublayer's output (read by a forward hook) within 1e-4, on
MiniLM, gpt-stdlib, every attention of the encoder-decoder and a grouped-query Llama; the norms equal their
definitions."""

import numpy as np
import pytest
import torch

from models.attention import LAZY
from models.bert import load_bert
from models.explain import value_norms
from models.explain.capture import InputError, attention_modules, capture_text
from models.explain.value_norms import ValueNorms, summed_norms, transformed_values
from models.gpt_io import load_gpt
from models.llama import LlamaConfig, build_llama
from models.readout import readout
from models.registry import load_model


def captured_with_outputs(model, text: str):
    """capture_text, and each attention module's output of the captured pass (its last call)."""
    outputs = {}

    def keep(key):
        def hook(module, args, out):
            outputs[key] = out[0]  # (B, Tq, d); out[1] is the record

        return hook

    handles = [
        module.register_forward_hook(keep((name, layer)))
        for name, modules in attention_modules(model).items()
        for layer, module in enumerate(modules)
    ]
    try:
        captured = capture_text(model, text)
    finally:
        for handle in handles:
            handle.remove()
    return captured, outputs


MODELS = {
    "minilm": (load_bert, "The animal didn't cross the street because it was too tired."),
    "gpt-stdlib": (load_gpt, "Return the number of items in the list."),
    "seq2seq-dates": (lambda: load_model("seq2seq-dates"), "the 3rd of sept 1999"),
}


@pytest.fixture(scope="module", params=list(MODELS))
def captured(request):
    load, text = MODELS[request.param]
    return captured_with_outputs(load(), text)


def test_the_terms_add_up_to_the_attention_output(captured):
    captured, outputs = captured
    for name, family in captured.families.items():
        norms = ValueNorms(family, captured.modules[name])
        for layer in range(family.n_layers):
            rebuilt = norms.reconstruct(layer)  # (Tq, d)
            actual = outputs[(name, layer)][0].double()
            torch.testing.assert_close(rebuilt, actual, atol=1e-4, rtol=0)
            # the same through the kernel's own per-head outputs A·V, merged by W_O
            module = captured.modules[name][layer]
            heads = captured.heads_out[name][layer]  # (H, Tq, dh)
            merged = heads.transpose(0, 1).reshape(heads.shape[1], -1)
            torch.testing.assert_close(module.out_proj(merged).double(), actual, atol=1e-5, rtol=0)


@torch.no_grad()
def test_norms_equal_their_definitions(captured):
    captured, _ = captured
    name, family = next(iter(captured.families.items()))
    norms = ValueNorms(family, captured.modules[name])
    layer = family.n_layers - 1
    alpha = family.weights(layer, slice(None)).double()  # (H, Tq, Tk)
    f = transformed_values(family.v[layer], captured.modules[name][layer]).double()  # (H, Tk, d)
    terms = alpha[..., None] * f[:, None]  # (H, Tq, Tk, d) α^h_ij f^h(x_j), small inputs only
    np.testing.assert_allclose(norms.weighted(layer), terms.norm(dim=-1).numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(norms.weighted(layer, 1), terms[1].norm(dim=-1).numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(norms.summed(layer), terms.sum(0).norm(dim=-1).numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(norms.norms(layer), f.norm(dim=-1).numpy(), rtol=1e-5)


def test_summed_norms_by_hand():
    weights = torch.tensor([[[1.0, 0.0]], [[0.5, 0.5]]])  # (H=2, Tq=1, Tk=2)
    f = torch.tensor([[[3.0, 0.0], [0.0, 1.0]], [[0.0, 4.0], [2.0, 0.0]]])  # (H, Tk, d=2)
    # key 0: 1·(3, 0) + 0.5·(0, 4) = (3, 2); key 1: 0·(0, 1) + 0.5·(2, 0) = (1, 0)
    np.testing.assert_allclose(summed_norms(weights, f), [[np.sqrt(13), 1.0]])


def test_inputs_the_models_cannot_read():
    with pytest.raises(InputError, match="empty"):
        capture_text(load_gpt(), "  ")
    with pytest.raises(InputError, match="does not know"):
        capture_text(load_model("seq2seq-dates"), "26/11/2026")


@torch.no_grad()
def test_grouped_query_attention_adds_up_too():
    """A Llama with 4 query heads sharing 2 K/V heads and an output bias: each head's f^h uses the values of
    the K/V head it shares, and the terms rebuild every layer's attention output (hooked on o_proj's
    GroupedQueryAttention)."""
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=50, n_layer=2, n_head=4, n_kv_head=2, d_model=32, d_head=8, d_mlp=64,
                         out_bias=True)  # fmt: skip
    model = build_llama(config).eval()
    outputs = {}
    for layer, block in enumerate(model.layers):
        block.self_attn.register_forward_hook(lambda m, a, out, layer=layer: outputs.update({layer: out[0]}))
    out = model(torch.randint(0, 50, (1, 12)), capture=LAZY, unrotated=False)
    family = readout(decoder_self=out.attentions)["decoder_self"]
    norms = ValueNorms(family, [block.self_attn for block in model.layers])
    for layer in range(2):
        torch.testing.assert_close(norms.reconstruct(layer), outputs[layer][0].double(), atol=1e-5, rtol=0)
    kv = model.layers[1].self_attn.v_proj(model.layers[1].input_layernorm(out.hidden_states[1]))[0]
    v_of_head_3 = kv.view(12, 2, 8)[:, 1]  # (T, dh): head 3 shares K/V head 1
    w_o = model.layers[1].self_attn.o_proj.weight[:, 3 * 8 : 4 * 8]  # (d, dh)
    np.testing.assert_allclose(norms.norms(1)[3], (v_of_head_3 @ w_o.T).norm(dim=-1).numpy(), rtol=1e-5)


def test_the_summed_norms_in_blocks_of_queries_equal_one_block(monkeypatch):
    captured = capture_text(load_bert(), "The animal didn't cross the street because it was too tired.")
    family = captured.families["encoder"]
    norms = ValueNorms(family, captured.modules["encoder"])
    whole = norms.summed(3)
    monkeypatch.setattr(value_norms, "BLOCK_BYTES", 8 * family.n_heads * family.shape[1] * 3)  # 3 rows
    np.testing.assert_allclose(norms.summed(3), whole, rtol=1e-5)  # float32 scores of other shapes
