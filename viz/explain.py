"""Figures of the explanation methods (rollout, flow, value norms): one output token's row over the input
tokens, drawn by the heatmap core."""

import numpy as np
import plotly.graph_objects as go

from viz.heatmap import heatmap, index_labels

PRINTED_TOKENS = 32  # up to this many tokens a strip prints its values on the cells


def token_strip(
    values: np.ndarray,
    labels: list[str],
    name: str,
    title: str = "",
    mask: np.ndarray | None = None,
    colorscale: str = "Viridis",
) -> go.Figure:
    """values (N,) over N input tokens -> a one-row heatmap named `name`; mask (N,) False = drawn grey."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"a strip takes one row of values, got shape {values.shape}")
    return heatmap(
        values[None, :], [name], index_labels(labels), title=title, col_title="input token",
        mask=None if mask is None else np.asarray(mask, dtype=bool)[None, :], colorscale=colorscale,
        zmin=0.0, value_name=name, decimals=2 if len(values) <= PRINTED_TOKENS else None, height=190,
    )  # fmt: skip
