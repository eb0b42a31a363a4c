"""Llama-family decoders (models.llama, models.llama_io) against transformers, the reference.

Random-init tiny Llama (GQA 4:1, llama3 RoPE scaling), Mistral (sliding window shorter than the input,
linear RoPE scaling) and Qwen2 (q/k/v biases, tied embeddings, multi-query, the window on some layers)
are saved by transformers' save_pretrained, sharded and not, and loaded by our loader: hidden states,
logits and every attention map (captured, and on demand from a LAZY capture) match transformers' eager
attention within 1e-4 in float32.
"""

import json
from dataclasses import replace

import pytest
import torch

from models import rope
from models.attention import LAZY
from models.errors import ModelLoadError
from models.llama import PRESETS, build_llama, kv_groups, sliding_window_mask
from models.llama_io import TextLlama, llama_config, load_llama, save_llama
from models.maps import AttentionMaps
from models.readout import readout
from models.registry import kind_of, load_model

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

TEXT = "Attention is all you need. 注意力就是你所需要的一切 🤖🚀! def f(x): return x * 2  # 完成 ✅"
ATOL = 1e-4
VOCAB = 320


def tiny_tokenizer() -> tokenizers.Tokenizer:
    """A byte-level BPE trained on a few lines (so Chinese and emoji split into byte tokens), adding <s>."""
    from tokenizers import decoders, models, pre_tokenizers, processors, trainers

    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=["<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([TEXT, "all you need is attention", "注意力 注意 力量 🤖 🚀"] * 4, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    return tok


TOKENIZER = tiny_tokenizer()


def hf_config(kind: str):
    common = dict(
        vocab_size=TOKENIZER.get_vocab_size(),
        hidden_size=64,
        intermediate_size=96,
        max_position_embeddings=256,
        rms_norm_eps=1e-5,
    )
    if kind == "llama":  # GQA 4:1, head_dim != hidden / heads, Llama 3.1's frequency scaling
        return transformers.LlamaConfig(
            **common, num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=2, head_dim=16,
            rope_theta=500000.0, tie_word_embeddings=False,
            rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                          "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
        )  # fmt: skip
    if kind == "mistral":  # a window of 6 on a longer input, linear scaling
        return transformers.MistralConfig(
            **common, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, sliding_window=6,
            rope_theta=10000.0, rope_scaling={"rope_type": "linear", "factor": 2.0},
        )  # fmt: skip
    return transformers.Qwen2Config(  # biases, tied embeddings, multi-query, the window on layers 1 and 2
        **common, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=1, tie_word_embeddings=True,
        use_sliding_window=True, sliding_window=5, max_window_layers=1, rope_theta=1000000.0,
    )  # fmt: skip


MODEL_CLASSES = {
    "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
}


def reference(kind: str, seed: int = 0):
    """A random transformers model with weights large enough that heads differ, in eager attention."""
    torch.manual_seed(seed)
    config = hf_config(kind)
    config._attn_implementation = "eager"
    model = getattr(transformers, MODEL_CLASSES[kind])(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(0.15 * torch.randn_like(p))
    return model


def hf_load(directory, dtype=torch.float32):
    model = transformers.AutoModelForCausalLM.from_pretrained(
        directory, attn_implementation="eager", dtype=dtype
    )
    return model.eval()


@pytest.fixture(scope="module", params=[(k, s) for k in MODEL_CLASSES for s in (False, True)],
                ids=lambda p: f"{p[0]}-{'sharded' if p[1] else 'single'}")  # fmt: skip
def saved(request, tmp_path_factory):
    kind, sharded = request.param
    directory = tmp_path_factory.mktemp(f"{kind}-{sharded}")
    reference(kind).save_pretrained(directory, max_shard_size="40KB" if sharded else "50GB")
    TOKENIZER.save(str(directory / "tokenizer.json"))
    assert (directory / "model.safetensors.index.json").exists() == sharded
    return kind, directory


def ids_of(text: str = TEXT * 2) -> list[int]:
    return TOKENIZER.encode(text).ids


def test_hidden_states_logits_and_every_map_match_transformers(saved):
    kind, directory = saved
    ours = load_llama(directory)
    ref = hf_load(directory)
    ids = ids_of()
    assert len(ids) > 40
    with torch.no_grad():
        expected = ref(torch.tensor([ids]), output_attentions=True, output_hidden_states=True)
    out = ours.run(ids, capture=True)
    lazy = ours.run(ids, capture=LAZY)
    n_layer = ours.config.n_layer
    assert len(out.hidden_states) == len(expected.hidden_states) == n_layer + 1
    for ours_h, ref_h in zip(out.hidden_states[:n_layer], expected.hidden_states[:n_layer]):
        torch.testing.assert_close(ours_h, ref_h, atol=ATOL, rtol=0)
    torch.testing.assert_close(out.last_hidden_state, expected.hidden_states[-1], atol=ATOL, rtol=0)
    torch.testing.assert_close(out.logits, expected.logits, atol=ATOL, rtol=0)
    torch.testing.assert_close(lazy.logits, expected.logits, atol=ATOL, rtol=0)
    maps = AttentionMaps(readout(decoder_self=lazy.attentions)["decoder_self"])
    for layer, ref_probs in enumerate(expected.attentions):
        torch.testing.assert_close(out.attentions[layer].probs[0], ref_probs[0], atol=ATOL, rtol=0)
        for head in range(ours.config.n_head):
            on_demand = torch.from_numpy(maps.head(layer, head).copy())
            torch.testing.assert_close(on_demand, ref_probs[0, head], atol=ATOL, rtol=0)


def test_a_masked_weight_is_exactly_zero_outside_the_window(saved):
    kind, directory = saved
    ours = load_llama(directory)
    ids = ids_of()
    t = len(ids)
    maps = AttentionMaps(readout(decoder_self=ours.run(ids, capture=LAZY).attentions)["decoder_self"])
    window = {"llama": None, "mistral": 6, "qwen2": 5}[kind]
    windowed = {"llama": [], "mistral": [0, 1], "qwen2": [1, 2]}[kind]
    with torch.no_grad():
        expected = hf_load(directory)(torch.tensor([ids]), output_attentions=True).attentions
    for layer in range(ours.config.n_layer):
        allowed = (
            sliding_window_mask(t, window) if layer in windowed else torch.ones(t, t).tril().bool()
        ).numpy()
        for head in range(ours.config.n_head):
            weights = maps.head(layer, head)
            assert (weights[~allowed] == 0).all()  # exactly zero, not small
            assert (weights[allowed] > 0).all()
            assert ((expected[layer][0, head].numpy() == 0) == ~allowed).all()  # transformers masks the same
    if window:
        i = t - 1  # the last query sees exactly `window` keys: i - window < j <= i
        assert (maps.head(windowed[0], 0)[i] > 0).sum() == window


def test_capture_keeps_q_and_k_before_and_after_rope_and_shows_which_heads_share_kv(saved):
    kind, directory = saved
    ours = load_llama(directory)
    ref = hf_load(directory)
    ids = ids_of()
    out = ours.run(ids, capture=LAZY)
    family = readout(decoder_self=out.attentions)["decoder_self"]
    cfg = ours.config
    cos, sin = rope.cos_sin(ours.model.inv_freq, torch.arange(len(ids)), torch.float32)
    for layer, before in enumerate(out.unrotated):
        block = ref.model.layers[layer].self_attn
        with torch.no_grad():
            x = ref.model.layers[layer].input_layernorm(out.hidden_states[layer])
            q_ref = block.q_proj(x).view(1, len(ids), cfg.n_head, cfg.d_head).transpose(1, 2)
            k_ref = block.k_proj(x).view(1, len(ids), cfg.n_kv_head, cfg.d_head).transpose(1, 2)
        torch.testing.assert_close(before.q, q_ref, atol=ATOL, rtol=0)  # transformers' q before RoPE
        torch.testing.assert_close(before.k, k_ref, atol=ATOL, rtol=0)
        torch.testing.assert_close(family.q[layer], rope.rotate(before.q, cos, sin)[0])
        for g, heads in enumerate(kv_groups(cfg.n_head, cfg.n_kv_head)):
            for h in heads:
                assert ours.model.kv_head(h) == g
                torch.testing.assert_close(family.k[layer, h], rope.rotate(before.k, cos, sin)[0, g])
                assert torch.equal(family.v[layer, h], family.v[layer, heads[0]])
    assert len(kv_groups(cfg.n_head, cfg.n_kv_head)) == cfg.n_kv_head


def test_kv_groups_follow_transformers_repeat_kv():
    from transformers.models.llama.modeling_llama import repeat_kv

    kv = torch.arange(3.0).view(1, 3, 1, 1)  # K/V head g holds the value g
    repeated = repeat_kv(kv, 4).flatten().tolist()  # 12 query heads
    assert [[repeated[h] for h in heads] for heads in kv_groups(12, 3)] == [[0.0] * 4, [1.0] * 4, [2.0] * 4]
    assert kv_groups(8, 8) == [[h] for h in range(8)]


@pytest.mark.parametrize(
    "scaling",
    [
        None,
        {"rope_type": "linear", "factor": 4.0},
        {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
         "original_max_position_embeddings": 128},
    ],
    ids=["default", "linear", "llama3"],
)  # fmt: skip
@pytest.mark.parametrize("partial", [1.0, 0.5])
def test_inverse_frequencies_equal_transformers_bit_for_bit(scaling, partial):
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    if scaling is None and partial != 1.0:
        pytest.skip("transformers' default Llama RoPE ignores partial_rotary_factor")
    config = transformers.LlamaConfig(
        hidden_size=256, num_attention_heads=4, rope_theta=500000.0, rope_scaling=scaling and dict(scaling),
        partial_rotary_factor=partial, max_position_embeddings=1024,
    )  # fmt: skip
    if scaling is None:
        expected = transformers.models.llama.modeling_llama.LlamaRotaryEmbedding(config).inv_freq
    else:
        expected, _ = ROPE_INIT_FUNCTIONS[scaling["rope_type"]](config, "cpu")
    ours = rope.inverse_frequencies(64, 500000.0, partial, scaling)
    assert ours.shape == (int(64 * partial) // 2,)
    assert torch.equal(ours, expected)


def test_partial_rotary_turns_the_first_channels_and_scores_depend_on_the_offset_only():
    torch.manual_seed(0)
    inv_freq = rope.inverse_frequencies(16, 10000.0, partial_rotary_factor=0.5)
    cos, sin = rope.cos_sin(inv_freq, torch.arange(40), torch.float64)
    q, k = torch.randn(2, 1, 1, 1, 16, dtype=torch.float64)  # each (1, 1, 1, dh)
    qs = rope.rotate(q.expand(1, 1, 40, 16), cos, sin)[0, 0]  # (40, 16): the same q at every position
    ks = rope.rotate(k.expand(1, 1, 40, 16), cos, sin)[0, 0]
    assert torch.equal(qs[:, 8:], q[0, 0, 0, 8:].expand(40, 8))  # channels past rotary_dim pass unchanged
    assert not torch.allclose(qs[1, :8], qs[0, :8])
    scores = qs @ ks.T  # (40, 40)
    for offset in (0, 3, 17):
        diagonal = scores.diagonal(-offset)
        torch.testing.assert_close(diagonal, diagonal[:1].expand_as(diagonal))  # rotation keeps i - j only
    with pytest.raises(ValueError, match="even number"):
        rope.inverse_frequencies(16, 10000.0, partial_rotary_factor=0.2)  # 3 channels


def test_tokenizer_ids_equal_transformers_on_chinese_and_emoji(saved):
    kind, directory = saved
    ours = load_llama(directory)
    reference_tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_file=str(directory / "tokenizer.json")
    )
    for text in (TEXT, "🤖🚀 注意力", "plain ascii, no specials"):
        enc = ours.encode(text)
        assert enc.ids == reference_tokenizer(text)["input_ids"]
        assert enc.ids[0] == TOKENIZER.token_to_id("<s>") and enc.tokens[0] == "<s>"
        assert len(enc.tokens) == len(enc.ids)
    assert any(len(TOKENIZER.encode(ch).ids) > 2 for ch in "注🤖")  # characters split into byte tokens
    clipped = ours.encode(TEXT, max_len=10)
    assert clipped.ids == ours.encode(TEXT).ids[-10:] and clipped.n_dropped == len(ours.encode(TEXT).ids) - 10


def test_bf16_weights_load_upcast_on_cpu_and_still_match(tmp_path):
    model = reference("llama", seed=1)
    model.to(torch.bfloat16).save_pretrained(tmp_path)
    ours = load_llama(tmp_path)
    assert ours.dtype == torch.float32
    ids = ids_of()
    with torch.no_grad():
        same_weights = hf_load(tmp_path, torch.float32)(torch.tensor([ids]), output_attentions=True)
        original = reference("llama", seed=1)(torch.tensor([ids]), output_attentions=True)
    out = ours.run(ids, capture=True)
    torch.testing.assert_close(out.logits, same_weights.logits, atol=ATOL, rtol=0)
    torch.testing.assert_close(out.logits, original.logits, atol=0.1, rtol=0.05)  # bf16 rounding of weights
    for layer, probs in enumerate(original.attentions):
        torch.testing.assert_close(out.attentions[layer].probs, probs, atol=0.03, rtol=0)
    kept = load_llama(tmp_path, dtype=torch.bfloat16)  # asked for: stays bf16 on the CPU
    assert kept.dtype == torch.bfloat16
    half = kept.run(ids, capture=True)
    assert half.logits.dtype == torch.bfloat16
    for layer, probs in enumerate(original.attentions):
        torch.testing.assert_close(half.attentions[layer].probs.float(), probs, atol=0.05, rtol=0)


def test_registry_loads_a_llama_family_directory_as_causal(saved):
    kind, directory = saved
    assert kind_of(str(directory)) == "causal"
    loaded = load_model(str(directory), kind="causal")
    assert isinstance(loaded, TextLlama) and loaded.model_type == kind
    with pytest.raises(ModelLoadError, match="this page needs a BERT-family encoder"):
        load_model(str(directory), kind="encoder")


def test_our_checkpoint_round_trips_and_transformers_reads_it(tmp_path):
    torch.manual_seed(0)
    config = replace(PRESETS["llama-nano"], vocab_size=TOKENIZER.get_vocab_size())
    model = build_llama(config).eval()
    save_llama(model, config, tmp_path, TOKENIZER, extra={"training": {"steps": 0}})
    loaded = load_llama(tmp_path)
    assert loaded.training == {"steps": 0} and loaded.config == config
    ids = torch.tensor([list(range(1, 60))])
    with torch.no_grad():
        expected = model(ids).logits
        torch.testing.assert_close(loaded.model(ids).logits, expected, atol=0, rtol=0)
        torch.testing.assert_close(hf_load(tmp_path)(ids).logits, expected, atol=ATOL, rtol=0)


def test_capture_paths_agree_and_gradients_reach_the_weights():
    torch.manual_seed(0)
    model = build_llama(PRESETS["llama-nano"])
    ids = torch.randint(0, 256, (2, 33))
    fast = model(ids).logits
    full = model(ids, capture=True)
    torch.testing.assert_close(full.logits, fast, atol=1e-5, rtol=0)
    torch.testing.assert_close(model(ids, capture=LAZY).logits, fast, atol=1e-5, rtol=0)
    torch.nn.functional.cross_entropy(fast[:, :-1].flatten(0, 1), ids[:, 1:].flatten()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    assert model(ids, capture=True, unrotated=False).unrotated is None


def test_a_forward_without_logits_keeps_the_same_attention_and_hidden_states():
    torch.manual_seed(0)
    model = build_llama(PRESETS["llama-nano"]).eval()
    ids = torch.randint(0, 256, (1, 40))
    with torch.no_grad():
        full, bare = model(ids, capture=LAZY), model(ids, capture=LAZY, logits=False)
    assert full.logits.shape == (1, 40, 256) and bare.logits is None
    for a, b in zip(full.attentions, bare.attentions):
        assert torch.equal(a.q, b.q) and torch.equal(a.k, b.k) and torch.equal(a.v, b.v)
    assert torch.equal(full.last_hidden_state, bare.last_hidden_state)


def base_raw(**change) -> dict:
    raw = hf_config("llama").to_dict() | {"model_type": "llama"}
    return raw | change


@pytest.mark.parametrize(
    "change, field",
    [
        ({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}, "rope_parameters": None}, "rope_scaling"),
        ({"rope_parameters": {"rope_type": "dynamic", "factor": 2.0, "rope_theta": 1e4}}, "rope_parameters"),
        ({"hidden_act": "gelu"}, "hidden_act"),
        ({"hidden_size": None}, "hidden_size"),
        ({"num_key_value_heads": 3}, "num_key_value_heads"),
        ({"quantization_config": {"quant_method": "gptq"}}, "quantization_config"),
        ({"model_type": "gemma"}, "model_type"),
        ({"partial_rotary_factor": 0.2, "rope_parameters": None}, "partial_rotary_factor"),
        ({"vocab_size": "many"}, "vocab_size"),
    ],
)
def test_unsupported_configs_name_the_field(change, field):
    with pytest.raises(ModelLoadError, match=field):
        llama_config(base_raw(**change))


def test_old_style_rope_fields_and_qwen2_window_layers_are_read():
    raw = {k: v for k, v in base_raw().items() if k != "rope_parameters"}
    raw |= {"rope_theta": 5e5, "rope_scaling": {"type": "linear", "factor": 2.0}}
    config = llama_config(raw)
    assert config.rope_theta == 5e5 and config.rope_scaling == {"rope_type": "linear", "factor": 2.0}
    qwen = hf_config("qwen2").to_dict() | {"model_type": "qwen2"}
    assert llama_config(qwen).window_layers == [1, 2] and llama_config(qwen).qkv_bias
    qwen |= {"layer_types": ["sliding_attention", "full_attention", "sliding_attention"]}
    assert llama_config(qwen).window_layers == [0, 2]
    assert llama_config(qwen | {"use_sliding_window": False}).sliding_window is None


def test_missing_or_corrupt_weights_get_a_model_load_error(saved, tmp_path):
    kind, directory = saved
    (tmp_path / "config.json").write_text((directory / "config.json").read_text())
    with pytest.raises(ModelLoadError, match="neither model.safetensors nor"):
        load_llama(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(ModelLoadError, match="corrupt or truncated"):
        load_llama(tmp_path)
    raw = json.loads((directory / "config.json").read_text())
    (tmp_path / "config.json").write_text(
        json.dumps(raw | {"num_hidden_layers": raw["num_hidden_layers"] + 1, "layer_types": None})
    )
    (tmp_path / "model.safetensors").unlink()
    for f in directory.glob("model*.safetensors*"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    with pytest.raises(ModelLoadError, match="missing"):
        load_llama(tmp_path)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_bf16_stays_bf16_and_fp32_capture_is_exact(saved, tmp_path):
    kind, directory = saved
    ids = ids_of()
    with torch.no_grad():
        expected = hf_load(directory)(torch.tensor([ids]), output_attentions=True)
    ours = load_llama(directory, device="cuda")
    out = ours.run(ids, capture=True)
    lazy = ours.run(ids, capture=LAZY)
    torch.testing.assert_close(out.logits.cpu(), expected.logits, atol=ATOL, rtol=0)
    maps = AttentionMaps(readout(decoder_self=lazy.attentions)["decoder_self"])
    for layer, probs in enumerate(expected.attentions):
        torch.testing.assert_close(torch.from_numpy(maps.layer(layer)), probs[0], atol=ATOL, rtol=0)
    hf_load(directory).to(torch.bfloat16).save_pretrained(tmp_path)
    half = load_llama(tmp_path, device="cuda")
    assert half.dtype == torch.bfloat16
    half_out = half.run(ids, capture=LAZY)
    assert half_out.logits.dtype == torch.bfloat16
    torch.testing.assert_close(half_out.logits.float().cpu(), expected.logits, atol=0.15, rtol=0.05)


def test_head_gates_of_one_leave_the_model_unchanged_and_a_zero_gate_removes_a_head():
    torch.manual_seed(0)
    config = PRESETS["llama-nano"]
    model = build_llama(config).eval()
    ids = torch.randint(0, 256, (2, 17))
    plain = model(ids, capture=True)
    gates = torch.ones(config.n_layer, config.n_head, requires_grad=True)
    gated = model(ids, capture=True, head_gates=gates)
    assert torch.equal(gated.logits, plain.logits)
    gated.logits.sum().backward()
    assert gates.grad.abs().min() > 0  # every head's gate gets a gradient
    off = torch.ones(config.n_layer, config.n_head)
    off[1, 2] = 0.0
    knocked = model(ids, capture=True, head_gates=off)
    torch.testing.assert_close(knocked.hidden_states[1], plain.hidden_states[1], atol=0, rtol=0)  # layer 0
    # layer 1 without head 2: its output projection sees zeros in that head's channels
    block = model.layers[1]
    heads = knocked.attentions[1].out.clone()  # (B, H, T, dh) as computed, before the gate
    heads[:, 2] = 0
    merged = heads.transpose(1, 2).reshape(2, 17, -1)
    expected = plain.hidden_states[1] + block.self_attn.o_proj(merged)
    expected = expected + block.mlp(block.post_attention_layernorm(expected))
    torch.testing.assert_close(knocked.hidden_states[2], expected, atol=1e-6, rtol=0)
