"""Loading and saving GPT checkpoints: our character-level models and Hugging Face GPT-2 directories.

Our format (`weights/gpt-stdlib`): `config.json` = {"model_type": "attention-lab-gpt", "gpt": GPTConfig
fields, "alphabet": the characters of ids 1..V-1} and `model.safetensors`. A GPT-2 directory
(`model_type` "gpt2") holds Hugging Face names; GPT-2's Conv1D layers store weights as (in, out), the
transpose of nn.Linear, and `c_attn` packs the q, k, v projections side by side, so they are split here.
"""

import json
import re
from dataclasses import dataclass, fields
from pathlib import Path

import torch
from safetensors.torch import save_model
from tokenizers import Tokenizer
from torch import Tensor

from models import validate
from models.bert import read_config, read_weights
from models.errors import BUILD_ERRORS, ModelLoadError
from models.files import MAX_TOKENIZER_BYTES, regular_file
from models.gpt import GPT, GPTConfig, GPTOutput, build_gpt

OUR_MODEL_TYPE = "attention-lab-gpt"
DEFAULT_GPT_PATH = Path(__file__).resolve().parent.parent / "weights" / "gpt-stdlib"
UNKNOWN = "\ufffd"  # id 0 of the character tokenizer: every character outside the alphabet becomes it
ALPHABET = "\n" + "".join(chr(c) for c in range(32, 127))  # newline and printable ASCII


@dataclass
class CharEncoding:
    ids: list[int]
    tokens: list[str]  # one character each; UNKNOWN where the input had a character outside the alphabet
    unknown: list[str]  # the distinct input characters that became UNKNOWN, in order of appearance
    n_dropped: int = 0  # characters cut from the start because the text was longer than the context


class CharTokenizer:
    """One token per character. Id 0 is UNKNOWN, ids 1..len(alphabet) are the alphabet's characters."""

    def __init__(self, alphabet: str = ALPHABET):
        if len(set(alphabet)) != len(alphabet) or UNKNOWN in alphabet:
            raise ValueError("the alphabet must hold distinct characters and not the unknown mark")
        self.alphabet = alphabet
        self.vocab = [UNKNOWN, *alphabet]
        self._ids = {ch: i for i, ch in enumerate(self.vocab)}

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, text: str, max_len: int | None = None) -> CharEncoding:
        """Characters of `text` as ids; with max_len, only the last max_len are kept (the newest context)."""
        dropped = max(0, len(text) - max_len) if max_len is not None else 0
        text = text[dropped:]
        ids = [self._ids.get(ch, 0) for ch in text]
        unknown = list(dict.fromkeys(ch for ch in text if ch not in self._ids))
        return CharEncoding(ids, [self.vocab[i] for i in ids], unknown, dropped)

    def decode(self, ids: list[int]) -> str:
        return "".join(self.vocab[i] for i in ids)


def encoding_notices(enc: CharEncoding, context: int) -> list[str]:
    """What the user should be told about an encoding: truncation, characters outside the alphabet."""
    notices = []
    if enc.n_dropped:
        notices.append(
            f"The text is longer than the model's context of {context} characters: the first "
            f"{enc.n_dropped} were dropped and the last {context} kept."
        )
    if enc.unknown:
        shown = " ".join(repr(ch) for ch in enc.unknown[:20]) + (" …" if len(enc.unknown) > 20 else "")
        notices.append(
            f"{len(enc.unknown)} distinct character(s) are outside the model's alphabet (printable ASCII and "
            f"newline) and became the unknown token {UNKNOWN}, which the model saw only rarely in "
            f"training: {shown}"
        )
    return notices


@dataclass
class TextGPT:
    """A loaded causal model with its tokenizer (None for a GPT-2 directory without tokenizer.json)."""

    model: GPT
    tokenizer: CharTokenizer | Tokenizer | None
    config: GPTConfig
    name: str
    device: str = "cpu"
    training: dict | None = None  # how our scripts trained it (config.json "training"), None for GPT-2

    @property
    def unit(self) -> str:
        """What one token is: "character" for ours, "token" for GPT-2's byte-level BPE."""
        return "character" if isinstance(self.tokenizer, CharTokenizer) else "token"

    def encode(self, text: str) -> tuple[list[int], list[str], list[str]]:
        """ids, tokens and notices (truncation, unknown characters) of `text`, the last block_size kept."""
        context = self.config.block_size
        if isinstance(self.tokenizer, CharTokenizer):
            enc = self.tokenizer.encode(text, max_len=context)
            return enc.ids, enc.tokens, encoding_notices(enc, context)
        if self.tokenizer is None:
            raise ValueError(f"{self.name} has no tokenizer.json, so text cannot be turned into its tokens")
        enc = self.tokenizer.encode(text)
        dropped = max(0, len(enc.ids) - context)
        notices = [
            f"The text is longer than the model's context of {context} tokens: the first {dropped} were "
            f"dropped and the last {context} kept."
        ]
        return enc.ids[dropped:], enc.tokens[dropped:], notices if dropped else []

    def tokens(self, ids: list[int]) -> list[str]:
        """The token string of each id."""
        if isinstance(self.tokenizer, CharTokenizer):
            return [self.tokenizer.vocab[i] for i in ids]
        return [self.tokenizer.id_to_token(i) for i in ids]

    @torch.no_grad()
    def run(self, ids: list[int], capture: bool = True) -> GPTOutput:
        return self.model(torch.tensor([ids], device=self.device), capture=capture)


def save_gpt(
    model: GPT, config: GPTConfig, alphabet: str, directory: Path, extra: dict | None = None
) -> None:
    """Write config.json and model.safetensors (tied embedding stored once) so that load_gpt rebuilds it."""
    directory.mkdir(parents=True, exist_ok=True)
    meta = {"model_type": OUR_MODEL_TYPE, "gpt": config.to_dict(), "alphabet": alphabet} | (extra or {})
    (directory / "config.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    save_model(model, str(directory / "model.safetensors"))


# Hugging Face GPT-2 names -> ours; the packed c_attn is split in convert_gpt2_state_dict.
_RENAMES = [
    (r"^transformer\.", ""),
    (r"^wte\.", "token_embedding."),
    (r"^wpe\.", "position_embedding."),
    (r"^h\.(\d+)\.attn\.c_proj\.", r"blocks.\1.attention.out_proj."),
    (r"^h\.(\d+)\.mlp\.c_fc\.", r"blocks.\1.mlp.fc."),
    (r"^h\.(\d+)\.mlp\.c_proj\.", r"blocks.\1.mlp.proj."),
    (r"^h\.(\d+)\.", r"blocks.\1."),
]
_CONV1D = re.compile(r"attention\.out_proj\.weight$|mlp\.(fc|proj)\.weight$")
_IGNORED = re.compile(r"\.attn\.(masked_)?bias$")  # the causal-mask buffers of old checkpoints


def convert_gpt2_state_dict(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename a Hugging Face GPT-2 state dict, transpose its Conv1D weights and unpack c_attn into q, k, v."""
    converted = {}
    for name, tensor in state.items():
        if _IGNORED.search(name):
            continue
        for pattern, repl in _RENAMES:
            name = re.sub(pattern, repl, name)
        packed = re.match(r"^(blocks\.\d+)\.attn\.c_attn\.(weight|bias)$", name)
        if packed:
            prefix, kind = packed.groups()
            d = tensor.shape[-1] // 3
            for i, proj in enumerate(("q_proj", "k_proj", "v_proj")):
                part = tensor[..., i * d : (i + 1) * d]  # weight (d_in, 3d) -> (d_in, d); bias (3d,) -> (d,)
                converted[f"{prefix}.attention.{proj}.{kind}"] = (
                    part.T.contiguous() if kind == "weight" else part
                )
        elif _CONV1D.search(name):
            converted[name] = tensor.T.contiguous()  # Conv1D (in, out) -> Linear (out, in)
        else:
            converted[name] = tensor
    return converted


def gpt2_config(raw: dict) -> GPTConfig:
    """GPTConfig from a Hugging Face GPT-2 config.json, refusing options this model does not implement."""
    unsupported = {
        "activation_function": (
            raw.get("activation_function", "gelu_new") not in ("gelu_new", "gelu_pytorch_tanh")
        ),
        "scale_attn_weights": raw.get("scale_attn_weights", True) is not True,
        "scale_attn_by_inverse_layer_idx": bool(raw.get("scale_attn_by_inverse_layer_idx", False)),
        "add_cross_attention": bool(raw.get("add_cross_attention", False)),
    }
    bad = [f"{key}={raw.get(key)!r}" for key, is_bad in unsupported.items() if is_bad]
    if bad:
        raise ModelLoadError(
            f"this GPT-2 variant is not supported ({', '.join(bad)}); use a plain GPT-2 config"
        )
    try:
        n_embd = int(raw["n_embd"])
        return GPTConfig(
            vocab_size=int(raw["vocab_size"]),
            block_size=int(raw["n_positions"]),
            n_layer=int(raw["n_layer"]),
            n_head=int(raw["n_head"]),
            n_embd=n_embd,
            d_mlp=int(raw.get("n_inner") or 4 * n_embd),
            layer_norm_eps=float(raw.get("layer_norm_epsilon", 1e-5)),
            tie_weights=bool(raw.get("tie_word_embeddings", True)),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ModelLoadError(f"the GPT-2 config.json lacks or mangles a required field ({err})") from err


def _our_config(raw: dict, directory: Path) -> tuple[GPTConfig, CharTokenizer]:
    known = {f.name for f in fields(GPTConfig)}
    try:
        config = GPTConfig(**{k: v for k, v in raw["gpt"].items() if k in known})
        if not all(isinstance(getattr(config, name), int) for name in ("vocab_size", "block_size", "n_embd")):
            raise TypeError("sizes must be integers")
        return config, CharTokenizer(str(raw["alphabet"]))
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ModelLoadError(
            f"{directory / 'config.json'} is not a valid gpt-stdlib config ({err!r}); "
            "rewrite it with python -m scripts.train_gpt"
        ) from err


def _gpt2_tokenizer(path: Path) -> Tokenizer | None:
    if not path.exists():
        return None
    regular_file(path, MAX_TOKENIZER_BYTES)
    try:
        return Tokenizer.from_file(str(path))
    except Exception as err:  # tokenizers raises a bare Exception on malformed files
        raise ModelLoadError(f"{path} cannot be read: {err}") from err


def load_gpt(path: str | Path | None = None, device: str = "cpu") -> TextGPT:
    """Load our character-level GPT (the embedded gpt-stdlib when `path` is None) or a GPT-2 directory."""
    directory = DEFAULT_GPT_PATH if path is None else Path(path).expanduser()
    raw = read_config(directory)
    where = str(directory / "config.json")
    if raw.get("model_type") == OUR_MODEL_TYPE:
        validate.our_gpt(validate.section(raw, "gpt", where), where, device)
    elif raw.get("model_type") == "gpt2":
        validate.gpt2(raw, where, device)
    state = read_weights(directory)
    if raw.get("model_type") == OUR_MODEL_TYPE:
        config, tokenizer = _our_config(raw, directory)
        if len(tokenizer) != config.vocab_size:
            raise ModelLoadError(
                f"alphabet of {len(tokenizer)} tokens does not fit vocab_size {config.vocab_size}"
            )
    elif raw.get("model_type") == "gpt2":
        config = gpt2_config(raw)
        state = convert_gpt2_state_dict(state)
        tokenizer = _gpt2_tokenizer(directory / "tokenizer.json")
    else:
        raise ModelLoadError(
            f"{directory} holds a {raw.get('model_type')!r} model; expected 'gpt2' or {OUR_MODEL_TYPE!r}"
        )
    try:
        model = build_gpt(config)
    except BUILD_ERRORS as err:
        raise ModelLoadError(
            f"{directory / 'config.json'} does not describe a GPT that can be built ({err})"
        ) from err
    shared = state.get("token_embedding.weight", state.get("lm_head.weight"))
    if config.tie_weights and shared is not None:  # a tied matrix may be stored under either name
        state["token_embedding.weight"] = state["lm_head.weight"] = shared
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:
        raise ModelLoadError(f"the weights in {directory} do not fit its config.json: {err}") from err
    if missing or unexpected:
        raise ModelLoadError(
            f"the weights in {directory} do not match a GPT of this config: "
            f"missing {sorted(missing)[:8]}, unexpected {sorted(unexpected)[:8]}"
        )
    model.eval().to(device)
    return TextGPT(
        model, tokenizer, config, str(raw.get("name", directory.name)), device, raw.get("training")
    )
