"""Reading the files a user points the app at: paths checked for sense, only regular files opened, sizes
bounded, every failure a `ModelLoadError` whose message says what to change.

    directory = user_path("~/models/bert")          # Path, or ModelLoadError (too long, no such user, ...)
    raw = read_json(directory / "config.json")      # a dict, read only if it is a regular file <= 16 MiB
    path = regular_file(directory / "model.safetensors", MAX_WEIGHTS_BYTES)

A FIFO would block the reader forever and `/dev/zero` never ends, so the kind of file is checked with
`os.stat` (which follows links, so a link to a device is refused too) before anything is opened, and the
size before anything is read. Every loader (config.json, tokenizer.json, vocab.txt, safetensors, .bin,
.pth, the shard index) goes through `regular_file`.
"""

import json
import os
import stat
from pathlib import Path

from models.errors import ModelLoadError

MAX_PATH_CHARS = 4096  # Linux's PATH_MAX
MAX_NAME_BYTES = 255  # one component (NAME_MAX)
MAX_CONFIG_BYTES = 16 * 2**20  # config.json and the shard index: the largest real ones are ~100 kB
MAX_TOKENIZER_BYTES = 64 * 2**20  # tokenizer.json: Llama 3's is 9 MB, Gemma's 34 MB
MAX_WEIGHTS_BYTES = 64 * 2**30  # one weights file or shard; the memory estimate bounds the model itself

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe), which could block the reader forever"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def check_text(text: str) -> str:
    """The stripped text of a path, or ModelLoadError when it cannot name a file at all: empty, longer
    than PATH_MAX or a part longer than NAME_MAX, a NUL character, or characters that are not UTF-8."""
    text = text.strip()
    if not text:
        raise ModelLoadError("no path given; type the path of a model directory or checkpoint file")
    if len(text) > MAX_PATH_CHARS:
        raise ModelLoadError(
            f"the path is {len(text):,} characters long; the limit is {MAX_PATH_CHARS:,} (PATH_MAX)"
        )
    if "\x00" in text:
        raise ModelLoadError("the path holds a NUL character, which no file name can contain")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ModelLoadError(f"the path holds bytes that are not UTF-8 (at character {err.start})") from err
    long = next((part for part in Path(text).parts if len(part.encode("utf-8")) > MAX_NAME_BYTES), None)
    if long is not None:
        raise ModelLoadError(
            f"{text[:60]}…: one part of the path is {len(long.encode('utf-8'))} bytes long; the limit is "
            f"{MAX_NAME_BYTES} (NAME_MAX)"
        )
    return text


def user_path(text: str) -> Path:
    """The path a user typed, with ~ expanded, or ModelLoadError for one that cannot name a file: see
    check_text, an unknown ~user, or nothing there."""
    text = check_text(text)
    try:
        path = Path(text).expanduser()
    except RuntimeError:  # Python 3.11 raises for ~user of an unknown user
        path = Path(text)
    if str(path).startswith("~"):
        user = path.parts[0][1:]
        raise ModelLoadError(f"{text}: there is no user {user!r} on this machine to expand ~{user} for")
    try:
        path.stat()
    except FileNotFoundError:
        raise ModelLoadError(f"{path}: no such file or directory{_nearest(path)}") from None
    except NotADirectoryError:
        raise ModelLoadError(
            f"{path}: a part of the path before the last is a file, not a directory"
        ) from None
    except OSError as err:  # permissions, a loop of links
        raise ModelLoadError(f"{path}: cannot be opened ({err.strerror})") from None
    return path


def _nearest(path: Path) -> str:
    """'; X exists' for the deepest existing parent, so that the user sees which part is missing."""
    for parent in path.absolute().parents:
        if parent.is_dir():
            return f" ({parent} exists, {path.absolute().relative_to(parent)} does not)"
    return ""


def regular_file(path: Path, max_bytes: int, what: str = "") -> Path:
    """`path` when it is a regular file (or a link to one) of at most max_bytes; ModelLoadError naming
    what it is instead (missing, a FIFO, a device, a directory) or its size and the limit."""
    name = what or path.name
    try:
        info = os.stat(path)  # follows links: a link to /dev/zero is a character device
    except FileNotFoundError:
        raise ModelLoadError(f"{path}: no such file") from None
    except OSError as err:
        raise ModelLoadError(f"{path}: cannot be opened ({err.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        kind = next((text for test, text in _KINDS if test(info.st_mode)), "not a regular file")
        raise ModelLoadError(f"{path} ({name}) is {kind}; it must be a regular file")
    if info.st_size > max_bytes:
        raise ModelLoadError(
            f"{path} ({name}) is {info.st_size:,} bytes; the limit for it is {max_bytes:,} bytes"
        )
    return path


def read_bytes(path: Path, max_bytes: int, what: str = "") -> bytes:
    """The bytes of a regular file of at most max_bytes (reading stops past max_bytes, whatever stat said)."""
    regular_file(path, max_bytes, what)
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as err:
        raise ModelLoadError(f"{path}: cannot be read ({err.strerror})") from None
    if len(data) > max_bytes:
        raise ModelLoadError(f"{path} grew past the limit of {max_bytes:,} bytes while it was read")
    return data


def read_json(path: Path, max_bytes: int = MAX_CONFIG_BYTES):
    """The parsed JSON of a regular UTF-8 file of at most max_bytes, or ModelLoadError saying why not."""
    data = read_bytes(path, max_bytes)
    try:
        return json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as err:
        raise ModelLoadError(f"{path} is not UTF-8 text (byte {err.start})") from err
    except json.JSONDecodeError as err:
        raise ModelLoadError(f"{path} is not valid JSON ({err})") from err
    except RecursionError as err:
        raise ModelLoadError(f"{path} nests its JSON too deeply to be a config") from err


def read_json_object(path: Path, max_bytes: int = MAX_CONFIG_BYTES) -> dict:
    """read_json, refusing anything but a JSON object."""
    raw = read_json(path, max_bytes)
    if not isinstance(raw, dict):
        raise ModelLoadError(f"{path} holds a {type(raw).__name__}, not a JSON object")
    return raw
