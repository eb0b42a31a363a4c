"""Streamlit-side helpers shared by the pages (uploads, pickers). Models live in models/, figures in viz/."""
