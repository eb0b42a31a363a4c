"""The model registry: every embedded name, every kind of directory or file, one error type for the rest."""

import json
from dataclasses import asdict

import pytest
import torch
from safetensors.torch import save_file, save_model

import models.detr.api
from models import registry
from models.bert import BertConfig, BertModel, TextModel
from models.detr.api import Detector
from models.detr.checkpoint import CheckpointError
from models.detr.detr import build_detr
from models.errors import ModelLoadError
from models.gpt import GPTConfig, build_gpt
from models.gpt_io import ALPHABET, TextGPT, save_gpt
from models.llama_io import TextLlama
from models.registry import describe, kind_of, load_model, names
from models.seq2seq import PRESETS, Seq2Seq, Seq2SeqConfig, Seq2SeqLoadError, build_seq2seq, save_seq2seq
from tests.conftest import TINY_DETR

TYPES = {"encoder": TextModel, "causal": (TextGPT, TextLlama), "seq2seq": tuple, "detr": Detector}


def state_of(module: torch.nn.Module) -> dict:
    return {k: v.contiguous() for k, v in module.state_dict().items()}


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory) -> dict:
    """One tiny randomly initialised model of each kind, saved as its loader reads it: kind -> path."""
    root = tmp_path_factory.mktemp("registry")
    torch.manual_seed(0)
    bert = root / "bert"
    bert.mkdir()
    config = BertConfig(
        vocab_size=7, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
        max_position_embeddings=16,
    )  # fmt: skip
    save_model(BertModel(config), str(bert / "model.safetensors"))
    (bert / "config.json").write_text(json.dumps({"model_type": "bert", **asdict(config)}))
    (bert / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nworld\n")

    gpt_config = GPTConfig(vocab_size=len(ALPHABET) + 1, block_size=16, n_layer=1, n_head=2, n_embd=8)
    save_gpt(build_gpt(gpt_config), gpt_config, ALPHABET, root / "gpt")

    seq_config = PRESETS["tiny"]
    save_seq2seq(build_seq2seq(seq_config), seq_config, root / "seq2seq")

    detr = build_detr(TINY_DETR)
    (root / "detr").mkdir()
    (root / "detr" / "config.json").write_text(json.dumps(TINY_DETR.to_dict()))
    save_file(state_of(detr), str(root / "detr" / "model.safetensors"))
    save_file(state_of(detr), str(root / "detr.safetensors"))
    torch.save({"model": state_of(detr)}, root / "detr.pth")
    return {
        "encoder": bert,
        "causal": root / "gpt",
        "seq2seq": root / "seq2seq",
        "detr": root / "detr",
        "detr file": root / "detr.safetensors",
        "detr .pth": root / "detr.pth",
    }


@pytest.mark.parametrize("name", registry.EMBEDDED)
def test_every_embedded_name_loads_as_its_kind(name):
    kind = kind_of(name)
    assert name in names(kind) and name in names()
    assert describe(name) and "\n" not in describe(name)
    loaded = load_model(name, kind=kind)
    assert isinstance(loaded, TYPES[kind])
    if kind == "seq2seq":
        model, config, meta = loaded
        assert isinstance(model, Seq2Seq) and isinstance(config, Seq2SeqConfig) and "src_alphabet" in meta


def test_embedded_models_keep_the_names_the_pages_show():
    assert load_model("gpt-stdlib").name == "gpt-stdlib"
    assert load_model("detr-shapes").name == "detr-shapes"
    small = load_model("detr-small-untrained")
    assert small.name == "Untrained small DETR (random weights)"
    assert small.config == models.detr.api.SMALL_CONFIG
    assert names("detr") == ["detr-shapes", "detr-small-untrained", "detr-r50-untrained"]
    assert names("encoder") == ["all-MiniLM-L6-v2"]


@pytest.mark.parametrize("key", ["encoder", "causal", "seq2seq", "detr", "detr file", "detr .pth"])
def test_a_path_of_each_kind_is_detected_and_loaded(tiny_dirs, key):
    kind = key.split()[0]
    path = str(tiny_dirs[key])
    assert kind_of(path) == kind
    loaded = load_model(path, kind=kind)
    assert isinstance(loaded, TYPES[kind])
    if kind == "encoder":
        assert loaded.encode("hello world").tokens == ["[CLS]", "hello", "world", "[SEP]"]
    if kind == "detr":
        assert loaded.config.num_queries == TINY_DETR.num_queries


def test_a_home_relative_path_is_expanded(tiny_dirs, monkeypatch):
    monkeypatch.setenv("HOME", str(tiny_dirs["causal"].parent))
    assert isinstance(load_model("~/gpt", kind="causal"), TextGPT)


@pytest.mark.parametrize(
    "config, kind",
    [
        ({"model_type": "gpt2", "n_embd": 8}, "causal"),
        ({"model_type": "detr", "d_model": 256}, "detr"),
        ({"hidden_size": 8, "num_attention_heads": 2}, "encoder"),  # an old BERT config, no model_type
    ],
)
def test_config_json_alone_tells_the_kind(tmp_path, config, kind):
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert kind_of(str(tmp_path)) == kind


def test_a_model_of_another_kind_is_refused_before_it_is_loaded(tiny_dirs, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("loaded although the kind was wrong")

    monkeypatch.setattr(models.detr.api, "load_detr", never)
    with pytest.raises(ModelLoadError, match=r"detr\.pth is a DETR detector, this page needs a BERT-family"):
        load_model(str(tiny_dirs["detr .pth"]), kind="encoder")
    with pytest.raises(ModelLoadError, match="gpt-stdlib is a causal decoder .*needs an encoder-decoder"):
        load_model("gpt-stdlib", kind="seq2seq")
    with pytest.raises(ModelLoadError, match="is an encoder-decoder .*needs a DETR detector"):
        load_model(str(tiny_dirs["seq2seq"]), kind="detr")
    with pytest.raises(ValueError, match="unknown model kind 'gpt'"):
        load_model("gpt-stdlib", kind="gpt")


def write(path, text: str | bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)
    return path


def test_what_cannot_be_loaded_gets_a_model_load_error_that_says_what_was_expected(tmp_path):
    expected = "expected a model directory with config.json .* or a DETR checkpoint file"
    with pytest.raises(ModelLoadError, match=f"no such file or directory.*{expected}"):
        load_model(str(tmp_path / "missing"))
    with pytest.raises(ModelLoadError, match="not-a-model: no such file.*name of an embedded model"):
        load_model("not-a-model")
    with pytest.raises(ModelLoadError, match="no model given"):
        load_model("  ")
    with pytest.raises(ModelLoadError, match=f"has no config.json; {expected}"):
        load_model(str(tmp_path))
    with pytest.raises(ModelLoadError, match=f"is a file but not a DETR checkpoint; {expected}"):
        load_model(str(write(tmp_path / "garbage.bin", b"\x00\x01garbage")))
    with pytest.raises(CheckpointError, match="garbage.pth"):
        load_model(str(write(tmp_path / "garbage.pth", b"\x00\x01garbage")))
    with pytest.raises(ModelLoadError, match="could not be read as a checkpoint"):
        load_model(str(write(tmp_path / "garbage.SAFETENSORS", b"\x00\x01garbage")))
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        load_model(str(write(tmp_path / "bad_json" / "config.json", "{").parent))
    with pytest.raises(ModelLoadError, match="holds a list, not a JSON object"):
        load_model(str(write(tmp_path / "list" / "config.json", "[1, 2]").parent))
    with pytest.raises(ModelLoadError, match="model_type 'mamba', which is not one this app loads"):
        load_model(str(write(tmp_path / "mamba" / "config.json", '{"model_type": "mamba"}').parent))
    silent = str(write(tmp_path / "silent" / "config.json", "{}").parent)
    with pytest.raises(ModelLoadError, match="does not say which model it holds; expected config.json with"):
        load_model(silent)
    with pytest.raises(ModelLoadError, match="neither model.safetensors"):  # the asked kind's loader tells
        load_model(silent, kind="encoder")


@pytest.mark.parametrize(
    "key, change",
    [
        ("encoder", {"hidden_size": -8}),  # torch: negative dimension (RuntimeError)
        ("encoder", {"num_attention_heads": 0}),  # ZeroDivisionError
        ("causal", {"gpt": {"vocab_size": 97, "block_size": 16, "n_layer": 1, "n_head": 3, "n_embd": 8}}),
        ("seq2seq", {"model": {"d_model": "wide", "n_encoder_layers": 1}}),
        ("detr", {"backbone_depth": 7}),
        ("detr", {"n_heads": 0}),
    ],
)
def test_a_config_that_builds_no_model_is_a_model_load_error(tiny_dirs, tmp_path, key, change):
    directory = tmp_path / key
    directory.mkdir()
    for file in tiny_dirs[key].iterdir():
        (directory / file.name).write_bytes(file.read_bytes())
    config = json.loads((directory / "config.json").read_text()) | change
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=str(directory)):
        load_model(str(directory), kind=key)


def test_the_old_error_types_are_model_load_errors(tmp_path):
    from models import bert

    assert bert.ModelLoadError is ModelLoadError is registry.ModelLoadError
    assert issubclass(CheckpointError, ModelLoadError) and issubclass(CheckpointError, ValueError)
    assert issubclass(Seq2SeqLoadError, ModelLoadError) and issubclass(Seq2SeqLoadError, ValueError)
    try:
        models.detr.api.load_detr(write(tmp_path / "x.pth", b"garbage"))
    except ModelLoadError as err:
        assert isinstance(err, CheckpointError)
    else:
        pytest.fail("a garbage checkpoint loaded")


def test_the_cached_getters_share_one_model_and_load_uploads(tiny_dirs):
    from ui.models import get_model, get_text_model, get_uploaded_model

    assert get_text_model("", "cpu") is get_model("all-MiniLM-L6-v2", "cpu", kind="encoder")
    data = tiny_dirs["detr file"].read_bytes()
    detector = get_uploaded_model("sha", data, ".safetensors", "cpu", kind="detr")
    assert detector.name == "checkpoint.safetensors" and detector.config.num_queries == TINY_DETR.num_queries
