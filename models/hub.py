"""Models by name: Hugging Face repo ids and the official DETR checkpoints, fetched only when asked, into
the standard caches, and found there afterwards without the network.

    from models import hub
    hub.is_name("Qwen/Qwen2.5-0.5B")   # True: shaped like a repo id (or a DETR name), not a local path
    hub.cached("gpt2")                 # the snapshot directory if it is complete in the cache, else None
    plan = hub.plan("gpt2")            # the files to fetch and their sizes (asks the Hub; never offline)
    hub.download("gpt2", "cpu", progress=lambda done, total: ...)   # -> the snapshot directory

- A Hugging Face name (`org/name` or a legacy `name`, with an optional revision) is fetched with
  `huggingface_hub.snapshot_download` into the Hugging Face cache (`HF_HOME`, `HF_HUB_CACHE`), limited to
  config, tokenizer and safetensors files; `pytorch_model.bin` only when the repo has no safetensors (the
  loaders read it with `weights_only=True`). `HF_ENDPOINT`, `HF_HOME` and `HF_HUB_OFFLINE` are read at
  each call. huggingface_hub writes each file to `.incomplete` and links it into the snapshot only when
  its size is right, and `cached` also checks that the snapshot holds weights, so an interrupted fetch is
  never loaded.
- An official DETR name (`detr-r50`, `detr-r101`, `detr-r50-dc5`, `detr-r101-dc5`) is fetched from the URL
  of facebookresearch/detr's hubconf.py into torch's hub cache (`TORCH_HOME`), as `torch.hub` does: into a
  temporary file, checked against the sha256 prefix in the file name, moved into place only when
  complete and right (written here rather than by `torch.hub.download_url_to_file` to report progress).
- Before the weights are fetched, their size is checked against the free disk and the chosen device's
  memory (twice the size for bf16/fp16 weights on the CPU, which the loaders upcast to float32).
Every failure is a `ModelLoadError` whose message says what to do; `NotDownloaded` is the one a page
answers with a download button.
"""

import errno
import hashlib
import http.client
import json
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from models.errors import ModelLoadError

__all__ = [
    "DETR_URLS",
    "NotDownloaded",
    "Plan",
    "cached",
    "download",
    "is_name",
    "plan",
]

DETR_URLS = {  # facebookresearch/detr hubconf.py; the hex before .pth is the sha256 prefix torch.hub checks
    "detr-r50": "https://dl.fbaipublicfiles.com/detr/detr-r50-e632da11.pth",
    "detr-r101": "https://dl.fbaipublicfiles.com/detr/detr-r101-2c7b67e5.pth",
    "detr-r50-dc5": "https://dl.fbaipublicfiles.com/detr/detr-r50-dc5-f0fb7ef5.pth",
    "detr-r101-dc5": "https://dl.fbaipublicfiles.com/detr/detr-r101-dc5-a2e86def.pth",
}
SMALL_FILES = [  # everything but the weights that a loader may read
    "config.json",
    "generation_config.json",
    "preprocessor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
]
SAFETENSORS = ["model.safetensors", "model-*-of-*.safetensors", "model.safetensors.index.json"]
PICKLE = "pytorch_model.bin"
HALF = ("float16", "bfloat16")
REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")
LOCAL_PATH_HINT = (
    "To use files you already have, give the path of a local directory (config.json, weights, "
    "tokenizer) or, for DETR, of a .pth file instead of a name."
)

Progress = Callable[[int, int | None], None]  # (bytes done, bytes in all or None)


class NotDownloaded(ModelLoadError):
    """A model name whose files are not in the cache yet: fetch them with `download` (the page's button)."""


@dataclass(frozen=True)
class Plan:
    """What `download` would fetch for a name: the files, their sizes, and where they go."""

    name: str
    revision: str | None
    files: dict[str, int]  # file name -> bytes
    weights: int  # bytes of the weight files among them
    destination: str  # the cache directory

    @property
    def total(self) -> int:
        return sum(self.files.values())


def is_name(text: str) -> bool:
    """A model name rather than a local path: a DETR name, or shaped like a repo id and not on disk."""
    text = text.strip()
    if text in DETR_URLS:
        return True
    if not text or text.startswith(("/", "~", ".")) or Path(text).expanduser().exists():
        return False
    return REPO_ID.fullmatch(text) is not None and ".." not in text


def offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE), read now rather than when huggingface_hub was imported."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().upper() in ("1", "ON", "YES", "TRUE")


def hf_cache() -> Path:
    """The Hugging Face hub cache: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "huggingface"
    return Path(home).expanduser() / "hub"


def detr_file(name: str) -> Path:
    """Where torch.hub keeps an official DETR checkpoint: $TORCH_HOME/hub/checkpoints/<file name>."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(DETR_URLS[name]).name


def cached(name: str, revision: str | None = None) -> Path | None:
    """The local directory (or DETR file) of a name fetched before, complete; None if there is none. Never
    uses the network."""
    if name in DETR_URLS:
        path = detr_file(name)
        return path if path.is_file() else None
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        folder = snapshot_download(
            name,
            revision=revision,
            cache_dir=hf_cache(),
            local_files_only=True,
            allow_patterns=SMALL_FILES + SAFETENSORS,
        )
    except (LocalEntryNotFoundError, HFValidationError, OSError):
        return None
    folder = Path(folder)
    has_weights = any((folder / f).is_file() for f in ("model.safetensors", SAFETENSORS[2], PICKLE))
    return folder if has_weights and (folder / "config.json").is_file() else None


def plan(name: str, revision: str | None = None) -> Plan:
    """The files `download` would fetch and their sizes, from the Hub's listing (or the URL's headers)."""
    if offline():
        raise NotDownloaded(
            f"{name} is not in the cache ({_where(name)}) and HF_HUB_OFFLINE is set, so nothing is fetched. "
            f"Unset HF_HUB_OFFLINE to download it, or copy the files here. {LOCAL_PATH_HINT}"
        )
    if name in DETR_URLS:
        size = _url_size(DETR_URLS[name])
        return Plan(name, None, {Path(DETR_URLS[name]).name: size}, size, str(detr_file(name).parent))
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile
    from huggingface_hub.utils import filter_repo_objects

    api = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None)
    with _hub_errors(name, revision):
        listing = {
            f.path: f.size for f in api.list_repo_tree(name, revision=revision) if isinstance(f, RepoFile)
        }
    files = {
        f: listing[f]
        for f in filter_repo_objects(listing, allow_patterns=SMALL_FILES + SAFETENSORS + [PICKLE])
    }
    if any(f.endswith(".safetensors") for f in files):
        files.pop(PICKLE, None)
    if "config.json" not in files:
        raise ModelLoadError(
            f"{name} has no config.json, so it is not a transformers model this app can read. "
            + LOCAL_PATH_HINT
        )
    if not any(f.endswith(".safetensors") or f == PICKLE for f in files):
        raise ModelLoadError(
            f"{name} has neither safetensors weights nor {PICKLE} (only other formats, such as TensorFlow, "
            f"ONNX or GGUF). {LOCAL_PATH_HINT}"
        )
    weights = sum(size for f, size in files.items() if f not in SMALL_FILES)
    return Plan(name, revision, files, weights, str(hf_cache()))


def download(
    name: str, device: str = "cpu", revision: str | None = None, progress: Progress | None = None
) -> Path:
    """Fetch a name's files (see `plan`) after checking disk and memory; -> its directory (or DETR file)."""
    wanted = plan(name, revision)
    if name in DETR_URLS:
        check_disk(wanted, detr_file(name).parent)
        check_memory(wanted, device, dtype=None)
        return _fetch_detr(name, wanted.total, progress)
    from huggingface_hub import snapshot_download

    small = [f for f in wanted.files if f in SMALL_FILES]
    endpoint = os.environ.get("HF_ENDPOINT") or None
    check_disk(wanted, hf_cache())
    with _hub_errors(name, revision):
        folder = snapshot_download(
            name, revision=revision, cache_dir=hf_cache(), allow_patterns=small, endpoint=endpoint
        )
        check_memory(wanted, device, dtype=_config_dtype(Path(folder)))
        folder = snapshot_download(
            name,
            revision=revision,
            cache_dir=hf_cache(),
            allow_patterns=list(wanted.files),
            endpoint=endpoint,
            tqdm_class=_reporting(progress, wanted.weights) if progress else None,
        )
    found = cached(name, revision)
    if found is None:
        raise ModelLoadError(f"{name}: the download ended without a complete snapshot in {folder}; try again")
    return found


def check_disk(wanted: Plan, directory: Path) -> None:
    """Refuse, before fetching anything, when the files would not fit on the disk."""
    directory.mkdir(parents=True, exist_ok=True)
    free_disk = shutil.disk_usage(directory).free
    if wanted.total > free_disk:
        raise ModelLoadError(
            f"{wanted.name} needs {_mb(wanted.total)} on disk and {directory} has {_mb(free_disk)} free. "
            "Free some space, or point HF_HOME (Hugging Face) or TORCH_HOME (DETR) at a larger disk."
        )


def check_memory(wanted: Plan, device: str, dtype: str | None) -> None:
    """Refuse, before fetching the weights, when they would not fit in the device's memory (twice their
    size for bf16/fp16 weights on the CPU, which the loaders upcast to float32)."""
    from models.validate import MEMORY_ENV, available_bytes

    upcast = dtype in HALF and torch.device(device).type == "cpu"
    need = wanted.weights * (2 if upcast else 1)
    free = available_bytes(device)
    if need > free:
        why = f" ({dtype} weights are loaded as float32 on the CPU)" if upcast else ""
        raise ModelLoadError(
            f"{wanted.name} needs about {_mb(need)} of {device} memory{why} and {_mb(free)} is free; "
            f"choose a smaller model or another device ({MEMORY_ENV} sets the limit)."
        )


def _config_dtype(folder: Path) -> str | None:
    try:
        raw = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return (raw.get("dtype") or raw.get("torch_dtype")) if isinstance(raw, dict) else None


def _mb(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


def _where(name: str) -> str:
    return str(detr_file(name).parent) if name in DETR_URLS else str(hf_cache())


def _reporting(progress: Progress, total: int):
    """A tqdm class that reports the bytes huggingface_hub writes to `progress` and prints nothing. A plain
    tqdm subclass, so that huggingface_hub does not disable it by log level or terminal."""
    from tqdm import tqdm

    class Silent:
        def write(self, text):
            pass

        def flush(self):
            pass

    class Reporting(tqdm):
        def __init__(self, *args, **kwargs):
            self.counts_bytes = kwargs.get("unit") == "B" and "Reconstruct" in str(kwargs.get("desc", ""))
            super().__init__(*args, **{**kwargs, "file": Silent(), "disable": False})

        def update(self, n=1):
            shown = super().update(n)
            if self.counts_bytes:
                progress(min(int(self.n), total), total)
            return shown

    return Reporting


class _hub_errors:
    """Turns huggingface_hub's and the network's exceptions into a ModelLoadError saying what to do."""

    def __init__(self, name: str, revision: str | None):
        self.name, self.revision = name, revision

    def __enter__(self):
        return self

    def __exit__(self, kind, err, tb):
        if err is None or isinstance(err, ModelLoadError) or not isinstance(err, Exception):
            return False
        raise _explain(self.name, self.revision, err) from err


def _explain(name: str, revision: str | None, err: Exception) -> ModelLoadError:
    from huggingface_hub.errors import (
        DisabledRepoError,
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        return ModelLoadError(
            f"the disk filled while downloading {name} into {hf_cache()}; the partial file is not used. "
            "Free some space, or point HF_HOME at a larger disk, and download again."
        )
    if isinstance(err, GatedRepoError):
        return ModelLoadError(
            f"{name} is gated: accept its conditions on huggingface.co and log in (`hf auth login`) or set "
            f"HF_TOKEN, then download again. {LOCAL_PATH_HINT}"
        )
    if isinstance(err, RevisionNotFoundError):
        return ModelLoadError(
            f"{name} has no revision {revision!r}: give a branch, tag or commit of the repo, or leave the "
            "revision empty for main."
        )
    if isinstance(err, RepositoryNotFoundError):
        return ModelLoadError(
            f"{name} is not a model on the Hugging Face Hub, or it is private (log in with `hf auth login` "
            f"or set HF_TOKEN for a private one). Check the spelling (org/name). {LOCAL_PATH_HINT}"
        )
    if isinstance(err, DisabledRepoError):
        return ModelLoadError(f"{name} has been disabled on the Hub. {LOCAL_PATH_HINT}")
    if isinstance(err, HFValidationError):
        return ModelLoadError(f"{name!r} is not a valid Hugging Face name (org/name): {err}")
    if isinstance(err, (OfflineModeIsEnabled, LocalEntryNotFoundError)):
        return NotDownloaded(
            f"{name} is not in the cache ({hf_cache()}) and the Hub cannot be reached. Connect to download "
            f"it. {LOCAL_PATH_HINT}"
        )
    if any(c.__name__ == "TransportError" for c in type(err).__mro__):  # httpx: no connection, a timeout
        return ModelLoadError(
            f"the Hugging Face Hub cannot be reached ({type(err).__name__}: {err}), so {name} cannot be "
            f"fetched. Connect and try again, or set HF_HUB_OFFLINE=1 to stop trying. {LOCAL_PATH_HINT}"
        )
    if isinstance(err, HfHubHTTPError):
        return ModelLoadError(
            f"the Hub answered an error for {name}: {err}. Try again later. {LOCAL_PATH_HINT}"
        )
    if isinstance(err, OSError):
        return ModelLoadError(
            f"{name} could not be downloaded ({err}); nothing partial was kept. Check the connection and try "
            f"again. {LOCAL_PATH_HINT}"
        )
    return ModelLoadError(f"{name} could not be downloaded ({type(err).__name__}: {err}). {LOCAL_PATH_HINT}")


def _url_size(url: str) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=30) as response:
            return int(response.headers.get("Content-Length") or 0)
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise ModelLoadError(f"{url} cannot be reached ({err}). {LOCAL_PATH_HINT}") from err


def _fetch_detr(name: str, total: int, progress: Progress | None) -> Path:
    """The official file, downloaded as torch.hub does: a temporary file in the cache directory, renamed
    only when it has every byte and its sha256 starts with the prefix in its name."""
    url, dest = DETR_URLS[name], detr_file(name)
    prefix = torch.hub.HASH_REGEX.search(dest.name).group(1)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent)
    done, sha = 0, hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or total or 0)
            while chunk := response.read(1 << 20):
                out.write(chunk)
                sha.update(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total or None)
        if total and done != total:
            raise ModelLoadError(
                f"the download of {name} was interrupted after {_mb(done)} of {_mb(total)}; nothing was "
                "kept. Download it again."
            )
        if not sha.hexdigest().startswith(prefix):
            raise ModelLoadError(
                f"{dest.name} from {url} has sha256 {sha.hexdigest()[:12]}…, not the {prefix} its name "
                "promises: the file is corrupt or not the official one, and was deleted. Download it again."
            )
        os.replace(tmp, dest)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        raise _explain_url(name, url, err) from err
    finally:
        Path(tmp).unlink(missing_ok=True)
    return dest


def _explain_url(name: str, url: str, err: Exception) -> ModelLoadError:
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        return ModelLoadError(
            f"the disk filled while downloading {name} into {detr_file(name).parent}; nothing was kept. "
            "Free some space, or point TORCH_HOME at a larger disk, and download again."
        )
    return ModelLoadError(
        f"{name} could not be downloaded from {url} ({err}); nothing was kept. Check the connection and "
        f"try again. {LOCAL_PATH_HINT}"
    )


def main() -> None:
    """python -m models.hub NAME [REVISION]: fetch a model for later offline use, with its size first."""
    import sys

    if len(sys.argv) not in (2, 3):
        raise SystemExit("usage: python -m models.hub NAME [REVISION]")
    name, revision = sys.argv[1], (sys.argv[2] if len(sys.argv) == 3 else None)
    try:
        found = cached(name, revision)
        if found is None:
            print(f"{name}: {_mb(plan(name, revision).total)} to download")
            found = download(name, revision=revision, progress=lambda done, total: None)
    except ModelLoadError as err:
        raise SystemExit(str(err)) from err
    print(found)


if __name__ == "__main__":
    main()
