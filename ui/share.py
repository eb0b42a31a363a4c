"""A view as a link and as a file.

Links: the controls of a view are widgets bound to the URL (`bind="query-params"`: Streamlit writes each
change into the address and seeds the widget from it when a link is opened); the input text, which no widget
binds because it may be long, goes into the URL here: as ?text= up to URL_TEXT_LIMIT characters, else as
?digest= (a hash: whoever opens the link is asked to paste the text, and the view appears when it matches).

Files: a view config (viz.export.config_json) names the page and the session state that draws the view;
`open_view_picker` (in the sidebar) reads one, writes that state and switches to the page.
"""

import hashlib
from urllib.parse import urlparse

import streamlit as st

from viz.export import read_config

URL_TEXT_LIMIT = 2000  # characters of input text carried in a link; longer texts go by digest
PAGES = "app_pages/{}.py"
DEFAULT_PAGE = "text_attention"  # the page served at "/"


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def seed_text(state_key: str) -> None:
    """On the page's first run in a session: the link's ?text= into the text box's state; a ?digest= is
    remembered, for `share_text` to ask for the text."""
    text, wanted = url_once("text"), url_once("digest")
    if text is not None:
        st.session_state[state_key] = text
    elif wanted:
        st.session_state[f"{state_key}__wanted"] = wanted


def share_text(state_key: str, text: str, default: str) -> None:
    """Write the text into the URL (nothing for the default text), or its digest when it is longer than
    URL_TEXT_LIMIT; while a link's digest names a text that is not here, keep it and ask for the text."""
    wanted = st.session_state.get(f"{state_key}__wanted")
    if wanted and text_digest(text) != wanted and text == default:
        st.warning(
            f"This link names its text by digest ({wanted}): the text was too long to travel in a link. "
            "Paste the same text above (or upload it) to see the shared view."
        )
        return
    st.session_state.pop(f"{state_key}__wanted", None)
    short = len(text) <= URL_TEXT_LIMIT
    share_param("text", text if short and text != default else None)
    share_param("digest", None if short else text_digest(text))
    if not short:
        st.caption(
            f"The text has {len(text):,} characters, more than a link carries ({URL_TEXT_LIMIT:,}): the link "
            "names it by digest, and whoever opens it is asked to paste the text."
        )


def view_state(*keys: str) -> dict:
    """The session state of the named keys that exist: what a view config restores."""
    return {key: st.session_state[key] for key in keys if key in st.session_state}


def current_view() -> dict:
    """The view config of a page that passes none: the page (its URL path, which is its file's name) and the
    state of its widgets bound to the URL, which is what a link carries."""
    path = urlparse(st.context.url or "").path.rstrip("/").rsplit("/", 1)[-1]
    state = {key: st.session_state[key] for key in st.query_params if key in st.session_state}
    state = {key: value for key, value in state.items() if isinstance(value, (str, int, float, bool, list))}
    return {"page": path or DEFAULT_PAGE, "state": state, "link_query": st.query_params.to_dict()}


def open_view(config: dict) -> None:
    """Write a view config's state and switch to its page (does not return)."""
    for key, value in config.get("state", {}).items():
        st.session_state[key] = value
    st.switch_page(PAGES.format(config["page"]))


def read_view_upload() -> None:
    """on_change of the view uploader: keep the config for the next run to open, and close the popover."""
    upload = st.session_state.get("view_config")
    if upload is None:
        return
    try:
        st.session_state.view_pending = read_config(upload.getvalue())
        st.session_state.view_open = False
    except ValueError as err:
        st.session_state.view_error = str(err)


def open_view_picker() -> None:
    """A sidebar popover with an uploader of a view config (.json) that opens the view it describes. The
    uploader exists only while the popover is open, so no page carries a second file input."""
    pending = st.session_state.pop("view_pending", None)
    if pending is not None:
        open_view(pending)
    menu = st.sidebar.popover("Open a view (.json)", icon=":material/file_open:", key="view_open",
                              on_change="rerun")  # fmt: skip
    if not menu.open:
        return
    menu.file_uploader(
        "View config", type=["json"], key="view_config", max_upload_size=1, on_change=read_view_upload,
        help="A view config saved from a figure's Export menu.",
    )  # fmt: skip
    if st.session_state.get("view_error"):
        menu.error(st.session_state.pop("view_error"))


def url_once(param: str) -> str | None:
    """The link's value of `param` on the page's first run in this session, else None."""
    flag = f"__from_url_{param}"
    if st.session_state.get(flag):
        return None
    st.session_state[flag] = True
    return st.query_params.get(param)


def share_param(param: str, value: str | None) -> None:
    """Write `param` into the URL, or take it out when value is None."""
    if value is None:
        if param in st.query_params:
            del st.query_params[param]
    elif st.query_params.get(param) != value:
        st.query_params[param] = value
