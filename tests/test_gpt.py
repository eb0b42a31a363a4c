"""GPT: parity with Hugging Face GPT-2, capture parity, causal zeros, our checkpoint round trip."""

import json

import pytest
import torch

from models.bert import ModelLoadError
from models.gpt import PRESETS, build_gpt, generate
from models.gpt_io import ALPHABET, UNKNOWN, CharTokenizer, load_gpt, save_gpt


def save_random_gpt2(directory, model_class, **config):
    """A transformers GPT-2 (`model_class`, e.g. GPT2Model) of `config` with random weights, eager
    attention, saved to `directory`; returns it (eval mode)."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = model_class(transformers.GPT2Config(**config, attn_implementation="eager")).eval()
    with torch.no_grad():  # GPT-2 initialises biases and LayerNorms trivially; perturb them so the test bites
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.save_pretrained(directory)
    return model


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    directory = tmp_path_factory.mktemp("gpt2")
    config = {"vocab_size": 101, "n_positions": 40, "n_embd": 48, "n_layer": 3, "n_head": 4}
    return directory, save_random_gpt2(directory, transformers.GPT2Model, **config)


def test_gpt2_parity_hidden_states_and_attention(gpt2_dir):
    directory, reference = gpt2_dir
    ours = load_gpt(directory).model
    ids = torch.randint(0, 101, (2, 23), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference(ids, output_hidden_states=True, output_attentions=True)
        got = ours(ids, capture=True)
    torch.testing.assert_close(got.last_hidden_state, expected.last_hidden_state, atol=1e-5, rtol=0)
    # HF's hidden_states: the embeddings, each block's output, with the last one after ln_f
    assert len(expected.hidden_states) == len(got.hidden_states)
    for ours_h, theirs_h in zip(got.hidden_states[:-1], expected.hidden_states[:-1], strict=True):
        torch.testing.assert_close(ours_h, theirs_h, atol=1e-5, rtol=0)
    assert len(expected.attentions) == len(got.attentions) == 3
    for record, theirs in zip(got.attentions, expected.attentions, strict=True):
        torch.testing.assert_close(record.probs, theirs, atol=1e-5, rtol=0)


def test_gpt2_directory_with_unsupported_option_is_refused(gpt2_dir, tmp_path):
    directory, _ = gpt2_dir
    raw = json.loads((directory / "config.json").read_text())
    raw["scale_attn_by_inverse_layer_idx"] = True
    (tmp_path / "config.json").write_text(json.dumps(raw))
    (tmp_path / "model.safetensors").write_bytes((directory / "model.safetensors").read_bytes())
    with pytest.raises(ModelLoadError, match="scale_attn_by_inverse_layer_idx"):
        load_gpt(tmp_path)


def test_capture_matches_fast_path_and_upper_triangle_is_exactly_zero():
    torch.manual_seed(0)
    model = build_gpt(PRESETS["gpt-nano"]).eval()
    ids = torch.randint(0, 97, (2, 30))
    with torch.no_grad():
        fast, slow = model(ids), model(ids, capture=True)
    torch.testing.assert_close(slow.logits, fast.logits, atol=1e-5, rtol=0)
    upper = torch.ones(30, 30, dtype=torch.bool).triu(1)
    for record in slow.attentions:
        assert (record.probs[..., upper] == 0).all()
        assert torch.isneginf(record.masked[..., upper]).all()
        assert torch.isfinite(record.masked[..., ~upper]).all()
        torch.testing.assert_close(record.probs.sum(-1), torch.ones(2, 2, 30))


def test_too_long_input_names_the_context():
    model = build_gpt(PRESETS["gpt-nano"])
    with pytest.raises(ValueError, match="context of 64"):
        model(torch.zeros(1, 65, dtype=torch.long))


def test_our_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    config = PRESETS["gpt-nano"]
    model = build_gpt(config).eval()
    save_gpt(model, config, ALPHABET, tmp_path)
    loaded = load_gpt(tmp_path)
    ids = torch.randint(0, 97, (1, 20))
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(ids).logits, model(ids).logits)
    assert loaded.model.lm_head.weight is loaded.model.token_embedding.weight


def test_char_tokenizer_marks_unknown_and_truncates_from_the_start():
    tok = CharTokenizer()
    enc = tok.encode("héllo\tworld", max_len=8)
    assert enc.n_dropped == 3 and enc.tokens[0] == "l"
    assert enc.unknown == ["\t"] and UNKNOWN in enc.tokens
    assert tok.decode(tok.encode("abc").ids) == "abc"
    assert tok.encode("é").unknown == ["é"]


def test_generation_keeps_each_steps_new_row():
    torch.manual_seed(0)
    model = build_gpt(PRESETS["gpt-nano"]).eval()
    result = generate(model, [1, 2, 3], n_new=5)
    assert len(result.ids) == 8 and result.ids[:3] == [1, 2, 3] and result.n_prompt == 3
    assert [tuple(row.shape) for row in result.rows] == [(2, 2, 3 + s) for s in range(5)]
    with torch.no_grad():
        final = model(torch.tensor([result.ids[:-1]]), capture=True).attentions
    for step, row in enumerate(result.rows):  # the step's row is that query's row of the full matrix
        torch.testing.assert_close(row, torch.stack([r.probs[0, :, 2 + step, : 3 + step] for r in final]))
    assert generate(model, [1, 2, 3], n_new=5).ids == result.ids  # greedy is deterministic
    with pytest.raises(ValueError, match="at most 61"):
        generate(model, [1, 2, 3], n_new=62)
    with pytest.raises(ValueError, match="prompt"):
        generate(model, [], n_new=1)


@pytest.mark.parametrize(
    "config_text, weights, message",
    [
        ("{not json", None, "not valid JSON"),
        ('{"model_type": "bert"}', None, "expected 'gpt2'"),
        ('{"model_type": "attention-lab-gpt", "gpt": {"n_layer": 2}}', None, "not a valid gpt-stdlib config"),
        (None, b"\x00" * 64, "corrupt or truncated"),
    ],
)
def test_broken_checkpoints_get_a_clear_message(tmp_path, config_text, weights, message):
    config = PRESETS["gpt-nano"]
    save_gpt(build_gpt(config), config, ALPHABET, tmp_path)
    if config_text is not None:
        (tmp_path / "config.json").write_text(config_text)
    if weights is not None:
        (tmp_path / "model.safetensors").write_bytes(weights)
    with pytest.raises(ModelLoadError, match=message):
        load_gpt(tmp_path)
