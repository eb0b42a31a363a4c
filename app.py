"""Attention Lab: the Streamlit entry point (`streamlit run app.py`).

Pages live in app_pages/ and stay thin: widgets in, calls to models/ and viz/, figures out. The folder is
not called pages/ because Streamlit serves a pages/ folder on its own, and a deep link would then bypass
this navigation (and the device picker).
"""

import os

# Before torch loads OpenMP: its idle workers then sleep at once instead of spinning for about 300,000
# rounds after every parallel region, CPU that the other sessions' scripts and the browsers' cores lose
# (README, Running it for a group: a 13-token MiniLM forward took 0.2-0.5 s of CPU on the loaded 2-core VM,
# 12-19 ms with this). Set OMP_WAIT_POLICY in the environment to choose otherwise.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import logging

import streamlit as st

from models.device import available_devices, default_device
from ui.sessions import drop_work_of_gone_sessions
from ui.share import open_view_picker

PAGES = [
    st.Page("app_pages/text_attention.py", title="Text attention", icon=":material/translate:", default=True),
    st.Page("app_pages/step_by_step.py", title="Step by step", icon=":material/calculate:"),
    st.Page("app_pages/causal_decoder.py", title="Causal decoder", icon=":material/arrow_forward:"),
    st.Page("app_pages/encoder_decoder.py", title="Encoder–decoder", icon=":material/sync_alt:"),
    st.Page("app_pages/rollout_flow.py", title="Rollout, flow and value norms", icon=":material/hub:"),
    st.Page("app_pages/relevance_ablation.py", title="Relevance and head importance", icon=":material/bolt:"),
    st.Page("app_pages/positional.py", title="Positional encodings", icon=":material/pin_drop:"),
    st.Page("app_pages/receptive_fields.py", title="Receptive fields", icon=":material/center_focus_strong:"),
    st.Page("app_pages/detr.py", title="DETR", icon=":material/image_search:"),
    st.Page("app_pages/compare.py", title="Compare", icon=":material/compare:"),
]


def device_picker() -> str:
    """Sidebar choice of torch device, defaulting to CUDA, then MPS, then CPU (or $ATTN_DEVICE)."""
    try:
        default = default_device()
    except ValueError as err:
        st.sidebar.warning(str(err))
        default = available_devices()[0]
    devices = available_devices()
    st.session_state.setdefault("device", default)
    return st.sidebar.selectbox(
        "Device",
        devices,
        key="device",
        persist_state="session",
        help="Override with the ATTN_DEVICE variable.",
    )


st.set_page_config(page_title="Attention Lab", page_icon="🔍", layout="wide")
drop_work_of_gone_sessions()  # a closed tab's forward stops between layers
device_picker()
try:
    navigation = st.navigation(PAGES)
    open_view_picker()  # a view config (.json) switches to its page with its state
    navigation.run()
except Exception as err:  # the last line of defence: pages report the errors they expect themselves
    logging.getLogger("attention_lab").exception("a page failed")
    st.error(
        f"This view stopped on an unexpected error ({type(err).__name__}: {err}). "
        "Change the input or the settings and try again; the other pages keep working."
    )
