"""Models loaded once per process and shared by every page (st.cache_resource)."""

import streamlit as st

from models.bert import TextModel, load_bert


@st.cache_resource(max_entries=4, show_spinner="Loading the text model…")
def get_text_model(path: str = "", device: str = "cpu") -> TextModel:
    """A BERT-family encoder: the embedded all-MiniLM-L6-v2 when `path` is empty."""
    return load_bert(path or None, device=device)
