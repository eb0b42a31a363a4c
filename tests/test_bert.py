import json
import pickle
import shutil

import pytest
import torch

from models.bert import ModelLoadError, default_model_path, load_bert

transformers = pytest.importorskip("transformers")

TEXTS = ["The animal didn't cross the street because it was too tired.", "多头注意力，每次注意的点不一样。"]


@pytest.fixture(scope="module")
def minilm():
    return load_bert()


def hf_run(directory, input_ids, attention_mask):
    hf = transformers.BertModel.from_pretrained(str(directory), attn_implementation="eager").eval()
    with torch.no_grad():
        return hf(input_ids, attention_mask=attention_mask, output_attentions=True, output_hidden_states=True)


def batch(text_model, texts):
    ids = [text_model.encode(t).ids for t in texts]
    width = max(map(len, ids))
    input_ids = torch.tensor([i + [0] * (width - len(i)) for i in ids])
    attention_mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i in ids])
    return input_ids, attention_mask


def assert_parity(text_model, directory, texts):
    input_ids, attention_mask = batch(text_model, texts)
    ref = hf_run(directory, input_ids, attention_mask)
    with torch.no_grad():
        ours = text_model.model(input_ids, attention_mask=attention_mask, capture=True)
    keep = attention_mask.bool()
    assert len(ours.hidden_states) == len(ref.hidden_states)
    for a, b in zip(ours.hidden_states, ref.hidden_states, strict=True):
        assert (a[keep] - b[keep]).abs().max() <= 1e-5
    assert len(ours.attentions) == len(ref.attentions)
    for record, b in zip(ours.attentions, ref.attentions, strict=True):
        assert record.probs.shape == b.shape
        assert (record.probs - b).abs().max() <= 1e-5
    return ours


def test_minilm_matches_transformers_on_every_layer_and_head(minilm):
    ours = assert_parity(minilm, default_model_path(), TEXTS)
    assert len(ours.attentions) * ours.attentions[0].probs.shape[1] == 72
    padded_keys = batch(minilm, TEXTS)[1] == 0
    assert (ours.attentions[0].probs.transpose(1, 3)[padded_keys] == 0).all()


def test_capture_does_not_change_the_result(minilm):
    input_ids, attention_mask = batch(minilm, TEXTS)
    with torch.no_grad():
        fast = minilm.model(input_ids, attention_mask=attention_mask)
        slow = minilm.model(input_ids, attention_mask=attention_mask, capture=True)
    assert fast.attentions is None
    keep = attention_mask.bool()
    assert (fast.last_hidden_state[keep] - slow.last_hidden_state[keep]).abs().max() <= 1e-5


@pytest.fixture(scope="module")
def random_bert_dir(tmp_path_factory):
    """A randomly initialised BertModel of another shape, saved like a Hugging Face checkpoint."""
    directory = tmp_path_factory.mktemp("random_bert")
    config = transformers.BertConfig(
        vocab_size=30522,
        hidden_size=48,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=80,
        max_position_embeddings=64,
        hidden_act="gelu_new",
    )
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(directory)
    shutil.copy(default_model_path() / "tokenizer.json", directory)
    return directory


def test_random_bert_of_another_shape_matches_transformers(random_bert_dir):
    text_model = load_bert(random_bert_dir)
    assert (text_model.config.num_hidden_layers, text_model.config.num_attention_heads) == (3, 4)
    ours = assert_parity(text_model, random_bert_dir, TEXTS)
    assert ours.attentions[0].q.shape[-1] == 12


def test_pytorch_bin_and_vocab_txt_fallback(random_bert_dir, tmp_path):
    state = load_bert(random_bert_dir).model.state_dict()
    hf_state = transformers.BertModel.from_pretrained(str(random_bert_dir)).state_dict()
    shutil.copy(random_bert_dir / "config.json", tmp_path)
    shutil.copy(default_model_path() / "vocab.txt", tmp_path)
    torch.save(hf_state, tmp_path / "pytorch_model.bin")
    loaded = load_bert(tmp_path)
    for name, tensor in loaded.model.state_dict().items():
        torch.testing.assert_close(tensor, state[name])
    assert loaded.encode("Hello world").tokens == ["[CLS]", "hello", "world", "[SEP]"]


def test_long_input_is_truncated_keeping_the_final_sep(minilm):
    encoding = minilm.encode("word " * 700)
    assert len(encoding.ids) == 512
    assert encoding.n_dropped == 702 - 512
    assert encoding.tokens[0] == "[CLS]" and encoding.tokens[-1] == "[SEP]"
    assert minilm.encode("word " * 10).n_dropped == 0
    with pytest.raises(ValueError, match="512 positions"):
        minilm.model(torch.zeros(1, 513, dtype=torch.long))


def test_chinese_text_is_tokenised_per_character(minilm):
    assert minilm.encode("我有一只猫").tokens[1:4] == ["我", "有", "一"]


def test_missing_and_corrupt_directories(tmp_path, random_bert_dir):
    with pytest.raises(ModelLoadError, match="not a directory"):
        load_bert(tmp_path / "nope")
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_bert(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        load_bert(tmp_path)
    shutil.copy(random_bert_dir / "config.json", tmp_path)
    with pytest.raises(ModelLoadError, match="neither model.safetensors"):
        load_bert(tmp_path)
    data = (random_bert_dir / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="corrupt or truncated"):
        load_bert(tmp_path)


def test_wrong_shape_names_what_did_not_match(tmp_path, random_bert_dir):
    shutil.copytree(random_bert_dir, tmp_path, dirs_exist_ok=True)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(config | {"num_hidden_layers": 4}))
    with pytest.raises(ModelLoadError, match="missing .*layers.3"):
        load_bert(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(config | {"hidden_size": 96, "num_attention_heads": 4}))
    with pytest.raises(ModelLoadError, match="do not fit"):
        load_bert(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(config | {"model_type": "gpt2"}))
    with pytest.raises(ModelLoadError, match="not a BERT"):
        load_bert(tmp_path)


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_pickle_that_runs_code_is_refused(tmp_path, random_bert_dir):
    marker = tmp_path / "pwned"
    shutil.copy(random_bert_dir / "config.json", tmp_path)
    with open(tmp_path / "pytorch_model.bin", "wb") as f:
        pickle.dump({"weight": _Payload(marker)}, f)
    with pytest.raises(ModelLoadError, match="refused"):
        load_bert(tmp_path)
    assert not marker.exists()
    with open(tmp_path / "pytorch_model.bin", "rb") as f:
        pickle.load(f)  # the same file, unpickled without the guard, does run its payload
    assert marker.exists()
