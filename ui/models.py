"""Models loaded once per process and shared by every page: st.cache_resource over `models.registry`.

Pass `kind` at every call for a given model, so that pages asking for the same model share one entry.
"""

import tempfile
from pathlib import Path

import streamlit as st

from models.bert import TextModel
from models.registry import load_model


@st.cache_resource(max_entries=8, show_spinner="Loading the model…")
def get_model(name_or_path: str, device: str, kind: str | None = None, revision: str | None = None):
    """An embedded model by name, a local directory or file, or a name fetched before into the cache (see
    `models.registry.load_model`; `ui.hub.named_model` offers the download of one that is not)."""
    return load_model(name_or_path, device=device, kind=kind, revision=revision)


@st.cache_resource(max_entries=2, show_spinner="Loading the checkpoint…")
def get_uploaded_model(sha256: str, _data: bytes, suffix: str, device: str, kind: str | None = None):
    """Uploaded checkpoint bytes, cached by their sha256 (the bytes themselves are not hashed), loaded
    from a temporary `checkpoint{suffix}` file, whose suffix tells the registry the format."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"checkpoint{suffix}"
        path.write_bytes(_data)
        return load_model(str(path), device=device, kind=kind)


def get_text_model(path: str = "", device: str = "cpu") -> TextModel:
    """The text attention page's loader until it calls get_model: the embedded MiniLM when `path` is empty."""
    return get_model(path or "all-MiniLM-L6-v2", device, kind="encoder")
