"""Validation before allocation: paths, files, configs, memory estimates, checkpoint headers, DETR's resize
at extreme aspect ratios and the receptive-field lab's derived limits, as pure functions."""

import json
import os
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from models import validate
from models.bert import BertConfig, BertModel, default_model_path
from models.detr import checkpoint
from models.detr.detr import build_detr
from models.detr.preprocess import resized_size
from models.errors import ModelLoadError
from models.files import read_json_object, regular_file, user_path
from models.receptive.image import MAX_GRADIENT_WORK, gradient_work, largest_kernel
from models.receptive.parallelism import connectivity
from models.receptive.sequence import LIMITS, SeqConfig, build_model, largest_fitting, memory_bytes
from tests.conftest import TINY_DETR

MINILM = json.loads((default_model_path() / "config.json").read_text())


# --- paths and files -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, words",
    [
        ("x" * 5000, "5,000 characters long; the limit is 4,096"),
        ("/tmp/" + "y" * 300, "300 bytes long; the limit is 255"),
        ("/tmp/a\x00b", "NUL"),
        ("/tmp/\udcff", "not UTF-8"),
        ("~nosuchuser/model", "no user 'nosuchuser'"),
        ("   ", "no path given"),
    ],
)
def test_paths_that_cannot_name_a_file_are_refused_by_name(text, words):
    with pytest.raises(ModelLoadError, match=words):
        user_path(text)


def test_a_missing_part_is_named_after_the_deepest_part_that_exists(tmp_path):
    with pytest.raises(ModelLoadError, match=rf"\({tmp_path} exists, a/b does not\)"):
        user_path(str(tmp_path / "a" / "b"))
    (tmp_path / "f").write_text("x")
    with pytest.raises(ModelLoadError, match="before the last is a file"):
        user_path(str(tmp_path / "f" / "model"))
    assert user_path(f" {tmp_path} ") == tmp_path


def test_only_regular_files_of_bounded_size_are_opened(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "zero").symlink_to("/dev/zero")
    (tmp_path / "big").write_bytes(b"x" * 101)
    with pytest.raises(ModelLoadError, match="FIFO"):
        regular_file(tmp_path / "fifo", 100)
    with pytest.raises(ModelLoadError, match="character device"):
        regular_file(tmp_path / "zero", 100)
    with pytest.raises(ModelLoadError, match="a directory"):
        regular_file(tmp_path, 100)
    with pytest.raises(ModelLoadError, match="101 bytes; the limit for it is 100"):
        regular_file(tmp_path / "big", 100)
    assert regular_file(tmp_path / "big", 101) == tmp_path / "big"


@pytest.mark.parametrize(
    "data, words",
    [
        (b"[1, 2]", "holds a list, not a JSON object"),
        ('{"a": "caf\xe9"}'.encode("latin-1"), "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "nests its JSON too deeply"),
        (b"{not json", "not valid JSON"),
    ],
)
def test_json_that_is_no_config_is_refused(tmp_path, data, words):
    (tmp_path / "config.json").write_bytes(data)
    with pytest.raises(ModelLoadError, match=words):
        read_json_object(tmp_path / "config.json")


# --- configs and memory ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, words",
    [
        ({"num_attention_heads": 0}, "'num_attention_heads' is 0; it must be between 1 and 384"),
        ({"hidden_size": "big"}, "'hidden_size' is 'big'; it must be an integer"),
        ({"hidden_size": 384.5}, "'hidden_size' is 384.5"),
        ({"num_hidden_layers": True}, "'num_hidden_layers' is True"),
        ({"vocab_size": -5}, "'vocab_size' is -5; it must be at least 1"),
        ({"num_hidden_layers": 10**7}, "'num_hidden_layers' is 10,000,000; it must be between 1 and 512"),
        ({"num_attention_heads": 7}, "'hidden_size' = 384 is not divisible by 'num_attention_heads' = 7"),
        ({"pad_token_id": 30522}, "'pad_token_id' is 30,522; it must be between 0 and 30,521"),
        ({"intermediate_size": 10**9}, "intermediate_size = 1,000,000,000"),
    ],
)
def test_bert_configs_are_refused_naming_field_value_and_limit(change, words):
    with pytest.raises(ModelLoadError, match=words):
        validate.bert({**MINILM, **change}, "config.json")


def test_the_memory_estimate_counts_weights_and_the_run_against_the_limit(monkeypatch):
    estimate = validate.bert(MINILM, "config.json")
    params = sum(p.numel() for p in BertModel(BertConfig.from_dict(MINILM)).parameters())
    assert estimate.weights == pytest.approx(2 * 4 * params, rel=0.01)  # built, then the state dict
    monkeypatch.setenv(validate.MEMORY_ENV, str(estimate.total - 1))
    with pytest.raises(ModelLoadError, match=r"needs about .* available\. Its sizes: vocab_size = 30,522"):
        validate.bert(MINILM, "config.json")
    monkeypatch.setenv(validate.MEMORY_ENV, str(estimate.total))
    assert validate.bert(MINILM, "config.json") == estimate


def test_llama_and_detr_cross_field_rules():
    llama = {"hidden_size": 16, "num_attention_heads": 4, "num_key_value_heads": 3, "num_hidden_layers": 2}
    with pytest.raises(ModelLoadError, match="'num_attention_heads' = 4 is not a multiple of"):
        validate.llama_fields({**llama, "intermediate_size": 8, "vocab_size": 8}, "config.json")
    for key in ("abc", "2000000000", "-1"):
        with pytest.raises(ModelLoadError, match=f"the key '{key}'"):
            validate.hf_detr({"id2label": {key: "x"}}, "config.json")
    assert validate.hf_detr({"id2label": {"0": "a", "2": "c"}}, "config.json") == {0: "a", 2: "c"}
    fields = TINY_DETR.to_dict()
    for change, words in [
        ({"num_queries": -3}, "'num_queries' is -3"),
        ({"n_heads": 3}, "'d_model' = 32 is not divisible by 'n_heads' = 3"),
        ({"backbone_depth": 7}, "'backbone_depth' is 7"),
        ({"class_names": ["a"]}, "lists 1 names for num_classes = 4"),
    ]:
        with pytest.raises(ModelLoadError, match=words):
            validate.detr({**fields, **change}, "config.json")


# --- checkpoints -----------------------------------------------------------------------------------------


def test_safetensors_header_gives_the_shapes_and_refuses_lies(tmp_path):
    tensors = {"a": torch.zeros(3, 4), "b": torch.zeros(0, 7, dtype=torch.float16)}
    save_file(tensors, str(tmp_path / "ok.safetensors"))
    assert validate.safetensors_header(tmp_path / "ok.safetensors") == {
        "a": ("F32", (3, 4)),
        "b": ("F16", (0, 7)),
    }
    data = (tmp_path / "ok.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[:-8])
    with pytest.raises(ModelLoadError, match="ends at byte 48 of the data; the file holds 40"):
        validate.safetensors_header(tmp_path / "cut.safetensors")
    header = json.dumps({"w": {"dtype": "F32", "shape": [10**6, 10**6], "data_offsets": [0, 16]}}).encode()
    (tmp_path / "lie.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 16)
    with pytest.raises(ModelLoadError, match=r"shape \[1000000, 1000000\] \(F32\) needs 4,000,000,000,000"):
        validate.safetensors_header(tmp_path / "lie.safetensors")


def test_a_detr_directory_of_the_wrong_shapes_is_refused_before_its_tensors_are_read(tmp_path, monkeypatch):
    other = build_detr(replace(TINY_DETR, dim_feedforward=48))
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps(TINY_DETR.to_dict()))

    def never(path):
        raise AssertionError("the tensors were read")

    monkeypatch.setattr(checkpoint, "read_tensors", never)
    with pytest.raises(
        checkpoint.CheckpointError, match=r"wrong shape .*file \(48, 32\) vs model \(64, 32\)"
    ):
        checkpoint.load_checkpoint(tmp_path)


# --- images ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size, resized",
    [
        ((480, 640), (800, 1066)),  # the official resize, unchanged
        ((400, 1200), (444, 1332)),
        ((1, 10_000), (1, 1333)),  # the official one gives 0 x 0
        ((10_000, 1), (1333, 1)),
        ((1, 2000), (1, 1333)),  # the official one keeps 1 x 2000, past max_size
        ((1, 1), (800, 800)),
    ],
)
def test_detr_resize_keeps_a_pixel_across_and_the_long_side_within_max_size(size, resized):
    assert resized_size(*size, 800, 1333) == resized


# --- the receptive-field lab -----------------------------------------------------------------------------


@pytest.mark.parametrize("field, low, high", [("radius", 0, 512), ("attn_layers", 1, 32), ("length", 2, 512)])
def test_the_lab_maxima_are_the_largest_values_that_fit(field, low, high):
    cfg = SeqConfig(length=512, d_model=256, n_heads=8, radius=64, attn_layers=2)
    top = largest_fitting(cfg, field, low, high)
    assert (
        memory_bytes(replace(cfg, **{field: top}), replace(cfg, **{field: top}).length)
        <= LIMITS.max_run_bytes
    )
    if top < high:
        bigger = replace(cfg, **{field: top + 1})
        assert memory_bytes(bigger, bigger.length) > LIMITS.max_run_bytes


def test_the_image_kernel_maximum_is_the_largest_odd_kernel_within_the_work_budget():
    for side, depths in [(128, [1, 2, 4, 8, 16]), (128, [1, 2, 4, 8, 16, 24, 32]), (16, [1, 2])]:
        k = largest_kernel(side, depths)
        assert k % 2 == 1 and gradient_work(side, k, depths) <= MAX_GRADIENT_WORK
        assert k == 15 or gradient_work(side, k + 2, depths) > MAX_GRADIENT_WORK
    assert largest_kernel(128, [1, 2, 4, 8, 16]) == 7


@pytest.mark.parametrize("name", ["Self-attention", "CNN", "Local attention"])
@pytest.mark.parametrize("causal", [False, True])
def test_batched_connectivity_equals_one_backward_per_position(name, causal):
    cfg = SeqConfig(length=24, d_model=8, n_heads=1, cnn_layers=1, attn_layers=1, radius=2, causal=causal)
    torch.manual_seed(0)
    model = build_model(name, cfg)
    x = torch.randn(1, 24, 8, generator=torch.manual_seed(1), requires_grad=True)
    y = model(x)
    rows = [
        torch.autograd.grad(y[0, t].sum(), x, retain_graph=True)[0][0].abs().sum(-1) > 0 for t in range(24)
    ]
    np.testing.assert_array_equal(connectivity(model, 24, 8), torch.stack(rows).numpy())
