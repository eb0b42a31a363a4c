"""Loading and saving Llama-family checkpoints: local Hugging Face directories of LlamaForCausalLM,
MistralForCausalLM and Qwen2ForCausalLM, and ours (written in the same format by scripts/train_llama.py).

A directory holds `config.json`, the weights as `model.safetensors` or as shards listed by
`model.safetensors.index.json`, and `tokenizer.json` (read with `tokenizers`). bf16 and fp16 weights stay
in their dtype on a GPU and are upcast to float32 on the CPU, where half-precision matmuls are slow and
inexact, unless a dtype is asked for. A config this model does not implement is refused with a
`ModelLoadError` naming the field.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer

from models import validate
from models.bert import read_config
from models.errors import BUILD_ERRORS, ModelLoadError
from models.files import MAX_TOKENIZER_BYTES, MAX_WEIGHTS_BYTES, read_json_object, regular_file
from models.llama import Llama, LlamaConfig, LlamaOutput, build_llama, kv_groups
from models.rope import LLAMA3_KEYS, ROPE_TYPES, rotary_dim

MODEL_TYPES = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM"}
INDEX = "model.safetensors.index.json"
HALF = (torch.bfloat16, torch.float16)
_IGNORED_SUFFIX = "rotary_emb.inv_freq"  # a buffer some old checkpoints saved; recomputed from the config


def _field(raw: dict, name: str, kind=int, default=None):
    """raw[name] as `kind`, or `default` when absent or null; ModelLoadError naming the field otherwise."""
    value = raw.get(name)
    if value is None:
        if default is None:
            raise ModelLoadError(f"config.json lacks {name!r}, which a {raw.get('model_type')} model needs")
        return default
    if kind is bool:
        if not isinstance(value, bool):
            raise ModelLoadError(f"config.json field {name!r} is {value!r}; expected true or false")
        return value
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not numeric or (kind is int and value != int(value)):
        raise ModelLoadError(f"config.json field {name!r} is {value!r}; expected a number ({kind.__name__})")
    return kind(value)


def _rope(raw: dict) -> tuple[float, dict | None, float]:
    """(theta, scaling or None, partial_rotary_factor) from transformers 5's `rope_parameters` or the older
    `rope_theta` + `rope_scaling`."""
    params = raw.get("rope_parameters")
    name = "rope_parameters"
    if params is None:
        params, name = raw.get("rope_scaling"), "rope_scaling"
    if params is not None and not isinstance(params, dict):
        raise ModelLoadError(f"config.json field {name!r} is {params!r}; expected an object")
    params = dict(params or {})
    if any(isinstance(v, dict) for v in params.values()):
        raise ModelLoadError(f"config.json field {name!r} holds a RoPE per layer type; not supported")
    theta = _field(params, "rope_theta", float, _field(raw, "rope_theta", float, 10000.0))
    partial = _field(params, "partial_rotary_factor", float, _field(raw, "partial_rotary_factor", float, 1.0))
    kind = params.get("rope_type", params.get("type", "default"))
    if kind not in ROPE_TYPES:
        raise ModelLoadError(
            f"config.json field {name!r} has rope_type {kind!r}, which is not supported; "
            f"supported: {', '.join(ROPE_TYPES)}"
        )
    if kind == "default":
        return theta, None, partial
    if kind == "llama3" and "original_max_position_embeddings" not in params:
        params["original_max_position_embeddings"] = raw.get("max_position_embeddings")  # as transformers
    keys = ("factor",) if kind == "linear" else LLAMA3_KEYS
    missing = [key for key in keys if not isinstance(params.get(key), (int, float))]
    if missing:
        raise ModelLoadError(f"config.json field {name!r} ({kind}) lacks or mangles {', '.join(missing)}")
    return theta, {"rope_type": kind, **{key: params[key] for key in keys}}, partial


def _window(raw: dict, n_layer: int) -> tuple[int | None, list[int] | None]:
    """(sliding_window, window layers) as transformers reads them: Mistral windows every layer when
    `sliding_window` is set; Qwen2 only with `use_sliding_window`, on `layer_types`' "sliding_attention"
    layers or else layers >= `max_window_layers`; Llama has none."""
    model_type = raw["model_type"]
    if model_type == "llama":
        return None, None
    if model_type == "qwen2" and not raw.get("use_sliding_window", False):
        return None, None
    window = raw.get("sliding_window")
    if window is None:
        return None, None
    window = _field(raw, "sliding_window", int)
    if window < 1:
        raise ModelLoadError(f"config.json field 'sliding_window' is {window}; expected at least 1")
    if model_type == "mistral":
        if raw.get("layer_types") is not None:
            raise ModelLoadError("config.json field 'layer_types' (alternating attention) is not supported")
        return window, None
    types = raw.get("layer_types")
    if types is None:
        first = _field(raw, "max_window_layers", int, 28)
        return window, list(range(first, n_layer))
    allowed = ("full_attention", "sliding_attention")
    if not isinstance(types, list) or len(types) != n_layer or any(t not in allowed for t in types):
        raise ModelLoadError(
            f"config.json field 'layer_types' must list {n_layer} entries among {allowed}; got {types!r}"
        )
    return window, [i for i, t in enumerate(types) if t == "sliding_attention"]


def llama_config(raw: dict) -> LlamaConfig:
    """LlamaConfig from a Hugging Face config.json of model_type llama, mistral or qwen2; ModelLoadError
    naming the field this model does not implement."""
    model_type = raw.get("model_type")
    if model_type not in MODEL_TYPES:
        raise ModelLoadError(
            f"config.json field 'model_type' is {model_type!r}; expected one of {', '.join(MODEL_TYPES)}"
        )
    if raw.get("quantization_config") is not None:
        raise ModelLoadError(
            "config.json field 'quantization_config': quantized weights are not supported; "
            "give the bf16, fp16 or fp32 checkpoint"
        )
    act = raw.get("hidden_act", "silu")
    if act not in ("silu", "swish"):
        raise ModelLoadError(f"config.json field 'hidden_act' is {act!r}; this model implements silu")
    d_model = _field(raw, "hidden_size")
    n_head = _field(raw, "num_attention_heads")
    n_kv_head = _field(raw, "num_key_value_heads", int, n_head)
    n_layer = _field(raw, "num_hidden_layers")
    if min(d_model, n_head, n_kv_head, n_layer) < 1 or n_head % n_kv_head:
        raise ModelLoadError(
            f"config.json fields 'num_attention_heads' ({n_head}) and 'num_key_value_heads' ({n_kv_head}): "
            "both must be positive and the first a multiple of the second"
        )
    d_head = _field(raw, "head_dim", int, d_model // n_head)
    theta, scaling, partial = _rope(raw)
    try:
        rotary_dim(d_head, partial)
    except ValueError as err:
        raise ModelLoadError(f"config.json field 'partial_rotary_factor': {err}") from err
    window, window_layers = _window(raw, n_layer)
    attention_bias = _field(raw, "attention_bias", bool, False)
    return LlamaConfig(
        vocab_size=_field(raw, "vocab_size"),
        n_layer=n_layer,
        n_head=n_head,
        n_kv_head=n_kv_head,
        d_model=d_model,
        d_head=d_head,
        d_mlp=_field(raw, "intermediate_size"),
        max_positions=_field(raw, "max_position_embeddings", int, 4096),
        rms_norm_eps=_field(raw, "rms_norm_eps", float, 1e-6),
        rope_theta=theta,
        rope_scaling=scaling,
        partial_rotary_factor=partial,
        qkv_bias=model_type == "qwen2" or attention_bias,
        out_bias=model_type == "llama" and attention_bias,
        mlp_bias=model_type == "llama" and _field(raw, "mlp_bias", bool, False),
        tie_weights=_field(raw, "tie_word_embeddings", bool, False),
        sliding_window=window,
        window_layers=window_layers,
    )


def hf_config(config: LlamaConfig, extra: dict | None = None) -> dict:
    """The config.json of `config` as a Hugging Face LlamaForCausalLM (no sliding window, no q/k/v-only
    biases), so that transformers loads our checkpoints too; `extra` keys are added (ours: "training")."""
    if config.sliding_window is not None or config.qkv_bias != config.out_bias:
        raise ValueError("a Llama config.json cannot express a sliding window or q/k/v-only biases")
    raw = {
        "architectures": [MODEL_TYPES["llama"]],
        "model_type": "llama",
        "vocab_size": config.vocab_size,
        "hidden_size": config.d_model,
        "intermediate_size": config.d_mlp,
        "num_hidden_layers": config.n_layer,
        "num_attention_heads": config.n_head,
        "num_key_value_heads": config.n_kv_head,
        "head_dim": config.d_head,
        "hidden_act": "silu",
        "max_position_embeddings": config.max_positions,
        "rms_norm_eps": config.rms_norm_eps,
        "rope_theta": config.rope_theta,
        "rope_scaling": config.rope_scaling,
        "attention_bias": config.qkv_bias,
        "mlp_bias": config.mlp_bias,
        "tie_word_embeddings": config.tie_weights,
    }
    if config.partial_rotary_factor != 1.0:
        raw["partial_rotary_factor"] = config.partial_rotary_factor
    return raw | (extra or {})


def _shard_files(directory: Path) -> list[Path]:
    index = directory / INDEX
    if index.exists():
        try:
            weight_map = read_json_object(index)["weight_map"]
            names = sorted(set(weight_map.values()))
        except (KeyError, TypeError, AttributeError) as err:
            raise ModelLoadError(f"{index} is not a valid safetensors index ({err!r})") from err
        files = [directory / name for name in names]
        outside = [name for name in names if Path(name).name != name]
        if outside:
            raise ModelLoadError(f"{index} names shards outside its directory: {outside[0]!r}")
        absent = [f.name for f in files if not f.exists()]
        if absent:
            raise ModelLoadError(f"{index} lists shards that are missing: {', '.join(absent[:4])}")
        return files
    single = directory / "model.safetensors"
    if single.exists():
        return [single]
    raise ModelLoadError(
        f"{directory} has neither model.safetensors nor {INDEX}; save the model with safe_serialization"
    )


def read_weights(directory: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the checkpoint under our names ("model." stripped), in its stored dtype."""
    state = {}
    for path in _shard_files(directory):
        validate.safetensors_header(regular_file(path, MAX_WEIGHTS_BYTES))
        try:
            tensors = load_file(path)
        except (SafetensorError, OSError, RuntimeError) as err:
            raise ModelLoadError(f"{path} is corrupt or truncated ({err})") from err
        for name, tensor in tensors.items():
            if not name.endswith(_IGNORED_SUFFIX):
                state[name.removeprefix("model.")] = tensor
    return state


def _target_dtype(state: dict[str, torch.Tensor], device: str, dtype: torch.dtype | None) -> torch.dtype:
    if dtype is not None:
        return dtype
    stored = next(iter(state.values())).dtype
    on_gpu = torch.device(device).type == "cuda"
    return torch.float32 if stored in HALF and not on_gpu else stored


@dataclass
class TokenEncoding:
    ids: list[int]
    tokens: list[str]  # each token's text in the input (its special token's name for added tokens)
    n_dropped: int = 0  # tokens cut from the start because the text was longer than the context


@dataclass
class TextLlama:
    """A loaded Llama-family model with its tokenizer (None for a directory without tokenizer.json)."""

    model: Llama
    tokenizer: Tokenizer | None
    config: LlamaConfig
    name: str
    device: str = "cpu"
    model_type: str = "llama"  # llama, mistral or qwen2
    training: dict | None = None  # how scripts/train_llama.py trained it (config.json "training")

    @property
    def dtype(self) -> torch.dtype:
        return self.model.embed_tokens.weight.dtype

    @property
    def kv_groups(self) -> list[list[int]]:
        """For each K/V head, the query heads that share it (their maps differ only through q)."""
        return kv_groups(self.config.n_head, self.config.n_kv_head)

    def encode(self, text: str, max_len: int | None = None) -> TokenEncoding:
        """The tokenizer's ids (with the special tokens its post-processor adds); with max_len, only the
        last max_len are kept (the newest context)."""
        if self.tokenizer is None:
            raise ModelLoadError(f"{self.name} has no tokenizer.json; give token ids instead of text")
        enc = self.tokenizer.encode(text)
        tokens = [
            text[start:end] if end > start else token
            for (start, end), token in zip(enc.offsets, enc.tokens, strict=True)
        ]
        dropped = max(0, len(enc.ids) - max_len) if max_len is not None else 0
        return TokenEncoding(enc.ids[dropped:], tokens[dropped:], dropped)

    @torch.no_grad()
    def run(
        self, ids: list[int], capture: bool | str = True, unrotated: bool = True, logits: bool = True
    ) -> LlamaOutput:
        """One forward of `ids` (`models.llama.Llama.forward`; logits=False skips the output head)."""
        ids = torch.tensor([ids], device=self.device)
        return self.model(ids, capture=capture, unrotated=unrotated, logits=logits)


def _tokenizer(path: Path) -> Tokenizer | None:
    if not path.exists():
        return None
    regular_file(path, MAX_TOKENIZER_BYTES)
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as err:  # tokenizers raises a bare Exception on malformed files
        raise ModelLoadError(f"{path} cannot be read: {err}") from err
    tokenizer.no_truncation()  # we truncate ourselves, to report how many tokens were dropped
    tokenizer.no_padding()
    return tokenizer


def load_llama(path: str | Path, device: str = "cpu", dtype: torch.dtype | None = None) -> TextLlama:
    """Load a local Llama / Mistral / Qwen2 directory. dtype None keeps bf16/fp16 weights on a GPU and
    upcasts them to float32 on the CPU; a dtype given is used as is."""
    directory = Path(path).expanduser()
    raw = read_config(directory)
    where = str(directory / "config.json")
    validate.llama_fields(raw, where)
    config = llama_config(raw)
    on_gpu = torch.device(device).type == "cuda"
    half = str(raw.get("torch_dtype", raw.get("dtype"))) in ("bfloat16", "float16") and on_gpu
    validate.llama(config, where, device, dtype.itemsize if dtype is not None else 2 if half else 4)
    state = read_weights(directory)
    if not state:
        raise ModelLoadError(f"the weights in {directory} hold no tensors")
    target = _target_dtype(state, device, dtype)
    if config.tie_weights:  # a tied matrix is stored once, under either name
        shared = state.get("embed_tokens.weight", state.get("lm_head.weight"))
        if shared is not None:
            state["embed_tokens.weight"] = state["lm_head.weight"] = shared
    try:
        model = build_llama(config, device="meta")
    except BUILD_ERRORS as err:
        raise ModelLoadError(f"{directory / 'config.json'} builds no model ({err})") from err
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise ModelLoadError(
            f"the weights in {directory} do not match a {raw['model_type']} model of this config.json: "
            f"missing {missing[:8]}, unexpected {unexpected[:8]}"
        )
    state = {name: tensor.to(device=device, dtype=target) for name, tensor in state.items()}
    try:
        model.load_state_dict(state, assign=True)
    except RuntimeError as err:
        raise ModelLoadError(f"the weights in {directory} do not fit its config.json: {err}") from err
    if config.tie_weights:
        model.lm_head.weight = model.embed_tokens.weight
    model.eval()
    return TextLlama(
        model,
        _tokenizer(directory / "tokenizer.json"),
        config,
        str(raw.get("name", directory.name)),
        device,
        raw["model_type"],
        raw.get("training"),
    )


def save_llama(
    model: Llama, config: LlamaConfig, directory: Path, tokenizer: Tokenizer | None = None, extra=None
) -> None:
    """Write config.json (a Hugging Face Llama config plus `extra`), model.safetensors (Hugging Face names,
    a tied matrix once) and tokenizer.json, so that load_llama and transformers both read it."""
    directory.mkdir(parents=True, exist_ok=True)
    raw = hf_config(config, extra)
    (directory / "config.json").write_text(json.dumps(raw, indent=2) + "\n", encoding="utf-8")
    state = {
        (name if name.startswith("lm_head.") else f"model.{name}"): tensor.detach().contiguous().cpu()
        for name, tensor in model.state_dict().items()
        if not (config.tie_weights and name == "lm_head.weight")
    }
    save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})
    if tokenizer is not None:
        tokenizer.save(str(directory / "tokenizer.json"))
