"""Any other transformers model: its attention read through transformers itself, for the families we do not
instrument (RoBERTa, XLM-R, DeBERTa, OPT, Phi, …). Needs the `hf` extra (`pip install attention-lab[hf]`).

    model = load_hf(path, device="cpu")      # an HFModel: encode(text) and run(ids) like TextModel
    model.run(model.encode("hello").ids).attentions   # one AttentionRecord per layer, probs only

The model runs with `attn_implementation="eager"` and `output_attentions=True`, so its maps are exactly
the probabilities its own forward computed. Only those are available: the records' q, k and v are
zero-width (B, H, T, 0) tensors, so the step-by-step stages (scores, scaling, mask, softmax) and head
ablation cannot be shown for these models, and pages say so (`NOTICE`). `trust_remote_code` is never set:
a model that needs its own code is refused.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tokenizers import Tokenizer

from models.attention import AttentionRecord
from models.errors import ModelLoadError

NOTICE = (
    "This model is read through transformers (attn_implementation='eager', output_attentions=True): its "
    "attention maps are its own, but its queries, keys and values are not exposed, so the step-by-step "
    "stages, the value-weighted norms and head ablation are not available for it."
)
CAUSAL_ENDINGS = ("ForCausalLM", "LMHeadModel")


def available() -> bool:
    try:
        import transformers  # noqa: F401
    except ImportError:
        return False
    return True


def is_causal(raw: dict) -> bool:
    """A decoder-only model, told from config.json's architectures (or is_decoder)."""
    architectures = raw.get("architectures") or []
    return bool(raw.get("is_decoder")) or any(str(a).endswith(CAUSAL_ENDINGS) for a in architectures)


@dataclass
class HFConfig:
    model_type: str
    max_position_embeddings: int  # the longest input encode keeps
    n_layers: int
    n_heads: int


@dataclass
class Encoding:
    ids: list[int]
    tokens: list[str]
    n_dropped: int = 0  # tokens cut from the end because the text was longer than the model's positions


@dataclass
class HFOutput:
    attentions: list[AttentionRecord]  # one per layer: probs (B, H, T, T), q/k/v zero-width


@dataclass
class HFModel:
    """A transformers model with its tokenizer, ready for `encode` and `run` like models.bert.TextModel."""

    model: torch.nn.Module
    tokenizer: Tokenizer
    config: HFConfig
    name: str
    device: str = "cpu"
    causal: bool = False
    special_tokens: set[str] = field(default_factory=set)
    notice: str = NOTICE

    def encode(self, text: str) -> Encoding:
        enc = self.tokenizer.encode(text)
        ids, tokens = list(enc.ids), list(enc.tokens)
        limit = self.config.max_position_embeddings
        return Encoding(ids[:limit], tokens[:limit], max(0, len(ids) - limit))

    @torch.no_grad()
    def run(self, ids: list[int], capture: bool | str = True) -> HFOutput:
        """Every layer's attention on `ids` (`capture` is accepted for the pages' sake: the maps are always
        kept, since transformers computes them anyway)."""
        input_ids = torch.tensor([ids], device=self.device)
        out = self.model(input_ids=input_ids, output_attentions=True)
        if not out.attentions or any(a is None for a in out.attentions):
            raise ModelLoadError(
                f"{self.name} ({self.config.model_type}) returns no attention weights, even with "
                "output_attentions=True: it has no attention this app can show"
            )
        t = len(ids)
        mask = None
        if self.causal:
            mask = torch.ones(t, t, dtype=torch.bool, device=self.device).tril()[None, None]  # (1, 1, T, T)
        return HFOutput([probs_record(a.float(), mask) for a in out.attentions])


def probs_record(probs: torch.Tensor, mask: torch.Tensor | None) -> AttentionRecord:
    """probs (B, H, Tq, Tk) -> an AttentionRecord that carries them, with zero-width q, k, v and out."""
    b, h, tq, tk = probs.shape
    empty_q, empty_k = probs.new_zeros(b, h, tq, 0), probs.new_zeros(b, h, tk, 0)
    return AttentionRecord(q=empty_q, k=empty_k, v=empty_k, scale=1.0, mask=mask, probs=probs, out=empty_q)


def _limit(raw: dict, directory: Path) -> int:
    positions = raw.get("max_position_embeddings") or raw.get("n_positions") or 512
    try:
        tokenizer_config = json.loads((directory / "tokenizer_config.json").read_text(encoding="utf-8"))
        stated = int(tokenizer_config.get("model_max_length") or 0)
    except (OSError, ValueError, TypeError, AttributeError):
        stated = 0
    return min(int(positions), stated) if 0 < stated < 10**7 else int(positions)


def load_hf(path: str | Path, device: str = "cpu", raw: dict | None = None) -> HFModel:
    """A local transformers directory (config.json, weights, tokenizer.json) through AutoModel."""
    directory = Path(path).expanduser()
    if not available():
        raise ModelLoadError(
            f"{directory} holds a model type this app does not instrument; install the hf extra "
            "(pip install 'attention-lab[hf]') to see its attention through transformers"
        )
    from transformers import AutoModel

    raw = raw if raw is not None else json.loads((directory / "config.json").read_text(encoding="utf-8"))
    if (directory / "tokenizer.json").exists():
        tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    else:
        raise ModelLoadError(f"{directory} has no tokenizer.json (a fast tokenizer), which this app reads")
    tokenizer.no_truncation()
    tokenizer.no_padding()
    if raw.get("is_encoder_decoder"):
        raise ModelLoadError(
            f"{directory} is a transformers encoder-decoder ({raw.get('model_type')}); only encoders and "
            "decoder-only models are read through transformers"
        )
    try:
        model = AutoModel.from_pretrained(directory, attn_implementation="eager", trust_remote_code=False)
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as err:
        raise ModelLoadError(f"transformers cannot load {directory}: {err}") from err
    model = model.float().eval().to(device)
    config = model.config
    special = {token.content for token in tokenizer.get_added_tokens_decoder().values() if token.special}
    loaded = HFModel(
        model=model,
        tokenizer=tokenizer,
        config=HFConfig(
            model_type=str(raw.get("model_type")),
            max_position_embeddings=_limit(raw, directory),
            n_layers=int(getattr(config, "num_hidden_layers", 0) or 0),
            n_heads=int(getattr(config, "num_attention_heads", 0) or 0),
        ),
        name=str(raw.get("_name_or_path") or directory.name),
        device=device,
        causal=is_causal(raw),
        special_tokens=special,
    )
    loaded.run(loaded.encode("a").ids or [0])  # a model without attention maps is refused here, not on a page
    return loaded
