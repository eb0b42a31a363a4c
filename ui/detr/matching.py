"""On generated scenes: the Hungarian matching of the predictions with the ground truth (S19)."""

import pandas as pd
import streamlit as st

from models.detr.api import DetrResult
from models.detr.inspect import match_ground_truth
from models.detr.scenes import SHAPE_CLASSES
from ui.export import chart
from viz.detr import Background, matching_heatmap, matching_scene

COSTS = {  # figure key -> (title, field of inspect.Matching)
    "dp_match_class": ("class (−1·p)", "cls"),
    "dp_match_l1": ("L1 (5·‖b−b̂‖₁)", "bbox"),
    "dp_match_giou": ("GIoU (−2·GIoU)", "giou"),
    "dp_match_sum": ("sum", "total"),
}


def matching_section(result: DetrResult, bg: Background, scene) -> None:
    if scene is None:
        st.info("The matching needs ground truth: choose a generated scene.")
        return
    if list(result.class_names) != list(SHAPE_CLASSES):
        st.info(
            f"The matching needs a model of the scene's classes {SHAPE_CLASSES}; this one has other classes."
        )
        return
    st.caption(
        "Training matches the N predictions one to one with the M ground-truth objects by the Hungarian "
        "algorithm on cost = 1·class + 5·L1 + 2·GIoU; every unmatched query is trained towards “no object” "
        "(S19). Outlined cells mark the assignment, computed here from the last decoder layer."
    )
    m = match_ground_truth(result, scene.boxes, scene.labels)
    n = m.total.shape[0]
    gt_names = [f"{j}: {SHAPE_CLASSES[c]}" for j, c in enumerate(scene.labels)]
    query_names = [f"query {q}" for q in range(n)]
    for column, (key, (title, field)) in zip(st.columns(len(COSTS)), COSTS.items()):
        chart(
            matching_heatmap(getattr(m, field), m.pred, m.gt, query_names, gt_names, title=title),
            key=key,
            where=column,
        )
    left, right = st.columns([3, 2])
    chart(
        matching_scene(
            bg,
            scene.boxes,
            gt_names,
            result.layer_boxes[-1],
            m.pred,
            m.gt,
            title="Ground truth (dashed) and the matched queries",
        ),
        key="dp_match_scene",
        where=left,
    )
    unmatched = sorted(set(range(n)) - {int(q) for q in m.pred})
    right.dataframe(
        pd.DataFrame(
            {"query": m.pred, "ground truth": [gt_names[j] for j in m.gt], "cost": m.total[m.pred, m.gt]}
        ),
        hide_index=True,
    )
    right.markdown(f"**“no object”** ({len(unmatched)} queries): " + ", ".join(map(str, unmatched)))
