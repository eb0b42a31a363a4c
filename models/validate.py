"""One validation step for every config the app reads, run before anything is allocated.

    validate.bert(raw, where)            # a BERT config.json -> Estimate, or ModelLoadError naming the field
    validate.gpt2(raw, where)            # a Hugging Face GPT-2 config.json
    validate.our_gpt(section, where)     # the "gpt" section of our config.json
    validate.llama(config, where, device, dtype_bytes)  # a parsed LlamaConfig
    validate.seq2seq(section, where)     # the "model" section of our seq2seq config.json
    validate.detr(fields, where)         # DetrConfig fields (ours, or inferred from a checkpoint's tensors)
    validate.hf_detr(raw, where)         # the extra fields of a Hugging Face DETR config.json

Each checks types (an int is an int, not "big", 12.5 or true), ranges (positive sizes, ids in range),
cross-field rules (heads divide the width, K/V heads divide the heads), and then the memory the model and
one run of it would take (`Estimate`: weights, activations, captured maps at the longest input the pages
run) against what the device has (`available_bytes`), so that `hidden_size: 10**9` is refused with a
message instead of an allocation failure, and `num_hidden_layers: 10**7` instead of hours of building.
`safetensors_header` reads a checkpoint's tensor shapes from its header, without the data.
"""

import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from models.errors import ModelLoadError

MAX_LAYERS = 512  # modules are built one by one: the deepest released transformers have ~130 layers
RUN_LENGTH = 8192  # the longest input any page runs (the causal page's Llama limit)
DETR_PIXELS = (800, 1333)  # DETR's resize bounds the image the model sees
DETR_DEPTHS = (18, 34, 50, 101)
MAX_CLASSES = 100_000  # class ids of a detector: COCO has 91, LVIS 1,203, Objects365 365
MEMORY_ENV = "ATTN_MEMORY_BYTES"  # the most one model and its run may take; default: what is available


@dataclass(frozen=True)
class Estimate:
    """Bytes one model takes in memory and one run of it on the longest input the pages give it."""

    weights: int
    run: int  # activations and captured maps of one forward

    @property
    def total(self) -> int:
        return self.weights + self.run


def _gib(n: float) -> str:
    return f"{n / 2**30:,.2f} GiB" if n >= 2**28 else f"{n / 2**20:,.1f} MiB"


# --- fields ----------------------------------------------------------------------------------------------


def integer(raw: dict, name: str, where: str, low: int = 1, high: int | None = None, default=None) -> int:
    """raw[name] as an int in [low, high] (`default` when absent or null, if given); ModelLoadError naming
    the field, its value and the limit otherwise. 12.0 counts as 12; true, "12" and 12.5 do not."""
    value = raw.get(name)
    if value is None:
        if default is None:
            raise ModelLoadError(f"{where}: field {name!r} is missing; it must be an integer ≥ {low}")
        return default
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ModelLoadError(f"{where}: field {name!r} is {value!r}; it must be an integer ≥ {low}")
    if value < low or (high is not None and value > high):
        limit = f"between {low} and {high:,}" if high is not None else f"at least {low}"
        raise ModelLoadError(f"{where}: field {name!r} is {value:,}; it must be {limit}")
    return value


def number(raw: dict, name: str, where: str, low: float, high: float, default: float) -> float:
    """raw[name] as a finite float in (low, high) exclusive of low; `default` when absent or null."""
    value = raw.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ModelLoadError(f"{where}: field {name!r} is {value!r}; it must be a number")
    if not low < value <= high:
        raise ModelLoadError(
            f"{where}: field {name!r} is {value!r}; it must be above {low} and at most {high}"
        )
    return float(value)


def divides(where: str, width_name: str, width: int, heads_name: str, heads: int) -> None:
    if width % heads:
        raise ModelLoadError(
            f"{where}: field {width_name!r} = {width} is not divisible by {heads_name!r} = {heads}; "
            f"each head gets {width_name} / {heads_name} channels"
        )


def section(raw: dict, name: str, where: str) -> dict:
    value = raw.get(name)
    if not isinstance(value, dict):
        raise ModelLoadError(f"{where}: field {name!r} is {type(value).__name__}; it must be a JSON object")
    return value


# --- memory --------------------------------------------------------------------------------------------


def available_bytes(device: str = "cpu") -> int:
    """Memory one model and its run may take on `device`: ATTN_MEMORY_BYTES when set, else what the
    device has free (CUDA's free memory; on the CPU MemAvailable, within the cgroup's limit)."""
    configured = os.environ.get(MEMORY_ENV, "").strip()
    if configured:
        return int(float(configured))
    if str(device).startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    return _host_available()


def _host_available() -> int:
    free = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                free = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:  # a container's own limit, which MemAvailable does not see
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit != "max":
            free = min(free or 2**62, int(limit) - used)
    except (OSError, ValueError):
        pass
    return free if free is not None else 8 * 2**30


def check_memory(
    where: str, estimate: Estimate, device: str, note: str = "", sizes: dict | None = None
) -> None:
    """ModelLoadError when the model and its run would not fit the device's memory; `sizes` (field ->
    value) are named in the message as what to change."""
    limit = available_bytes(device)
    if estimate.total > limit:
        named = ", ".join(f"{k} = {v:,}" for k, v in (sizes or {}).items())
        raise ModelLoadError(
            f"{where}: this model needs about {_gib(estimate.total)} ({_gib(estimate.weights)} of weights, "
            f"{_gib(estimate.run)} for one run{note}); {device} has {_gib(limit)} available"
            + (f". Its sizes: {named}; lower the largest" if named else "")
            + ", or free memory"
        )


def transformer_run(
    layers: int, heads: int, d_head: int, width: int, ffn: int, length: int, vocab: int
) -> int:
    """Float32 bytes of one forward at `length` tokens as the pages run it: every layer's hidden state and
    q, k, v kept (the LAZY capture), one layer's feed-forward and scores and probabilities (H × T × T,
    twice) at a time, and the logits when there is an output head (vocab > 0)."""
    kept = (layers + 1) * length * width + layers * 3 * heads * length * d_head
    transient = length * max(ffn, width) * 2 + 2 * heads * length * length
    return 4 * (kept + transient + length * vocab)


def _decoder_layer_params(width: int, q_width: int, kv_width: int, ffn: int, gated: bool) -> int:
    return width * (q_width + 2 * kv_width) + q_width * width + (3 if gated else 2) * width * ffn + 4 * width


# --- families ------------------------------------------------------------------------------------------


def bert(raw: dict, where: str, device: str = "cpu") -> Estimate:
    """A BERT config.json: sizes, heads dividing the width, the pad id inside the vocabulary, memory."""
    vocab = integer(raw, "vocab_size", where, default=30522)
    width = integer(raw, "hidden_size", where, default=768)
    layers = integer(raw, "num_hidden_layers", where, high=MAX_LAYERS, default=12)
    heads = integer(raw, "num_attention_heads", where, high=width, default=12)
    divides(where, "hidden_size", width, "num_attention_heads", heads)
    ffn = integer(raw, "intermediate_size", where, default=3072)
    positions = integer(raw, "max_position_embeddings", where, default=512)
    types = integer(raw, "type_vocab_size", where, default=2)
    integer(raw, "pad_token_id", where, low=0, high=vocab - 1, default=0)
    number(raw, "layer_norm_eps", where, 0.0, 1.0, 1e-12)
    if not isinstance(raw.get("hidden_act", "gelu"), str):
        raise ModelLoadError(f"{where}: field 'hidden_act' is {raw.get('hidden_act')!r}; it must be a name")
    params = (vocab + positions + types) * width + layers * _decoder_layer_params(
        width, width, width, ffn, False
    )
    length = min(positions, RUN_LENGTH)
    estimate = Estimate(2 * 4 * params, transformer_run(layers, heads, width // heads, width, ffn, length, 0))
    sizes = {"vocab_size": vocab, "hidden_size": width, "num_hidden_layers": layers, "intermediate_size": ffn}
    check_memory(
        where, estimate, device, f" at {length:,} tokens", sizes | {"max_position_embeddings": positions}
    )
    return estimate


def _gpt(where: str, device: str, sizes: dict) -> Estimate:
    """sizes: the fields of vocabulary, positions, layers, heads, width and MLP width, in that order."""
    vocab, positions, layers, heads, width, ffn = sizes.values()
    head_field, width_field = list(sizes)[3:5]
    divides(where, width_field, width, head_field, heads)
    params = (vocab + positions) * width * 2 + layers * _decoder_layer_params(width, width, width, ffn, False)
    length = min(positions, RUN_LENGTH)
    run = transformer_run(layers, heads, width // heads, width, ffn, length, vocab)
    estimate = Estimate(2 * 4 * params, run)
    check_memory(where, estimate, device, f" at {length:,} tokens", sizes)
    return estimate


def gpt2(raw: dict, where: str, device: str = "cpu") -> Estimate:
    """A Hugging Face GPT-2 config.json."""
    width = integer(raw, "n_embd", where)
    sizes = {
        "vocab_size": integer(raw, "vocab_size", where),
        "n_positions": integer(raw, "n_positions", where),
        "n_layer": integer(raw, "n_layer", where, high=MAX_LAYERS),
        "n_head": integer(raw, "n_head", where, high=width),
        "n_embd": width,
        "n_inner": integer(raw, "n_inner", where, low=1, default=4 * width),
    }
    return _gpt(where, device, sizes)


def our_gpt(section_: dict, where: str, device: str = "cpu") -> Estimate:
    """The "gpt" section of our character-level GPT's config.json (models.gpt.GPTConfig fields)."""
    width = integer(section_, "n_embd", where, default=128)
    sizes = {
        "vocab_size": integer(section_, "vocab_size", where, default=97),
        "block_size": integer(section_, "block_size", where, default=256),
        "n_layer": integer(section_, "n_layer", where, high=MAX_LAYERS, default=3),
        "n_head": integer(section_, "n_head", where, high=width, default=4),
        "n_embd": width,
        "d_mlp": integer(section_, "d_mlp", where, low=0, default=512),
    }
    return _gpt(where, device, sizes)


def llama_fields(raw: dict, where: str) -> None:
    """The sizes of a Llama / Mistral / Qwen2 config.json, before models.llama_io parses the rest."""
    width = integer(raw, "hidden_size", where)
    heads = integer(raw, "num_attention_heads", where)
    kv = integer(raw, "num_key_value_heads", where, high=heads, default=heads)
    if heads % kv:
        raise ModelLoadError(
            f"{where}: field 'num_attention_heads' = {heads} is not a multiple of "
            f"'num_key_value_heads' = {kv}; "
            "each K/V head serves the same number of query heads"
        )
    integer(raw, "num_hidden_layers", where, high=MAX_LAYERS)
    integer(raw, "head_dim", where, default=max(1, width // heads))
    if raw.get("head_dim") is None and width % heads:
        divides(where, "hidden_size", width, "num_attention_heads", heads)
    integer(raw, "intermediate_size", where)
    integer(raw, "vocab_size", where)
    integer(raw, "max_position_embeddings", where, default=4096)


def llama(config, where: str, device: str = "cpu", dtype_bytes: int = 4) -> Estimate:
    """A parsed models.llama.LlamaConfig: its weights in `dtype_bytes` and a run at up to RUN_LENGTH."""
    c = config
    layer = _decoder_layer_params(c.d_model, c.n_head * c.d_head, c.n_kv_head * c.d_head, c.d_mlp, True)
    params = c.vocab_size * c.d_model * (1 if c.tie_weights else 2) + c.n_layer * layer
    length = min(c.max_positions, RUN_LENGTH)
    run = transformer_run(c.n_layer, c.n_head, c.d_head, c.d_model, c.d_mlp, length, c.vocab_size)
    estimate = Estimate(dtype_bytes * params, run)  # built on the meta device: the weights once
    sizes = {
        "vocab_size": c.vocab_size,
        "hidden_size": c.d_model,
        "num_hidden_layers": c.n_layer,
        "num_attention_heads": c.n_head,
        "intermediate_size": c.d_mlp,
        "max_position_embeddings": c.max_positions,
    }
    check_memory(where, estimate, device, f" at {length:,} tokens", sizes)
    return estimate


def seq2seq(section_: dict, where: str, device: str = "cpu") -> Estimate:
    """The "model" section of our seq2seq config.json (models.seq2seq.Seq2SeqConfig fields)."""
    src = integer(section_, "src_vocab_size", where, low=3, default=41)
    tgt = integer(section_, "tgt_vocab_size", where, low=3, default=14)
    width = integer(section_, "d_model", where, default=128)
    heads = integer(section_, "n_heads", where, high=width, default=4)
    divides(where, "d_model", width, "n_heads", heads)
    enc = integer(section_, "n_encoder_layers", where, high=MAX_LAYERS, default=2)
    dec = integer(section_, "n_decoder_layers", where, high=MAX_LAYERS, default=2)
    ffn = integer(section_, "d_ff", where, default=256)
    length = integer(section_, "max_len", where, default=64)
    number(section_, "dropout", where, -1e-9, 1.0 - 1e-9, 0.0)
    for name in ("pad_id", "bos_id", "eos_id"):
        integer(
            section_, name, where, low=0, high=min(src, tgt) - 1 if name == "pad_id" else tgt - 1, default=0
        )
    layer = _decoder_layer_params(width, width, width, ffn, False)
    params = (src + tgt) * width + (enc + 2 * dec) * layer + tgt * width
    run = transformer_run(enc + 2 * dec, heads, width // heads, width, ffn, min(length, RUN_LENGTH), tgt)
    estimate = Estimate(2 * 4 * params, run)
    sizes = {"src_vocab_size": src, "tgt_vocab_size": tgt, "d_model": width, "d_ff": ffn, "max_len": length}
    check_memory(where, estimate, device, f" at {length:,} tokens", sizes)
    return estimate


def detr(fields: dict, where: str, device: str = "cpu") -> Estimate:
    """DetrConfig fields (ours, or inferred from a checkpoint's tensors): sizes, heads dividing d_model,
    the backbone depth, class names, the resize bounds, and the memory of a run on the largest image."""
    classes = integer(fields, "num_classes", where, high=MAX_CLASSES, default=91)
    depth = integer(fields, "backbone_depth", where, default=50)
    if depth not in DETR_DEPTHS:
        raise ModelLoadError(f"{where}: field 'backbone_depth' is {depth}; it must be one of {DETR_DEPTHS}")
    stem = integer(fields, "backbone_width", where, default=64)
    width = integer(fields, "d_model", where, default=256)
    heads = integer(fields, "n_heads", where, high=width, default=8)
    divides(where, "d_model", width, "n_heads", heads)
    enc = integer(fields, "num_encoder_layers", where, low=0, high=MAX_LAYERS, default=6)
    dec = integer(fields, "num_decoder_layers", where, high=MAX_LAYERS, default=6)
    ffn = integer(fields, "dim_feedforward", where, default=2048)
    queries = integer(fields, "num_queries", where, default=100)
    low = integer(fields, "min_size", where, default=DETR_PIXELS[0])
    high = integer(fields, "max_size", where, low=low, default=DETR_PIXELS[1])
    number(fields, "dropout", where, -1e-9, 1.0 - 1e-9, 0.1)
    names = fields.get("class_names", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ModelLoadError(f"{where}: field 'class_names' must be a list of strings")
    if names and len(names) != classes:
        raise ModelLoadError(
            f"{where}: field 'class_names' lists {len(names)} names for num_classes = {classes}; "
            "give one name per class"
        )
    if not isinstance(fields.get("dilation", False), bool):
        raise ModelLoadError(
            f"{where}: field 'dilation' is {fields.get('dilation')!r}; it must be true or false"
        )
    bottleneck = 4 if depth >= 50 else 1
    backbone = 11_000_000 * (stem / 64) ** 2 * (2.2 if depth >= 50 else 1) * (depth / 50 if depth > 50 else 1)
    layer = _decoder_layer_params(width, width, width, ffn, False)
    params = int(backbone) + (enc + 2 * dec) * layer + queries * width + (classes + 1) * width
    params += stem * 8 * bottleneck * width  # input projection from the last stage
    pixels = min(low, high) * high
    cells = math.ceil(pixels / (16 if fields.get("dilation") else 32) ** 2)
    backbone_run = 4 * pixels // 16 * stem * bottleneck * 3
    maps = 4 * heads * (enc * 2 * cells * 16 + dec * queries * (cells + queries))  # q, k kept; cross and self
    run = backbone_run + maps + 2 * 4 * heads * cells * cells
    estimate = Estimate(2 * 4 * params, run)
    sizes = {"d_model": width, "dim_feedforward": ffn, "num_queries": queries, "num_classes": classes}
    check_memory(
        where, estimate, device, f" on a {min(low, high)} × {high} image", sizes | {"max_size": high}
    )
    return estimate


def hf_detr(raw: dict, where: str) -> dict[int, str] | None:
    """The fields of a Hugging Face DETR config.json this app reads: id2label keys are integers in
    [0, MAX_CLASSES), values strings; the head count and the query count positive."""
    integer(raw, "encoder_attention_heads", where, default=8)
    integer(raw, "num_queries", where, default=100)
    id2label = raw.get("id2label")
    if id2label is None:
        return None
    if not isinstance(id2label, dict):
        raise ModelLoadError(f"{where}: field 'id2label' must be an object of class id -> name")
    labels = {}
    for key, name in id2label.items():
        if not (isinstance(key, str) and key.strip().isdigit() and int(key) < MAX_CLASSES):
            raise ModelLoadError(
                f"{where}: field 'id2label' has the key {key[:40]!r}; keys must be class ids "
                f"0 to {MAX_CLASSES - 1:,}"
            )
        if not isinstance(name, str):
            raise ModelLoadError(
                f"{where}: field 'id2label' names class {key} {name!r}; names must be strings"
            )
        labels[int(key)] = name
    return labels


# --- checkpoints ---------------------------------------------------------------------------------------

_DTYPE_BYTES = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
}
MAX_HEADER_BYTES = 100 * 2**20  # safetensors' own limit


def safetensors_header(path: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """name -> (dtype, shape) from a safetensors file's header, without reading the tensors; ModelLoadError
    when the header is malformed, a tensor's bytes do not match its shape, or a tensor lies past the end."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise ModelLoadError(f"{path} is corrupt or truncated: {size} bytes, no safetensors header")
            (n,) = struct.unpack("<Q", head)
            if n > min(MAX_HEADER_BYTES, size - 8):
                raise ModelLoadError(
                    f"{path} is corrupt or truncated: its header claims {n:,} bytes; "
                    f"the file holds {size - 8:,}"
                )
            header = json.loads(f.read(n))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelLoadError(
            f"{path} is corrupt or truncated: its safetensors header is not valid JSON ({err})"
        ) from err
    if not isinstance(header, dict):
        raise ModelLoadError(f"{path}: its safetensors header is not a JSON object")
    data = size - 8 - n
    shapes = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (start, end) = info["dtype"], tuple(info["shape"]), info["data_offsets"]
            ok = dtype in _DTYPE_BYTES and all(isinstance(s, int) and s >= 0 for s in (*shape, start, end))
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise ModelLoadError(f"{path}: tensor {name[:80]!r} has a malformed header entry")
        if end - start != math.prod(shape) * _DTYPE_BYTES[dtype]:
            raise ModelLoadError(
                f"{path} is corrupt or truncated: tensor {name[:80]!r} of shape {list(shape)} ({dtype}) "
                "needs "
                f"{math.prod(shape) * _DTYPE_BYTES[dtype]:,} bytes; the header gives it {end - start:,}"
            )
        if end > data:
            raise ModelLoadError(
                f"{path} is corrupt or truncated: tensor {name[:80]!r} ends at byte {end:,} of the data; "
                f"the file holds {data:,}"
            )
        shapes[name] = (dtype, shape)
    return shapes
