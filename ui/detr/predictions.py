"""Every query's box after each decoder layer, decoded in parallel (S22)."""

import streamlit as st

from models.detr.api import DetrResult
from models.detr.inspect import is_object, scores_labels
from ui.detr.common import PREDICTIONS
from ui.export import chart
from viz.detr import Background, layer_predictions


@st.fragment(key=PREDICTIONS)
def layer_predictions_section(result: DetrResult, bg: Background) -> None:
    n_layers, n = result.layer_boxes.shape[:2]
    st.caption(
        "The decoder refines all N queries in parallel, and every layer's output goes through the same "
        "class and box heads (S22). Thin dotted boxes are queries predicting “no object”; lines trace each "
        f"query's box centre from layer 0. {n} queries, {n_layers} decoder layers."
    )
    layer = st.select_slider(
        "After decoder layer", range(n_layers), key="dp_pred_layer", persist_state="session"
    )
    scores, labels = scores_labels(result, layer)
    real = is_object(result, layer)
    names = [f"{result.class_names[labels[q]]} {scores[q]:.2f}" if real[q] else "no object" for q in range(n)]
    chart(
        layer_predictions(
            bg,
            result.layer_boxes,
            names,
            [int(v) for v in labels],
            real,
            layer,
            title=f"All {n} queries after decoder layer {layer}",
        ),
        key="dp_layer_predictions",
    )
