"""The model field of the pages: a Hugging Face name, an official DETR name or a local path, an optional
revision, a few suggested names, and the download of a name that is not in the cache yet.

    name, revision = model_field("model_path", SUGGESTIONS["encoder"])
    model = named_model(name, revision, kind="encoder")    # None after a message or a download offer

Nothing touches the network until the user types a name that is not cached: then the Hub (or the DETR
server) is asked for the size, shown with a Download button, and the files are fetched only on its click,
with a progress bar. A rerun, or a test, never starts a download.
"""

import threading

import streamlit as st
from streamlit.runtime.scriptrunner import add_script_run_ctx, get_script_run_ctx

from models import hub
from models.errors import ModelLoadError
from ui.models import get_model
from ui.widgets import device

SUGGESTIONS = {  # family -> names to offer; the first is the placeholder
    "encoder": [
        "bert-base-multilingual-cased",
        "bert-base-chinese",
        "sentence-transformers/all-MiniLM-L12-v2",
        "sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2",
    ],
    "llama": ["HuggingFaceTB/SmolLM2-135M", "Qwen/Qwen2.5-0.5B", "TinyLlama/TinyLlama-1.1B-Chat-v1.0"],
    "text": ["gpt2", "distilgpt2", "bert-base-multilingual-cased", "bert-base-chinese"],  # GPT-2 and BERT
    "detr": ["detr-r50", "detr-r101", "detr-r50-dc5", "detr-r101-dc5", "facebook/detr-resnet-50"],
}
MULTILINGUAL = "bert-base-multilingual-cased"


def model_field(key: str, suggestions: list[str], label: str = "Hugging Face name or local path"):
    """-> (name or path, revision or None): a text input (session key `key`), a revision under it, and
    the suggestions as pills that fill the input."""

    def fill() -> None:
        picked = st.session_state.get(f"{key}_pick")
        if picked:
            st.session_state[key] = picked

    name = st.text_input(label, key=key, placeholder=suggestions[0] if suggestions else "")
    revision = st.text_input(
        "Revision (optional)", key=f"{key}_revision", placeholder="main", help="A branch, tag or commit."
    )
    if suggestions:
        st.pills("Suggestions", suggestions, key=f"{key}_pick", on_change=fill)
    return name.strip(), revision.strip() or None


def named_model(name_or_path: str, revision: str | None, kind: str, what: str = "the model"):
    """The model through `ui.models.get_model`, or None after an error or a download offer."""
    try:
        return get_model(name_or_path, device(), kind=kind, revision=revision)
    except hub.NotDownloaded:
        offer_download(name_or_path, revision)
    except ModelLoadError as err:
        st.error(f"Cannot load {what} {name_or_path}: {err}")
    return None


def ask_for(key: str, name: str) -> None:
    """on_click of a button that offers a model by name: put the name in the field `key` and download it
    at once if it is not cached (the click is the user's request)."""
    st.session_state[key] = name
    st.session_state[f"{key}_revision"] = ""
    if hub.cached(name) is None:
        st.session_state.hub_download_now = name


@st.cache_data(ttl=300, max_entries=64, show_spinner="Asking for the size…")
def plan_of(name: str, revision: str | None) -> hub.Plan | str:
    """The name's download plan, or the message saying why there is none: kept either way for a few
    minutes, so that a rerun does not ask the Hub again (and wait for its retries when it is unreachable)."""
    try:
        return hub.plan(name, revision)
    except ModelLoadError as err:
        return str(err)


def offer_download(name: str, revision: str | None) -> None:
    """The size of a name that is not in the cache, and a button that downloads it."""
    plan = plan_of(name, revision)
    if isinstance(plan, str):
        st.error(plan)
        return
    at = f" at revision {revision}" if revision else ""
    st.info(
        f"**{name}**{at} is not downloaded yet: {len(plan.files)} files, {size(plan.total)}, into "
        f"`{plan.destination}`. Afterwards it loads from there without the network."
    )
    asked = st.session_state.pop("hub_download_now", None) == name
    label = f"Download {name} ({size(plan.total)})"
    if st.button(label, key=f"download_{name}_{revision}", type="primary") or asked:
        download(name, revision)


def download(name: str, revision: str | None) -> None:
    """Fetch `name` with a progress bar; rerun the page when it is in the cache."""
    bar = st.progress(0.0, text=f"Downloading {name}…")
    context = get_script_run_ctx()

    def report(done: int, total: int | None) -> None:
        # huggingface_hub calls this from its download threads, which need the page's context to draw
        add_script_run_ctx(threading.current_thread(), context)
        if total:
            bar.progress(min(done / total, 1.0), text=f"Downloading {name}: {size(done)} of {size(total)}")

    try:
        hub.download(name, device(), revision=revision, progress=report)
    except ModelLoadError as err:
        bar.empty()
        st.error(str(err))
        return
    bar.progress(1.0, text=f"{name} downloaded.")
    st.rerun()


def size(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"
