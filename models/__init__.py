"""PyTorch models, instrumented so that every attention can be inspected. Never imports Streamlit."""
