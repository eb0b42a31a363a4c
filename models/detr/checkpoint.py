"""Load DETR weights from the files users have: ours, the official torch-hub ones, Hugging Face's.

`load_checkpoint(path)` -> (DETR in eval mode, DetrConfig) accepts
- a directory of ours: `config.json` (a `DetrConfig`) + `model.safetensors` (e.g. weights/detr-shapes);
- an official torch-hub file such as `detr-r50-e632da11.pth`: `checkpoint["model"]`, read with
  `torch.load(weights_only=True)`; nn.MultiheadAttention's packed `in_proj_weight` / `in_proj_bias`
  (q, k, v stacked in that order) are split into our `q_proj` / `k_proj` / `v_proj`;
- a Hugging Face `facebook/detr-resnet-50`-style directory: `config.json` + `model.safetensors` or
  `pytorch_model.bin`, with the timm backbone names (`model.backbone.conv_encoder.model.layer1.0.conv1`)
  or the transformers ResNet names (`...encoder.stages.0.layers.0.layer.0.convolution`), either
  `out_proj` or `o_proj`, `fc1` or `mlp.fc1`.
The architecture (depth, width, layers, queries, classes) is inferred from the tensors; what the
tensors cannot tell (number of heads, DC5 dilation) comes from config.json, else the official
defaults (8 heads; dilation only when the file name says "dc5", as the official DC5 files do).
Loading is strict: missing, unexpected or mis-shaped tensors raise a `CheckpointError` naming them.
Pickles that would run code are refused, never executed.
"""

import argparse
import pickle
import re
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor

from models import validate
from models.detr.coco import COCO_CLASSES
from models.detr.detr import DETR, DetrConfig, build_detr
from models.errors import BUILD_ERRORS, ModelLoadError
from models.files import MAX_WEIGHTS_BYTES, read_json_object, regular_file


class CheckpointError(ModelLoadError, ValueError):
    """A file that is not a DETR checkpoint we can load; the message says what did not match."""


def read_tensors(path: Path) -> dict:
    """A safetensors file or a `torch.load(weights_only=True)` pickle -> its top-level object."""
    try:
        regular_file(path, MAX_WEIGHTS_BYTES)  # not a FIFO, a device or a link to one; bounded size
        if path.suffix.lower() == ".safetensors":
            validate.safetensors_header(path)
            return load_file(str(path))
        # The official training checkpoints also hold `args`, an argparse.Namespace: a plain attribute bag,
        # allowed by name; every other class is still refused.
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path.name}: refused, the file holds Python objects beyond tensors and "
            f"plain containers, which could run code when unpickled ({e})"
        ) from e
    except (SafetensorError, RuntimeError, EOFError, OSError, ValueError, ModelLoadError) as e:
        kind = "safetensors" if path.suffix.lower() == ".safetensors" else "torch"
        raise CheckpointError(
            f"{path.name}: could not be read as a checkpoint (truncated, or not a {kind} file): {e}"
        ) from e


def split_in_proj(state: dict) -> dict:
    """Official nn.MultiheadAttention names -> ours: `in_proj_weight` (3d, d) -> q/k/v_proj.weight (d, d)."""
    out = {}
    for key, value in state.items():
        m = re.fullmatch(r"(.*)\.in_proj_(weight|bias)", key)
        if m:
            for name, part in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0)):
                out[f"{m[1]}.{name}.{m[2]}"] = part.contiguous()
        else:
            out[key] = value
    return out


_HF_RESNET_STEM = {"embedder.embedder.convolution": "conv1", "embedder.embedder.normalization": "bn1"}
_HF_LAYER = {
    # encoder layer
    "self_attn_layer_norm": "norm1",
    "final_layer_norm": "norm2",
    "mlp.fc1": "linear1",
    "mlp.fc2": "linear2",
    "fc1": "linear1",
    "fc2": "linear2",
}
_HF_DECODER_LAYER = {
    **_HF_LAYER,
    "encoder_attn_layer_norm": "norm2",
    "final_layer_norm": "norm3",
    "encoder_attn": "multihead_attn",
}


def _hf_backbone_key(rest: str) -> str:
    """A backbone key below `...conv_encoder.model.` (timm or transformers ResNet names) -> ours."""
    for src, dst in _HF_RESNET_STEM.items():
        if rest.startswith(src):
            return dst + rest[len(src) :]
    m = re.fullmatch(
        r"encoder\.stages\.(\d+)\.layers\.(\d+)\.(shortcut|layer\.(\d+))"
        r"\.(convolution|normalization)\.(.+)",
        rest,
    )
    if m:
        stage, block, kind, idx, part, leaf = m.groups()
        if kind == "shortcut":
            name = f"downsample.{0 if part == 'convolution' else 1}"
        else:
            name = f"{'conv' if part == 'convolution' else 'bn'}{int(idx) + 1}"
        return f"layer{int(stage) + 1}.{block}.{name}.{leaf}"
    return rest  # timm names are torchvision's, which are ours


def hf_to_ours(state: dict) -> dict:
    """Hugging Face DetrForObjectDetection names -> ours."""
    out = {}
    for key, value in state.items():
        new = None
        m = re.match(r"model\.backbone\.(?:conv_encoder\.)?model\.(.+)", key)
        if m:
            new = "backbone.0.body." + _hf_backbone_key(m[1])
        elif key.startswith("model.query_position_embeddings."):
            new = "query_embed." + key.split(".", 2)[2]
        elif key.startswith("model.input_projection."):
            new = "input_proj." + key.split(".", 2)[2]
        elif key.startswith("class_labels_classifier."):
            new = "class_embed." + key.split(".", 1)[1]
        elif key.startswith("bbox_predictor."):
            new = "bbox_embed." + key.split(".", 1)[1]
        elif key.startswith("model.decoder.layernorm."):
            new = "transformer.decoder.norm." + key.rsplit(".", 1)[1]
        else:
            m = re.fullmatch(r"model\.(encoder|decoder)\.layers\.(\d+)\.(.+)\.(weight|bias)", key)
            if m:
                part, layer, name, leaf = m.groups()
                table = _HF_LAYER if part == "encoder" else _HF_DECODER_LAYER
                if name in table:
                    name = table[name]
                else:
                    name = re.sub(r"^encoder_attn\.", "multihead_attn.", name)
                    name = re.sub(r"\.o_proj$", ".out_proj", name)
                new = f"transformer.{part}.layers.{layer}.{name}.{leaf}"
        out[new if new is not None else key] = value
    return out


def _count(state: dict, pattern: str) -> int:
    return len({m[1] for k in state if (m := re.match(pattern, k))})


def infer_config(
    state: dict, n_heads: int = 8, dilation: bool = False, class_names: list[str] | None = None
) -> DetrConfig:
    """The DetrConfig a state dict in our names was made from (what tensors can tell)."""
    try:
        _check_dims(state)
        num_queries, d_model = state["query_embed.weight"].shape
        num_classes = state["class_embed.weight"].shape[0] - 1
        bottleneck = "backbone.0.body.layer1.0.conv3.weight" in state
        layer3 = _count(state, r"backbone\.0\.body\.layer3\.(\d+)\.")
        depth = {(True, 6): 50, (True, 23): 101, (False, 6): 34, (False, 2): 18}.get((bottleneck, layer3))
        if depth is None:
            raise CheckpointError(
                f"backbone with {layer3} blocks in layer3 "
                f"({'bottleneck' if bottleneck else 'basic'}) is not ResNet-18/34/50/101"
            )
        config = DetrConfig(
            num_classes=num_classes,
            backbone_depth=depth,
            backbone_width=state["backbone.0.body.conv1.weight"].shape[0],
            dilation=dilation,
            d_model=d_model,
            n_heads=n_heads,
            num_encoder_layers=_count(state, r"transformer\.encoder\.layers\.(\d+)\."),
            num_decoder_layers=_count(state, r"transformer\.decoder\.layers\.(\d+)\."),
            dim_feedforward=state["transformer.encoder.layers.0.linear1.weight"].shape[0],
            num_queries=num_queries,
        )
    except KeyError as e:
        raise CheckpointError(f"not a DETR state dict: no tensor named {e.args[0]!r} (after renaming)") from e
    if class_names is None:
        class_names = (
            list(COCO_CLASSES)
            if num_classes == len(COCO_CLASSES)
            else [f"class {i}" for i in range(num_classes)]
        )
    config.class_names = class_names
    return config


# tensors whose shape tells the architecture -> the dimensions they must have
_DIMS = {
    "query_embed.weight": 2,  # (num_queries, d_model)
    "class_embed.weight": 2,  # (num_classes + 1, d_model)
    "backbone.0.body.conv1.weight": 4,  # (stem width, 3, 7, 7)
    "transformer.encoder.layers.0.linear1.weight": 2,  # (dim_feedforward, d_model)
}


def _check_dims(state: dict) -> None:
    for name, dims in _DIMS.items():
        if name in state and state[name].dim() != dims:
            raise CheckpointError(
                f"tensor {name} has shape {tuple(state[name].shape)}; a DETR's has {dims} dimensions"
            )


def load_state_strict(model: DETR, state: dict, source: str, load: bool = True) -> None:
    """Load, or raise CheckpointError listing missing, unexpected and mis-shaped tensors by name. With
    load False only check: `state` may then hold meta tensors (shapes read from a safetensors header)."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(k for k in set(state) - set(expected) if not k.endswith("num_batches_tracked"))
    shapes = sorted(
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(expected) & set(state)
        if state[k].shape != expected[k].shape
    )

    def listing(title: str, items: list[str]) -> str:
        more = f" ... and {len(items) - 8} more" if len(items) > 8 else ""
        return f"\n  {title} ({len(items)}): " + ", ".join(items[:8]) + more if items else ""

    if missing or unexpected or shapes:
        raise CheckpointError(
            f"{source} does not match the DETR architecture it describes:"
            + listing("missing", missing)
            + listing("unexpected", unexpected)
            + listing("wrong shape", shapes)
        )
    if load:
        model.load_state_dict(state, strict=False)  # all names checked above; num_batches_tracked dropped


def _header_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """name -> shape from a safetensors file's header, without reading the tensors."""
    try:
        return {
            name: shape
            for name, (_, shape) in validate.safetensors_header(regular_file(path, MAX_WEIGHTS_BYTES)).items()
        }
    except ModelLoadError as e:
        raise CheckpointError(
            f"{path.name}: could not be read as a checkpoint (truncated, or not a safetensors file): {e}"
        ) from e


def _hf_config(cfg: dict) -> tuple[int, bool, list[str] | None]:
    """(n_heads, dilation, class names) from a Hugging Face DETR config.json."""
    labels = validate.hf_detr(cfg, "config.json")  # class ids are integers in range, heads positive
    names = None
    if labels:
        names = [labels.get(i, "N/A") for i in range(max(labels) + 1)]
    return int(cfg.get("encoder_attention_heads", 8)), bool(cfg.get("dilation") or False), names


def _build(config: DetrConfig, source: Path, device: str = "cpu") -> DETR:
    try:
        validate.detr(asdict(config), str(source), device)  # sizes, heads, classes and memory first
    except ModelLoadError as e:
        raise CheckpointError(str(e)) from e
    try:
        return build_detr(config)
    except BUILD_ERRORS as e:
        raise CheckpointError(f"{source}: its config does not build a DETR ({e})") from e


def load_checkpoint(
    path: str | Path, n_heads: int | None = None, dilation: bool | None = None, device: str = "cpu"
) -> tuple[DETR, DetrConfig]:
    """-> (model in eval mode on `device`, config). See the module docstring for the formats."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file or directory")
    hf_heads, hf_dilation, names = 8, False, None
    if path.is_dir():
        cfg_file = path / "config.json"
        if not cfg_file.exists():
            raise CheckpointError(f"{path}: a model directory needs config.json")
        try:
            cfg = read_json_object(cfg_file)  # a regular file of bounded size holding a JSON object
        except ModelLoadError as e:
            raise CheckpointError(str(e)) from e
        weights = next(
            (path / f for f in ("model.safetensors", "pytorch_model.bin") if (path / f).exists()), None
        )
        if weights is None:
            raise CheckpointError(f"{path}: no model.safetensors or pytorch_model.bin next to config.json")
        if cfg.get("model_type") != "detr":  # ours
            try:
                config = DetrConfig.from_dict(cfg)
            except (TypeError, ValueError) as e:
                raise CheckpointError(f"{cfg_file}: neither our DETR config nor Hugging Face's: {e}") from e
            model = _build(config, cfg_file, device)
            if weights.suffix == ".safetensors":  # names and shapes from the header, before any data
                meta = {k: torch.empty(shape, device="meta") for k, shape in _header_shapes(weights).items()}
                load_state_strict(model, meta, str(weights), load=False)
            load_state_strict(model, read_tensors(weights), str(weights))
            return model.eval().to(device), config
        try:
            hf_heads, hf_dilation, names = _hf_config(cfg)
        except (AttributeError, TypeError, ValueError, ModelLoadError) as e:
            raise CheckpointError(
                f"{cfg_file}: a Hugging Face DETR config with malformed fields ({e})"
            ) from e
        obj = read_tensors(weights)
    else:
        obj = read_tensors(path)
        hf_dilation = "dc5" in path.name.lower()  # detr-r50-dc5-f0fb7ef5.pth: same tensors, dilated
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]  # torch-hub / official training checkpoint
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: expected a state dict of tensors (or {{'model': state dict}})")
    state = (
        hf_to_ours(obj)
        if any(k.startswith(("model.", "class_labels_classifier")) for k in obj)
        else split_in_proj(obj)
    )
    config = infer_config(
        state,
        n_heads=n_heads or hf_heads,
        dilation=hf_dilation if dilation is None else dilation,
        class_names=names,
    )
    if names is not None and len(names) != config.num_classes:
        config.class_names = (names + ["N/A"] * config.num_classes)[: config.num_classes]
    model = _build(config, path, device)
    load_state_strict(model, state, str(path))
    return model.eval().to(device), config
