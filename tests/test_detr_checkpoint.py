"""DETR checkpoints: the official torch-hub layout, Hugging Face's (parity with transformers), ours,
and the files that must be refused with a clear message."""

import argparse
import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from models.detr.checkpoint import (
    CheckpointError,
    hf_to_ours,
    infer_config,
    load_checkpoint,
    load_state_strict,
)
from models.detr.detr import DetrConfig, build_detr
from tests.conftest import TINY_DETR as TINY

# the parameter and buffer names and shapes of the official torch-hub checkpoints, one per line
KEY_LISTS = Path(__file__).parent / "data"


def random_state_from_tsv(path: Path) -> dict:
    rows = [line.rstrip("\n").split("\t") for line in path.read_text().splitlines()[1:]]
    return {name: torch.randn([int(s) for s in shape.split("x")]) for name, shape, _kind in rows}


def to_official(state: dict) -> dict:
    """Our names -> the official ones: q/k/v projections packed into in_proj_weight / in_proj_bias."""
    out = {}
    for key, value in state.items():
        m = re.fullmatch(r"(.*)\.q_proj\.(weight|bias)", key)
        if m:
            parts = [state[f"{m[1]}.{p}_proj.{m[2]}"] for p in "qkv"]
            out[f"{m[1]}.in_proj_{m[2]}"] = torch.cat(parts)
        elif not re.fullmatch(r".*\.[kv]_proj\.(weight|bias)", key):
            out[key] = value
    return out


@pytest.mark.parametrize("name, n_keys", [("official_r50_keys.tsv", 458), ("official_r101_keys.tsv", 713)])
def test_official_key_list_loads_strictly(tmp_path, name, n_keys):
    official = random_state_from_tsv(KEY_LISTS / name)
    assert len(official) == n_keys
    torch.save({"model": official}, tmp_path / "detr.pth")
    model, config = load_checkpoint(tmp_path / "detr.pth")
    assert config.backbone_depth == (50 if "r50" in name else 101)
    assert (config.num_classes, config.num_queries, config.d_model) == (91, 100, 256)
    assert config.class_names[1] == "person" and len(config.class_names) == 91
    q, k, v = official["transformer.encoder.layers.3.self_attn.in_proj_weight"].chunk(3)
    attn = model.transformer.encoder.layers[3].self_attn
    assert torch.equal(attn.q_proj.weight, q) and torch.equal(attn.k_proj.weight, k)
    assert torch.equal(attn.v_proj.weight, v)
    bias = official["transformer.decoder.layers.5.multihead_attn.in_proj_bias"]
    assert torch.equal(model.transformer.decoder.layers[5].multihead_attn.v_proj.bias, bias[512:])
    if "r50" in name:
        model.backbone[0].freeze_stem()
        assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 41_302_368


def test_our_directory_round_trip_and_batchnorm_export(tmp_path):
    trained = build_detr(TINY, norm=torch.nn.BatchNorm2d)
    for m in trained.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    state = {k: v for k, v in trained.state_dict().items() if not k.endswith("num_batches_tracked")}
    save_file(state, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps(TINY.to_dict()))
    model, config = load_checkpoint(tmp_path)
    assert config == TINY
    x, mask = torch.randn(1, 3, 64, 96), torch.zeros(1, 64, 96, dtype=torch.bool)
    with torch.no_grad():
        ref, out = trained.eval()(x, mask), model(x, mask)
    assert torch.allclose(ref.pred_logits, out.pred_logits, atol=1e-5)


def test_missing_and_unexpected_keys_are_named(tmp_path):
    state = to_official(build_detr(TINY).state_dict())
    state.pop("transformer.encoder.layers.1.linear2.bias")
    state["transformer.encoder.layers.0.extra.weight"] = torch.zeros(1)
    torch.save({"model": state}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(tmp_path / "bad.pth", n_heads=4)
    assert "missing (1): transformer.encoder.layers.1.linear2.bias" in str(e.value)
    assert "unexpected (1): transformer.encoder.layers.0.extra.weight" in str(e.value)


def test_wrong_architecture_names_the_mismatched_tensors(tmp_path):
    other = build_detr(DetrConfig(**{**TINY.to_dict(), "d_model": 64, "dim_feedforward": 64}))
    save_file(other.state_dict(), str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps(TINY.to_dict()))
    expected = r"wrong shape \(\d+\): .*file \(\d+, 64\) vs model \(\d+, 32\)"
    with pytest.raises(CheckpointError, match=expected):
        load_checkpoint(tmp_path)


def test_not_detr_at_all(tmp_path):
    torch.save({"model": {"fc.weight": torch.zeros(2, 2)}}, tmp_path / "x.pth")
    with pytest.raises(CheckpointError, match="not a DETR state dict: no tensor named 'query_embed.weight'"):
        load_checkpoint(tmp_path / "x.pth")
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "nothing.pth")


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_truncated_file_gives_a_clear_message(tmp_path, suffix):
    state = to_official(build_detr(TINY).state_dict())
    path = tmp_path / f"model{suffix}"
    if suffix == ".pth":
        torch.save({"model": state}, path)
    else:
        save_file(state, str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="could not be read as a checkpoint"):
        load_checkpoint(path)


class _Payload:
    """Unpickling this writes a file: what a malicious checkpoint would do."""

    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return (Path.write_text, (Path(self.target), "pwned"))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pth"
    torch.save({"model": {"query_embed.weight": _Payload(str(marker))}}, path)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the payload is real: an unsafe load runs it
    assert marker.read_text() == "pwned"


def test_timm_named_hugging_face_checkpoint_maps(tmp_path):
    """Hub files (facebook/detr-resnet-50) use timm backbone names, out_proj and fc1 directly."""
    ours = build_detr(TINY).state_dict()
    hf = {}
    for key, value in ours.items():
        key = key.replace("backbone.0.body.", "model.backbone.conv_encoder.model.")
        key = key.replace("query_embed.", "model.query_position_embeddings.")
        key = key.replace("input_proj.", "model.input_projection.")
        key = key.replace("class_embed.", "class_labels_classifier.")
        key = key.replace("bbox_embed.", "bbox_predictor.")
        key = key.replace("transformer.decoder.norm.", "model.decoder.layernorm.")
        key = key.replace("transformer.", "model.").replace("multihead_attn", "encoder_attn")
        key = key.replace("linear1", "fc1").replace("linear2", "fc2")
        if ".encoder." in key:
            key = key.replace("norm1", "self_attn_layer_norm").replace("norm2", "final_layer_norm")
        else:
            key = key.replace("norm1", "self_attn_layer_norm").replace("norm2", "encoder_attn_layer_norm")
            key = key.replace("norm3", "final_layer_norm")
        hf[key] = value
    assert "model.backbone.conv_encoder.model.layer2.0.downsample.1.running_var" in hf
    save_file(hf, str(tmp_path / "model.safetensors"))
    id2label = {str(i): n for i, n in enumerate(TINY.class_names)}
    (tmp_path / "config.json").write_text(
        json.dumps({"model_type": "detr", "encoder_attention_heads": 4, "id2label": id2label})
    )
    model, config = load_checkpoint(tmp_path)
    assert config.n_heads == 4 and config.class_names == TINY.class_names
    for key, value in model.state_dict().items():
        assert torch.equal(value, ours[key]), key


@pytest.mark.slow
def test_parity_with_transformers_detr():
    """Random DetrForObjectDetection (transformers' ResNet-50, nothing downloaded) mapped into ours:
    logits, boxes and every attention map per head agree at a non-square, padded input."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    hf_config = transformers.DetrConfig(use_timm_backbone=False, use_pretrained_backbone=False, num_labels=91)
    hf = transformers.DetrForObjectDetection._from_config(hf_config, attn_implementation="eager").eval()
    with torch.no_grad():
        for name, buf in hf.named_buffers():  # realistic frozen statistics instead of the identity
            if name.endswith("running_var"):
                buf.uniform_(0.5, 2.0)
            elif name.endswith("running_mean"):
                buf.uniform_(-0.1, 0.1)
            elif name.endswith("normalization.weight"):
                buf.uniform_(0.1, 0.3)
        for name, p in hf.named_parameters():  # sharper attention, so that the maps say something
            if name.endswith(("q_proj.weight", "k_proj.weight")):
                p.mul_(4)
    state = hf_to_ours(hf.state_dict())
    config = infer_config(state)
    assert (config.backbone_depth, config.num_classes) == (50, 91)
    ours = build_detr(config).eval()
    load_state_strict(ours, state, "transformers")
    x = torch.randn(2, 3, 96, 160)
    mask = torch.zeros(2, 96, 160, dtype=torch.bool)
    mask[1, 64:, :] = True
    mask[1, :, 128:] = True
    with torch.no_grad():
        ref = hf(pixel_values=x, pixel_mask=(~mask).long(), output_attentions=True)
        out = ours(x, mask, capture=True)
    assert (out.h, out.w) == (3, 5)
    assert torch.allclose(ref.logits, out.pred_logits, atol=1e-4)
    assert torch.allclose(ref.pred_boxes, out.pred_boxes, atol=1e-4)
    att = out.attentions
    for name, theirs, mine in [
        ("encoder", ref.encoder_attentions, att.encoder),
        ("decoder self", ref.decoder_attentions, att.decoder_self),
        ("cross", ref.cross_attentions, att.decoder_cross),
    ]:
        assert len(theirs) == len(mine) == 6
        for layer, (a, b) in enumerate(zip(theirs, mine)):
            assert a.shape == b.probs.shape, (name, layer)
            assert torch.allclose(a, b.probs, atol=1e-4), (name, layer)
    peak = att.decoder_cross[-1].probs[0].max().item()
    assert peak > 2 / 15  # twice uniform over 15 positions: the maps have something to compare
    assert (att.decoder_cross[0].probs[1].reshape(8, 100, 3, 5)[..., 2, :] == 0).all()  # padded rows


def test_official_training_checkpoint_with_args_namespace_loads(tmp_path):
    state = to_official(build_detr(TINY).state_dict())
    torch.save(
        {"model": state, "args": argparse.Namespace(lr=1e-4, backbone="resnet18"), "epoch": 3},
        tmp_path / "checkpoint.pth",
    )
    model, config = load_checkpoint(tmp_path / "checkpoint.pth", n_heads=4)
    assert config.d_model == 32 and config.n_heads == 4


def test_dc5_file_name_turns_on_dilation(tmp_path):
    torch.save({"model": to_official(build_detr(TINY).state_dict())}, tmp_path / "detr-r18-dc5-test.pth")
    model, config = load_checkpoint(tmp_path / "detr-r18-dc5-test.pth", n_heads=4)
    assert config.dilation and model.backbone[0].stride == 16
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64), torch.zeros(1, 64, 64, dtype=torch.bool)).h == 4
