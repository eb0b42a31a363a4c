"""What the DETR sections share: fragment keys, query names, the layer x head grid."""

import numpy as np
import streamlit as st

from models.detr.api import DetrResult
from models.detr.inspect import is_object, scores_labels
from models.maps import REDUCTIONS
from ui.export import chart
from ui.widgets import MEAN
from viz.detr import Background, map_grid

# fragment keys: a callback reruns the sections a change concerns, and only those
DETECTIONS, CROSS, ENCODER = "detr_detections", "detr_cross", "detr_encoder"
PREDICTIONS, DECODER_SELF, POSITIONAL = "detr_predictions", "detr_decoder_self", "detr_positional"
MATCHING = "detr_matching"  # not a fragment: its tab reruns with the page
# the page's stateful tabs (st.session_state[TAB_KEY] is the open one's label) and the section each draws;
# only the open tab's section runs
TAB_KEY = "dp_tab"
TABS = {
    "Cross-attention": CROSS,
    "Per-layer predictions": PREDICTIONS,
    "Encoder self-attention": ENCODER,
    "Decoder self-attention": DECODER_SELF,
    "Matching (ground truth)": MATCHING,
    "Positional encoding": POSITIONAL,
}


def rerun_shown(*sections: str) -> None:
    """From a callback: rerun those of these fragments that are on screen, the sections above and below
    the tabs and the open tab's (a closed tab's section is not drawn, and draws the change when opened)."""
    open_tab = TABS.get(st.session_state.get(TAB_KEY), CROSS)
    st.rerun([s for s in sections if s not in TABS.values() or s == open_tab])


def show_query(query: int) -> None:
    """From a callback: make `query` the inspected one and redraw the two sections that show it."""
    st.session_state.dp_query = int(query)
    rerun_shown(DETECTIONS, CROSS)


def as_head(value) -> int | str:
    """A head read back from a click: an int, or one of the reductions ("mean", "max")."""
    return value if value in REDUCTIONS else int(value)


def query_names(result: DetrResult) -> list[str]:
    """ "<class or no object> <score>" for every query, after the last layer."""
    scores, labels = scores_labels(result)
    real = is_object(result)
    return [
        f"{result.class_names[labels[q]] if real[q] else 'no object'} {scores[q]:.2f}"
        for q in range(len(scores))
    ]


def query_labels(result: DetrResult) -> list[str]:
    """ "query q: <class or no object> <score>" for every query, after the last layer."""
    return [f"query {q}: {name}" for q, name in enumerate(query_names(result))]


def one_head(maps: np.ndarray, head: int | str) -> np.ndarray:
    """maps (nh, ...) of one layer -> one head's, or their mean or max over heads."""
    if head == MEAN:
        return maps.mean(0)
    return maps.max(0) if head in REDUCTIONS else maps[head]


def grid_chart(
    bg: Background,
    maps: np.ndarray,
    cell: tuple[float, float],
    opacity: float,
    title: str,
    key: str,
    point=None,
    on_select="ignore",
) -> None:
    """Every layer x head of `maps` (L, nh, h, w) plus the head mean, full width, tiles at most 150 px.
    A tile's click sends [layer, head or "mean", largest weight]."""
    n_layers, n_heads = maps.shape[:2]
    fig = map_grid(
        bg,
        np.concatenate([maps, maps.mean(1, keepdims=True)], axis=1),  # (L, nh + 1, h, w)
        [f"layer {i}" for i in range(n_layers)],
        [f"head {j}" for j in range(n_heads)] + [MEAN],
        cell,
        opacity,
        point=point,
        title=title,
        tile_width=min(150, 1000 // (n_heads + 1)),
        col_ids=[*range(n_heads), MEAN],
    )
    chart(fig, key=key, width="content", on_select=on_select, selection_mode="points")
