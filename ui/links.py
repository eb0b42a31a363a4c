"""Links between pages that also run on their own (AppTest.from_file, `streamlit run app_pages/x.py`)."""

import streamlit as st
from streamlit.errors import StreamlitPageNotFoundError

EXPLAIN_PAGE = "app_pages/rollout_flow.py"
EXPLAIN_TITLE = "Rollout, flow and value norms"


def page_link(path: str, label: str, icon: str | None = None) -> None:
    """st.page_link to `path` when app.py's navigation holds it, else a caption naming the page (a page run
    alone has no navigation, and st.page_link refuses a page it cannot find)."""
    try:
        st.page_link(path, label=label, icon=icon)
    except StreamlitPageNotFoundError:
        st.caption(f"{label}: open the app through app.py to follow this link.")


def explain_link() -> None:
    """The link every attention page ends with: the same model through rollout, flow and value norms."""
    page_link(EXPLAIN_PAGE, f"Beyond raw attention: {EXPLAIN_TITLE} →", ":material/hub:")
