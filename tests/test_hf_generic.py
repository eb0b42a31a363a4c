"""Transformers models of types we do not instrument (models/hf_generic.py), read through transformers:
random tiny RoBERTa (an encoder) and OPT (a decoder) saved by transformers, through the registry and the
text page. Nothing is downloaded."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest
from tokenizers import Tokenizer, models, pre_tokenizers

from models.errors import ModelLoadError
from models.hf_generic import HFModel
from models.registry import kind_of, load_model
from tests.conftest import z

transformers = pytest.importorskip("transformers")

WORDS = ["<pad>", "<s>", "</s>", "<unk>", "the", "cat", "sat", "on", "mat", "a"]
TEXT = "the cat sat on the mat"


def save_tokenizer(directory: Path) -> None:
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.add_special_tokens(["<pad>", "<s>", "</s>", "<unk>"])
    tokenizer.save(str(directory / "tokenizer.json"))


def save_model(model, directory: Path) -> Path:
    model.save_pretrained(directory)
    save_tokenizer(directory)
    return directory


@pytest.fixture(scope="module")
def roberta_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    config = transformers.RobertaConfig(
        vocab_size=len(WORDS), hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=32, max_position_embeddings=40, pad_token_id=0,
    )  # fmt: skip
    return save_model(transformers.RobertaModel(config), tmp_path_factory.mktemp("roberta"))


@pytest.fixture(scope="module")
def opt_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    config = transformers.OPTConfig(
        vocab_size=len(WORDS), hidden_size=16, num_hidden_layers=2, ffn_dim=32, num_attention_heads=2,
        max_position_embeddings=40, word_embed_proj_dim=16, pad_token_id=0,
    )  # fmt: skip
    return save_model(transformers.OPTForCausalLM(config), tmp_path_factory.mktemp("opt"))


def reference(directory: Path, ids: list[int]) -> list[torch.Tensor]:
    """transformers' own eager attention, loaded and run here without our code."""
    model = transformers.AutoModel.from_pretrained(directory, attn_implementation="eager").eval()
    with torch.no_grad():
        return list(model(input_ids=torch.tensor([ids]), output_attentions=True).attentions)


def test_an_encoder_of_another_type_shows_its_own_attention(roberta_dir):
    assert kind_of(str(roberta_dir)) == "encoder"
    model = load_model(str(roberta_dir), kind="encoder")
    assert isinstance(model, HFModel) and not model.causal and "not available" in model.notice
    enc = model.encode(TEXT)
    assert enc.tokens == TEXT.split() and model.special_tokens == {"<pad>", "<s>", "</s>", "<unk>"}
    records = model.run(enc.ids).attentions
    expected = reference(roberta_dir, enc.ids)
    assert len(records) == 2 and records[0].probs.shape == (1, 4, 6, 6)
    for record, ref in zip(records, expected, strict=True):
        torch.testing.assert_close(record.probs, ref, atol=0, rtol=0)
        torch.testing.assert_close(record.probs.sum(-1), torch.ones(1, 4, 6))
        assert record.mask is None and record.q.shape == (1, 4, 6, 0)


def test_a_decoder_of_another_type_is_causal(opt_dir):
    assert kind_of(str(opt_dir)) == "causal"
    model = load_model(str(opt_dir), kind="causal")
    assert isinstance(model, HFModel) and model.causal
    records = model.run(model.encode(TEXT).ids).attentions
    upper = torch.ones(6, 6, dtype=torch.bool).triu(1)
    for record in records:
        assert torch.equal(record.mask[0, 0], ~upper)
        assert torch.all(record.probs[0][:, upper] == 0)  # what transformers' own causal mask gave
    with pytest.raises(ModelLoadError, match="is a causal decoder .*needs a BERT-family encoder"):
        load_model(str(opt_dir), kind="encoder")


def test_unsupported_transformers_models_get_a_message(tmp_path):
    t5 = tmp_path / "t5"
    config = transformers.T5Config(
        vocab_size=len(WORDS), d_model=8, d_kv=4, d_ff=16, num_layers=1, num_heads=2
    )
    save_model(transformers.T5Model(config), t5)
    with pytest.raises(ModelLoadError, match="is a transformers encoder-decoder \\(t5\\)"):
        load_model(str(t5), kind="encoder")
    remote = tmp_path / "remote"
    remote.mkdir()
    (remote / "config.json").write_text(json.dumps({"model_type": "mine", "architectures": ["MineModel"]}))
    save_tokenizer(remote)
    with pytest.raises(ModelLoadError, match="transformers cannot load"):
        load_model(str(remote), kind="encoder")


def test_the_text_page_shows_it_with_a_notice(roberta_dir):
    at = AppTest.from_file(
        str(Path(__file__).parents[1] / "app_pages" / "text_attention.py"), default_timeout=120
    )
    at.session_state["model_source"] = "A BERT-family model by name or path"
    at.session_state["model_path"] = str(roberta_dir)
    at.session_state["text_input"] = TEXT
    at.run()
    assert not at.exception and not at.error
    assert any("step-by-step stages" in i.value for i in at.info)
    expected = reference(roberta_dir, load_model(str(roberta_dir)).encode(TEXT).ids)[0][0, 0].numpy()
    np.testing.assert_allclose(z(at, "head"), expected, atol=1e-6)
    at.session_state["ta_tab"] = "Value-weighted norms"
    at.run()
    assert not at.exception and any("only the attention weights" in i.value for i in at.info)


def test_the_causal_page_shows_it_with_a_notice(opt_dir):
    from ui.llama_causal import LOCAL

    at = AppTest.from_file(
        str(Path(__file__).parents[1] / "app_pages" / "causal_decoder.py"), default_timeout=180
    )
    at.session_state["cd_model"] = LOCAL
    at.session_state["cd_model_path"] = str(opt_dir)
    at.session_state["cdh_text"] = TEXT
    at.run()
    assert not at.exception and not at.error
    assert any("step-by-step stages" in i.value for i in at.info)
    ids = load_model(str(opt_dir), kind="causal").encode(TEXT).ids
    np.testing.assert_allclose(z(at, "cdh_map"), reference(opt_dir, ids)[0][0, 0].numpy(), atol=1e-6)
