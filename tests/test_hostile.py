"""Hostile input through the pages, as a user would send it: broken configs, checkpoints and paths, odd
files, extreme images, every numeric widget past its minimum and maximum.

Each case drives one page in AppTest and fails on an exception, on the app's generic "unexpected error"
fallback, on a run longer than LIMIT_S (AppTest's timeout), and on the process's memory growing by more
than MEMORY_BOUND over the whole module; most cases also check the message the user gets. The broken
files are made in a temporary directory; nothing is downloaded.
"""

import io
import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save
from streamlit.testing.v1 import AppTest

from models.bert import default_model_path
from models.detr.detr import build_detr
from models.seq2seq import PRESETS, build_seq2seq, save_seq2seq
from tests.conftest import TINY_DETR
from tests.test_receptive import SMALL_LAB

ROOT = Path(__file__).parents[1]
LIMIT_S = 30  # seconds one run of a page may take
MEMORY_BOUND = 2 * 2**30  # growth of the process's resident memory over the module


def rss() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.fixture(scope="module", autouse=True)
def memory_is_bounded():
    """The whole module's growth of resident memory (model caches included) stays under the bound."""
    before = rss()
    yield
    grown = rss() - before
    assert grown < MEMORY_BOUND, f"resident memory grew by {grown / 2**20:.0f} MiB"


# --- files ------------------------------------------------------------------------------------------------


class Payload:
    """Unpickling this writes a file: what a malicious checkpoint would do."""

    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return (Path.write_text, (Path(self.target), "pwned"))


def png(height: int, width: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), 120, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def lying_safetensors(shape: list[int]) -> bytes:
    """A safetensors header declaring a tensor of `shape` with no data behind it."""
    header = json.dumps({"w": {"dtype": "F32", "shape": shape, "data_offsets": [0, 4 * int(np.prod(shape))]}})
    return struct.pack("<Q", len(header)) + header.encode()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    """name -> path of every broken directory or file the cases load."""
    tmp = tmp_path_factory.mktemp("hostile")
    minilm = default_model_path()
    bert = json.loads((minilm / "config.json").read_text())
    made: dict[str, str] = {}

    def directory(name: str, config=None, **extra) -> Path:
        d = tmp / name
        d.mkdir()
        if config is not None:
            text = config if isinstance(config, (str, bytes)) else json.dumps(config)
            (d / "config.json").write_bytes(text if isinstance(text, bytes) else text.encode())
        for filename, data in extra.items():
            target = d / filename.replace("__", ".")
            if isinstance(data, Path):
                target.symlink_to(data)
            else:
                target.write_bytes(data)
        made[name] = str(d)
        return d

    # BERT configs (the text page)
    directory("bert_list", "[1, 2, 3]")
    for key, value in [
        ("num_attention_heads", 0),
        ("hidden_size", "big"),
        ("vocab_size", -5),
        ("num_hidden_layers", 10**7),
        ("intermediate_size", 10**9),
        ("max_position_embeddings", 10**8),
        ("pad_token_id", 10**6),
        ("hidden_act", 3),
        ("layer_norm_eps", "tiny"),
    ]:
        directory(f"bert_{key}", {**bert, key: value})
    directory("bert_huge", {**bert, "hidden_size": 2**30, "num_attention_heads": 1})
    directory("bert_undivided", {**bert, "hidden_size": 10**9})
    fifo = directory("bert_fifo")
    os.mkfifo(fifo / "config.json")
    directory("bert_devzero", config__json=Path("/dev/zero"))
    (directory("bert_config_dir") / "config.json").mkdir()
    directory("bert_big_config", b" " * (17 * 2**20) + b"{}")
    directory("bert_latin1", '{"model_type": "bert", "name": "caf\xe9"}'.encode("latin-1"))
    directory("bert_nested", "[" * 100_000 + "]" * 100_000)
    weights = (minilm / "model.safetensors").read_bytes()
    directory("bert_truncated", bert, model__safetensors=weights[:5000])
    directory("bert_lying", bert, model__safetensors=lying_safetensors([10**6, 10**6]))
    pickled = io.BytesIO()
    torch.save({"x": Payload(str(tmp / "pwned"))}, pickled)
    directory("bert_pickle", bert, pytorch_model__bin=pickled.getvalue())
    tok_fifo = directory("bert_tokenizer_fifo", bert, model__safetensors=minilm / "model.safetensors")
    os.mkfifo(tok_fifo / "tokenizer.json")
    directory(
        "bert_tokenizer_garbage", bert, model__safetensors=minilm / "model.safetensors", tokenizer__json=b"{]"
    )
    made["pwned"] = str(tmp / "pwned")

    # GPT-2, ours and Llama-family configs (the rollout and causal pages)
    gpt2 = {
        "model_type": "gpt2",
        "vocab_size": 50,
        "n_positions": 32,
        "n_layer": 2,
        "n_head": 2,
        "n_embd": 16,
    }
    directory("gpt2_heads0", {**gpt2, "n_head": 0})
    directory("gpt2_huge", {**gpt2, "n_embd": 10**9, "n_head": 1})
    directory("gpt2_deep", {**gpt2, "n_layer": 10**7})
    directory("ours_list", {"model_type": "attention-lab-gpt", "gpt": [1, 2], "alphabet": "ab"})
    llama = {
        "model_type": "llama",
        "vocab_size": 64,
        "hidden_size": 16,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "num_hidden_layers": 2,
        "intermediate_size": 32,
    }
    directory("llama_kv3", {**llama, "num_key_value_heads": 3})
    directory("llama_huge", {**llama, "vocab_size": 10**9})
    directory("llama_big_word", {**llama, "hidden_size": "big"})
    directory(
        "llama_escape",
        llama,
        model__safetensors__index__json=json.dumps({"weight_map": {"w": "../../etc/passwd"}}).encode(),
    )

    # our seq2seq (the rollout page reads it)
    good = tmp / "seq2seq_good"
    save_seq2seq(build_seq2seq(PRESETS["tiny"]), PRESETS["tiny"], good)
    model = json.loads((good / "config.json").read_text())["model"]
    weights = good / "model.safetensors"
    for name, change in [("d0", {"d_model": 0}), ("pad", {"pad_id": 999}), ("heads3", {"n_heads": 3})]:
        directory(f"seq2seq_{name}", {"model": {**model, **change}}, model__safetensors=weights)

    # DETR: our configs, Hugging Face configs, checkpoints (the DETR page)
    ours = TINY_DETR.to_dict()
    state = save({k: v.contiguous() for k, v in build_detr(TINY_DETR).state_dict().items()})
    for name, change in [
        ("queries", {"num_queries": -3}),
        ("wide", {"d_model": 10**6, "n_heads": 1}),
        ("heads3", {"n_heads": 3}),
        ("depth7", {"backbone_depth": 7}),
        ("names", {"class_names": ["only one"]}),
    ]:
        directory(f"detr_{name}", {**ours, **change}, model__safetensors=state)
    hf = {"model_type": "detr", "id2label": {"0": "a"}}
    directory("hf_abc", {**hf, "id2label": {"abc": "x"}}, model__safetensors=state)
    directory("hf_2e9", {**hf, "id2label": {"2000000000": "x"}}, model__safetensors=state)
    tensors = {k: v.clone() for k, v in build_detr(TINY_DETR).state_dict().items()}
    one_d = dict(tensors, **{"query_embed.weight": torch.zeros(6)})
    torch.save({"model": one_d}, tmp / "one_d.pth")
    zero = dict(tensors)
    zero["query_embed.weight"] = torch.zeros(6, 0)
    zero["transformer.encoder.layers.0.linear1.weight"] = torch.zeros(0, 10**9)
    torch.save({"model": zero}, tmp / "zero_wide.pth")
    os.symlink("/dev/zero", tmp / "devzero.pth")
    os.mkfifo(tmp / "fifo.pth")
    made.update({n: str(tmp / f"{n}.pth") for n in ("one_d", "zero_wide", "devzero", "fifo")})
    made["pickle_bytes"] = pickled.getvalue()
    made["detr_state"] = state
    return made


# --- driving the pages ----------------------------------------------------------------------------------


@dataclass
class Case:
    page: str  # file in app_pages/
    state: dict = field(default_factory=dict)  # session state before the first run
    act: object = None  # (at, files) -> None: widget changes after the first run, each followed by .run()
    expect: str = ""  # a substring of one message the user gets (error, warning, info, caption or text)


def choose(widget, contains: str):
    """Set a radio or select box to its first option containing `contains`."""
    option = next(o for o in widget.options if contains.lower() in str(o).lower())
    return widget.set_value(option)


def messages(at: AppTest) -> list[str]:
    kinds = ("error", "warning", "info", "caption", "markdown", "success")
    return [str(element.value) for kind in kinds for element in at.get(kind)]


def drive(case: Case, files: dict) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app_pages" / case.page), default_timeout=LIMIT_S)
    for key, value in case.state.items():
        at.session_state[key] = value
    at.run()
    if case.act is not None:
        case.act(at, files)
    assert not at.exception, [e.value for e in at.exception]
    shown = messages(at)
    assert not [m for m in shown if "unexpected error" in m], shown
    if case.expect:
        assert any(case.expect in m for m in shown), (case.expect, shown)
    return at


def text_model(name: str):
    """The text page with the local directory `name` of `files` (or a literal path)."""

    def act(at, files):
        choose(at.sidebar.radio(key="model_source"), "name").run()
        at.sidebar.text_input(key="model_path").set_value(files.get(name, name)).run()

    return act


def text_path(path: str):
    def act(at, files):
        choose(at.sidebar.radio(key="model_source"), "name").run()
        at.sidebar.text_input(key="model_path").set_value(path).run()

    return act


def rollout_model(name: str):
    def act(at, files):
        choose(at.sidebar.radio(key="rf_model"), "local").run()
        at.sidebar.text_input(key="rf_path").set_value(files[name]).run()

    return act


def causal_model(name: str):
    def act(at, files):
        choose(at.selectbox(key="cd_model"), "local").run()
        at.text_input(key="cd_model_path").set_value(files[name]).run()

    return act


def detr_model(name: str):
    def act(at, files):
        choose(at.sidebar.radio(key="dp_model_source"), "path").run()
        at.sidebar.text_input(key="dp_ckpt_path").set_value(files[name]).run()

    return act


def detr_upload_model(name: str, data_key: str):
    def act(at, files):
        choose(at.sidebar.radio(key="dp_model_source"), "upload").run()
        at.sidebar.file_uploader(key="dp_ckpt").set_value((name, files[data_key], "application/octet-stream"))
        at.run()

    return act


def detr_image(height: int, width: int):
    def act(at, files):
        choose(at.sidebar.radio(key="dp_model_source"), "small").run()
        choose(at.radio(key="dp_image_source"), "upload").run()
        at.file_uploader(key="dp_upload").set_value(("thin.png", png(height, width), "image/png")).run()
        assert at.get("plotly_chart"), "no figure for a valid image"

    return act


def detr_small(at, files):
    choose(at.sidebar.radio(key="dp_model_source"), "small").run()
    assert at.get("plotly_chart"), "no figure for the scene"


def text_upload(name: str, data: bytes):
    def act(at, files):
        at.file_uploader(key="text_upload").set_value((name, data, "text/plain")).run()

    return act


def positional_upload(height: int, width: int):
    def act(at, files):
        at.file_uploader(key="detr_upload").set_value(("thin.png", png(height, width), "image/png")).run()

    return act


TEXT = {"text_input": "A short text."}
DETR_TAB = {"pos_tab": "DETR 2-D sine"}  # the positional page runs its open tab only
CANNOT = "Cannot load"
CASES = {
    # model directories on the text page: configs
    "bert config is a JSON list": Case(
        "text_attention.py", TEXT, text_model("bert_list"), "not a JSON object"
    ),
    "bert zero heads": Case(
        "text_attention.py", TEXT, text_model("bert_num_attention_heads"), "'num_attention_heads' is 0"
    ),
    "bert width a word": Case(
        "text_attention.py", TEXT, text_model("bert_hidden_size"), "'hidden_size' is 'big'"
    ),
    "bert negative vocabulary": Case(
        "text_attention.py", TEXT, text_model("bert_vocab_size"), "'vocab_size' is -5"
    ),
    "bert 10^7 layers": Case(
        "text_attention.py", TEXT, text_model("bert_num_hidden_layers"), "'num_hidden_layers' is 10,000,000"
    ),
    "bert 10^9 feed-forward": Case(
        "text_attention.py", TEXT, text_model("bert_intermediate_size"), "intermediate_size = 1,000,000,000"
    ),
    "bert 10^8 positions": Case(
        "text_attention.py", TEXT, text_model("bert_max_position_embeddings"), "needs about"
    ),
    "bert width 2^30": Case(
        "text_attention.py", TEXT, text_model("bert_huge"), "hidden_size = 1,073,741,824"
    ),
    "bert width not divisible": Case(
        "text_attention.py", TEXT, text_model("bert_undivided"), "is not divisible by 'num_attention_heads'"
    ),
    "bert pad id outside the vocabulary": Case(
        "text_attention.py", TEXT, text_model("bert_pad_token_id"), "'pad_token_id' is 1,000,000"
    ),
    "bert activation a number": Case(
        "text_attention.py", TEXT, text_model("bert_hidden_act"), "'hidden_act'"
    ),
    "bert epsilon a word": Case(
        "text_attention.py", TEXT, text_model("bert_layer_norm_eps"), "'layer_norm_eps'"
    ),
    # model directories on the text page: files
    "config.json is a FIFO": Case("text_attention.py", TEXT, text_model("bert_fifo"), "FIFO"),
    "config.json links to /dev/zero": Case(
        "text_attention.py", TEXT, text_model("bert_devzero"), "character device"
    ),
    "config.json is a directory": Case(
        "text_attention.py", TEXT, text_model("bert_config_dir"), "a directory"
    ),
    "config.json of 17 MB": Case(
        "text_attention.py", TEXT, text_model("bert_big_config"), "the limit for it"
    ),
    "config.json in Latin-1": Case("text_attention.py", TEXT, text_model("bert_latin1"), "not UTF-8"),
    "config.json nested 100,000 deep": Case("text_attention.py", TEXT, text_model("bert_nested"), CANNOT),
    "truncated safetensors": Case(
        "text_attention.py", TEXT, text_model("bert_truncated"), "corrupt or truncated"
    ),
    "safetensors header declaring 10^12 floats": Case(
        "text_attention.py", TEXT, text_model("bert_lying"), "corrupt or truncated"
    ),
    "pickle that runs code": Case("text_attention.py", TEXT, text_model("bert_pickle"), "refused"),
    "tokenizer.json is a FIFO": Case("text_attention.py", TEXT, text_model("bert_tokenizer_fifo"), "FIFO"),
    "tokenizer.json is garbage": Case(
        "text_attention.py", TEXT, text_model("bert_tokenizer_garbage"), "tokenizer.json cannot be read"
    ),
    # paths on the text page
    "path of 5,000 characters": Case("text_attention.py", TEXT, text_path("x" * 5000), "PATH_MAX"),
    "path part of 300 bytes": Case("text_attention.py", TEXT, text_path("/tmp/" + "y" * 300), "NAME_MAX"),
    "path of an unknown user": Case("text_attention.py", TEXT, text_path("~nosuchuser/model"), "no user"),
    "path with a NUL": Case("text_attention.py", TEXT, text_path("/tmp/a\x00b"), "NUL"),
    "path whose last part is missing": Case(
        "text_attention.py", TEXT, text_path("/tmp/no-such-model-dir/"), "does not"
    ),
    "path under a file": Case("text_attention.py", TEXT, text_path("/etc/hostname/model"), CANNOT),
    "path of the root": Case("text_attention.py", TEXT, text_path("/"), "has no config.json"),
    "path of a file that is no checkpoint": Case(
        "text_attention.py", TEXT, text_path("/etc/hostname"), CANNOT
    ),
    # text and text uploads
    "empty text": Case("text_attention.py", {"text_input": ""}),
    "30,000 characters of text": Case(
        "text_attention.py", {"text_input": "word " * 6000}, expect="wordpieces were dropped"
    ),
    "control characters in the text": Case("text_attention.py", {"text_input": "a\x00b\x07c\u202ed\ufeff"}),
    "binary text upload": Case("text_attention.py", TEXT, text_upload("x.txt", b"\x00\x01\x02abc"), "binary"),
    "Latin-1 text upload": Case("text_attention.py", TEXT, text_upload("x.txt", b"caf\xe9"), "not UTF-8"),
    "empty text upload": Case("text_attention.py", TEXT, text_upload("x.txt", b""), "empty"),
    # GPT-2, ours and seq2seq on the rollout page
    "gpt2 zero heads": Case("rollout_flow.py", {}, rollout_model("gpt2_heads0"), "'n_head' is 0"),
    "gpt2 width 10^9": Case("rollout_flow.py", {}, rollout_model("gpt2_huge"), "n_embd = 1,000,000,000"),
    "gpt2 10^7 layers": Case("rollout_flow.py", {}, rollout_model("gpt2_deep"), "'n_layer' is 10,000,000"),
    "our gpt section a list": Case("rollout_flow.py", {}, rollout_model("ours_list"), "field 'gpt' is list"),
    "seq2seq zero width": Case("rollout_flow.py", {}, rollout_model("seq2seq_d0"), "'d_model' is 0"),
    "seq2seq pad id outside": Case("rollout_flow.py", {}, rollout_model("seq2seq_pad"), "'pad_id' is 999"),
    "seq2seq heads not dividing": Case(
        "rollout_flow.py", {}, rollout_model("seq2seq_heads3"), "not divisible"
    ),
    # Llama-family directories on the causal page
    "llama K/V heads not dividing": Case(
        "causal_decoder.py", {}, causal_model("llama_kv3"), "'num_key_value_heads' = 3"
    ),
    "llama vocabulary 10^9": Case(
        "causal_decoder.py", {}, causal_model("llama_huge"), "vocab_size = 1,000,000,000"
    ),
    "llama width a word": Case(
        "causal_decoder.py", {}, causal_model("llama_big_word"), "'hidden_size' is 'big'"
    ),
    "llama shard outside its directory": Case(
        "causal_decoder.py", {}, causal_model("llama_escape"), "outside its directory"
    ),
    # DETR checkpoints by path and by upload
    "detr -3 queries": Case("detr.py", {}, detr_model("detr_queries"), "'num_queries' is -3"),
    "detr width 10^6": Case("detr.py", {}, detr_model("detr_wide"), "d_model = 1,000,000"),
    "detr heads not dividing": Case("detr.py", {}, detr_model("detr_heads3"), "not divisible"),
    "detr ResNet-7": Case("detr.py", {}, detr_model("detr_depth7"), "'backbone_depth' is 7"),
    "detr one name for four classes": Case("detr.py", {}, detr_model("detr_names"), "'class_names' lists 1"),
    "detr id2label key abc": Case("detr.py", {}, detr_model("hf_abc"), "'abc'"),
    "detr id2label key 2000000000": Case("detr.py", {}, detr_model("hf_2e9"), "'2000000000'"),
    "detr 1-D query_embed": Case("detr.py", {}, detr_model("one_d"), "2 dimensions"),
    "detr zero-size tensors declaring 10^9 channels": Case("detr.py", {}, detr_model("zero_wide"), CANNOT),
    "detr checkpoint links to /dev/zero": Case("detr.py", {}, detr_model("devzero"), "character device"),
    "detr checkpoint is a FIFO": Case("detr.py", {}, detr_model("fifo"), "FIFO"),
    "detr upload of a code pickle": Case(
        "detr.py", {}, detr_upload_model("evil.pth", "pickle_bytes"), "refused"
    ),
    "detr upload of a state dict as .pth": Case(
        "detr.py", {}, detr_upload_model("state.pth", "detr_state"), "Cannot load the checkpoint"
    ),
    # images
    "detr image 1 x 10,000": Case("detr.py", {}, detr_image(1, 10_000)),
    "detr image 10,000 x 1": Case("detr.py", {}, detr_image(10_000, 1)),
    "detr image 1 x 1": Case("detr.py", {}, detr_image(1, 1)),
    "positional image 1 x 10,000": Case(
        "positional.py", DETR_TAB, positional_upload(1, 10_000), "feature map 1 × 42"
    ),
    "positional image 10,000 x 1": Case(
        "positional.py", DETR_TAB, positional_upload(10_000, 1), "feature map 42 × 1"
    ),
    "positional size 1 x 1,000,000": Case("positional.py", DETR_TAB | {"detr_h": 1, "detr_w": 1_000_000}),
    "positional batch at its maximum": Case(
        "positional.py",
        DETR_TAB | {"detr_pad": True, "detr_pad_h": 10**7, "detr_pad_w": 10**7},
        expect="batch",
    ),
    # numeric widgets of the positional page at both ends
    "positional sinusoidal at its maximum": Case(
        "positional.py", {"pos_tab": "Sinusoidal", "sin_n": 10**6, "sin_d": 10**6, "sin_base": 1e6}
    ),
    "positional sinusoidal at its minimum": Case(
        "positional.py", {"pos_tab": "Sinusoidal", "sin_n": 1, "sin_d": 1, "sin_base": 2.0}
    ),
    "positional rotary at its maximum": Case(
        "positional.py",
        {
            "pos_tab": "Rotary (RoPE)",
            "rope_d": 10**6,
            "rope_n": 10**6,
            "rope_base": 1e6,
            "rope_seed": 2**31 - 1,
        },
    ),
    "positional rotary at its minimum": Case(
        "positional.py",
        {"pos_tab": "Rotary (RoPE)", "rope_d": 1, "rope_n": 1, "rope_base": 2.0, "rope_seed": 0},
    ),
    # numeric widgets of the DETR page at their extremes
    "detr scene seed and size past their maximum": Case(
        "detr.py", {"dp_seed": 2**40, "dp_scene_size": 10**6}, detr_small
    ),
    "detr scene size past its minimum": Case("detr.py", {"dp_scene_size": -5, "dp_seed": -1}, detr_small),
    "detr threshold 1 and opacity 0": Case("detr.py", {"dp_threshold": 1.0, "dp_opacity": 0.0}, detr_small),
    "detr threshold 0 and opacity 1": Case("detr.py", {"dp_threshold": 0.0, "dp_opacity": 1.0}, detr_small),
    "step by step, 100,000 characters": Case("step_by_step.py", {"sbs_text": "ab " * 33_000}),
    "step by step, no text": Case("step_by_step.py", {"sbs_text": ""}),
}


@pytest.mark.parametrize("name", CASES)
def test_hostile_input_gets_a_message(name, files):
    drive(CASES[name], files)
    if name == "pickle that runs code":
        assert not Path(files["pwned"]).exists()


# --- the receptive-field lab: every numeric widget past both ends ---------------------------------------

# SMALL_LAB (tests.test_receptive): the lab's cheap settings, so that one widget at its extreme is what costs
LAB_WIDGETS = [
    "rf_length",
    "rf_width",
    "rf_inits",
    "rf_cnn_layers",
    "rf_kernel",
    "rf_dilation",
    "rf_attn_layers",
    "rf_heads",
    "rf_radius",
    "rf_rnn_layers",
    "rf_timing_max",
    "rf_img_seed",
    "rf_img_size",
    "rf_img_kernel",
    "rf_res_depth",
]
LAB_TAB = {  # the lab runs its open tab only: each widget's tab (the others are on "Sequences", the default)
    "rf_timing_max": "Parallelism",
    "rf_img_seed": "Images",
    "rf_img_size": "Images",
    "rf_img_kernel": "Images",
    "rf_res_depth": "Residuals",
}


@pytest.mark.slow
@pytest.mark.parametrize("end", [-(10**12), 10**12], ids=["below", "above"])
@pytest.mark.parametrize("key", LAB_WIDGETS)
def test_lab_widget_past_either_end_is_brought_inside(key, end, files):
    state = SMALL_LAB | {key: end, "rf_tab": LAB_TAB.get(key, "Sequences")}
    at = drive(Case("receptive_fields.py", state, expect="is outside the limit"), files)
    widget = at.number_input(key=key)
    assert widget.value == (widget.min if end < 0 else widget.max)


@pytest.mark.slow
def test_lab_sequence_settings_all_at_their_maximum(files):
    """Every sequence setting asked at once past its maximum: the maxima derived from the memory estimate
    keep the effective field within one computation's memory, and the page answers in time."""
    from models.receptive.sequence import LIMITS, memory_bytes

    asked = {k: 10**9 for k in ("rf_length", "rf_width", "rf_attn_layers", "rf_heads", "rf_radius")}
    at = drive(Case("receptive_fields.py", SMALL_LAB | asked | {"rf_width": 256}), files)
    cfg = at.session_state["rf_cfg"]
    if cfg is not None:
        assert memory_bytes(cfg, cfg.length) <= LIMITS.max_run_bytes


@pytest.mark.slow
def test_lab_image_kernel_at_its_maximum_with_every_depth(files):
    """The largest image with every depth: the kernel's maximum comes from the cost, and the maps come back
    within the time limit."""
    state = SMALL_LAB | {"rf_img_size": 128, "rf_img_depths": [1, 2, 4, 8, 16, 24, 32], "rf_img_kernel": 255}
    state["rf_tab"] = "Images"
    at = drive(Case("receptive_fields.py", state, expect="is outside the limit"), files)
    assert at.number_input(key="rf_img_kernel").value == at.number_input(key="rf_img_kernel").max < 255
