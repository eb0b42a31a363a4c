"""AppTest of the causal decoder page on a Llama-family directory: a random tiny Mistral (GQA 2:1, a
sliding window of 4) saved by transformers with a byte-level BPE tokenizer."""

from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

import models.llama
from models.llama import sliding_window_mask
from tests.conftest import count_calls
from tests.test_causal_page import figure, z
from tests.test_gpt import save_random_gpt2
from tests.test_llama import TOKENIZER
from ui.llama_causal import LOCAL

transformers = pytest.importorskip("transformers")

PAGE = str(Path(__file__).parents[1] / "app_pages" / "causal_decoder.py")
TEXT = "def f(x):\n    return x + 1\n\n" * 3
WINDOW = 4


@pytest.fixture(scope="module")
def mistral_dir(tmp_path_factory):
    torch.manual_seed(0)
    config = transformers.MistralConfig(
        vocab_size=TOKENIZER.get_vocab_size(), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, sliding_window=WINDOW, max_position_embeddings=512,
    )  # fmt: skip
    directory = tmp_path_factory.mktemp("mistral")
    transformers.MistralForCausalLM(config).save_pretrained(directory)
    TOKENIZER.save(str(directory / "tokenizer.json"))
    return directory


def run_with(**state):
    at = AppTest.from_file(PAGE, default_timeout=180)
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


def test_a_local_mistral_shows_its_groups_scores_and_window(mistral_dir, monkeypatch):
    forwards = count_calls(monkeypatch, (models.llama.Llama, "forward"))
    at = run_with(cd_model=LOCAL, cd_model_path=str(mistral_dir), cdl_text_input=TEXT)
    assert not at.exception and not at.error
    summary = " ".join(m.value for m in at.markdown)
    assert "2 layers × 4 query heads sharing 2 K/V heads" in summary
    assert "sliding window of 4 tokens on every layer" in summary
    captions = " ".join(c.value for c in at.caption)
    assert "K/V head 0: query heads [0, 1]; K/V head 1: query heads [2, 3]" in captions
    for name in ("sink", "previous_token", "induction"):
        values = z(at, f"cdl_{name}")
        assert values.shape == (2, 4) and ((values >= 0) & (values <= 1)).all()
    t = len(TOKENIZER.encode(TEXT).ids)
    shown = z(at, "cdl_text_map")
    assert shown.shape == (t, t)
    allowed = sliding_window_mask(t, WINDOW).numpy()
    assert np.isnan(shown[~allowed]).all() and np.isfinite(shown[allowed]).all()  # the window drawn grey
    np.testing.assert_allclose(np.nansum(shown, axis=1), 1, atol=1e-5)
    assert len(forwards) == 2  # the text and the induction probe, once each
    at.selectbox(key="cdl_head").set_value(3).run()
    assert not at.exception
    assert "Head 3 reads K/V head 1, which it shares with query heads [2, 3]" in " ".join(
        c.value for c in at.caption
    )
    layer = at.session_state["cdl_layer"]
    assert figure(at, "cdl_text_map")["layout"]["title"]["text"] == f"layer {layer}, head 3"
    assert len(forwards) == 2  # a head change computes a map from q and k, never a forward
    at.toggle(key="cdl_vn_on").set_value(True).run()  # value norms: f of head 3 from K/V head 1's values
    at.selectbox(key="cdl_vn_decoder_self_head").set_value(3).run()
    assert not at.exception and not at.error
    alpha, weighted = z(at, "cdl_alpha_map"), z(at, "cdl_weighted_map")
    assert np.isnan(alpha[~allowed]).all() and np.isnan(z(at, "cdl_summed_map")[~allowed]).all()
    np.testing.assert_allclose(weighted, alpha * z(at, "cdl_value_lengths")[0][None, :], rtol=1e-5, atol=1e-6)
    assert len(forwards) == 2


def test_an_empty_path_and_a_wrong_directory_get_messages(tmp_path):
    at = run_with(cd_model=LOCAL)
    assert not at.exception and "Type a Hugging Face name" in at.info[0].value
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    at = run_with(cd_model=LOCAL, cd_model_path=str(tmp_path))
    assert not at.exception and "field 'hidden_size' is missing" in at.error[0].value


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("gpt2")
    config = {
        "vocab_size": TOKENIZER.get_vocab_size(),
        "n_positions": 256,
        "n_embd": 32,
        "n_layer": 2,
        "n_head": 4,
    }
    model = save_random_gpt2(directory, transformers.GPT2LMHeadModel, **config)
    TOKENIZER.save(str(directory / "tokenizer.json"))
    return directory, model


def test_a_gpt2_directory_gets_the_pages_own_sections(gpt2_dir):
    directory, reference = gpt2_dir
    at = run_with(cd_model=LOCAL, cd_model_path=str(directory), cd_text=TEXT, cd_repeat=False)
    assert not at.exception and not at.error
    assert "context 256 tokens" in " ".join(m.value for m in at.markdown)
    ids = TOKENIZER.encode(TEXT).ids
    layer, head = at.session_state["cd_layer"], at.session_state["cd_head"]
    with torch.no_grad():
        expected = reference(torch.tensor([ids]), output_attentions=True).attentions[layer][0, head].numpy()
    shown = z(at, "own_text")
    assert shown.shape == (len(ids), len(ids))
    np.testing.assert_allclose(shown, expected, atol=1e-5)
    assert (shown[np.triu_indices(len(ids), 1)] == 0).all()  # the causal mask: exactly 0 above the diagonal
