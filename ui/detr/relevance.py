"""For one detection: where in the image its output comes from (Chefer et al. 2021's gradient relevance)
beside its raw cross-attention, and what knocking heads out does to the detections (Michel et al. 2019).

Nothing runs until the section is switched on. The backbone then runs once per image (its features are
kept); each relevance, ablation and importance table reruns only the transformer, once per choice."""

from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st
import torch

from models.detr.api import Detector, DetrResult
from models.detr.box_ops import box_cxcywh_to_xyxy
from models.detr.inspect import cell_extent, detections, scores_labels, share_inside_box
from models.explain.ablation import DetrProbe, ablate, importance
from models.explain.inputs import DetrFeatures, detr_features
from models.explain.relevance import DETR_TARGETS, detr_relevance
from ui.detr.common import query_labels
from ui.explain import (
    ABLATION_EXPLANATION,
    FAMILY_NAMES,
    FILLS,
    RELEVANCE_EXPLANATION,
    heads_picker,
    importance_view,
)
from ui.export import chart
from ui.results import computed, digest
from viz.detr import Background, attention_overlay, detections_figure

RELEVANCE = "detr_relevance"  # this section's fragment key
TARGET_NAMES = {"class": "class score (logit)", "cx": "box centre x", "cy": "box centre y", "w": "box width",
                "h": "box height"}  # fmt: skip


@dataclass
class Predictions:
    """DETR's last-layer predictions after an ablation, as `DetrResult` holds them."""

    probs: np.ndarray  # (N, K + 1) softmax; last column "no object"
    boxes: np.ndarray  # (N, 4) xyxy in pixels of the image

    @property
    def nbytes(self) -> int:
        return self.probs.nbytes + self.boxes.nbytes


def features_of(detector: Detector, model_key: tuple, image_key: str, image) -> DetrFeatures:
    key = digest("detr_features", model_key, id(detector.model), image_key)
    return computed(key, lambda: detr_features(detector, image), spinner="Running the backbone once…")


def ablated_predictions(detector: Detector, features: DetrFeatures, heads: list, fill: str,
                        image_size: tuple[int, int]) -> Predictions:  # fmt: skip
    run = ablate(DetrProbe(detector.model, features, query=0), heads, fill)
    logits, boxes = run.output
    H, W = image_size
    scale = torch.tensor([W, H, W, H], dtype=torch.float32, device=boxes.device)
    xyxy = box_cxcywh_to_xyxy(boxes[0].float()) * scale
    return Predictions(logits[0].float().softmax(-1).cpu().numpy(), xyxy.cpu().numpy())


def pick_query(result: DetrResult, result_key: tuple) -> None:
    """A new result: start on the query the page inspects."""
    if st.session_state.get("dp_rel_for") != result_key:
        st.session_state.dp_rel_for = result_key
        st.session_state.dp_rel_query = int(st.session_state.get("dp_query", 0))


@st.fragment(key=RELEVANCE)
def relevance_section(detector: Detector, model_key: tuple, image_key: str, image, result: DetrResult,
                      bg: Background) -> None:  # fmt: skip
    st.subheader("Relevance and head ablation")
    st.caption(
        "Which image positions a detection's output depends on (gradient relevance, Chefer et al. 2021), "
        "and which heads it needs (ablation, Michel et al. 2019)."
    )
    if not st.toggle("Explain a detection (reruns the transformer with gradients)", key="dp_rel_on"):
        return
    with st.expander("What this shows"):
        st.markdown(RELEVANCE_EXPLANATION + ABLATION_EXPLANATION)
    features = features_of(detector, model_key, image_key, image)
    pick_query(result, (model_key, image_key))
    labels = query_labels(result)
    c1, c2 = st.columns(2)
    query = c1.selectbox("Detection to explain", range(len(labels)), key="dp_rel_query",
                         format_func=labels.__getitem__)  # fmt: skip
    target = c2.selectbox(
        "Output to explain", DETR_TARGETS, key="dp_rel_target", format_func=TARGET_NAMES.get
    )
    key = digest("detr_relevance", model_key, id(detector.model), image_key, query, target)
    rel = computed(key, lambda: detr_relevance(detector.model, features, query, target),
                   spinner="One pass of the transformer forward and back…")  # fmt: skip
    cell, box = cell_extent(result), result.layer_boxes[-1, query]
    opacity = st.session_state.get("dp_opacity", 0.6)
    maps = {
        f"Relevance for the {TARGET_NAMES[target]}": (rel.relevance, "dp_rel_map"),
        "Raw cross-attention, last layer, mean over heads": (rel.raw, "dp_rel_raw"),
    }
    for column, (title, (attn, chart_key)) in zip(st.columns(2), maps.items(), strict=True):
        chart(attention_overlay(bg, attn, cell, opacity, box=box, title=title), key=chart_key, where=column)
        share = share_inside_box(attn, box, cell, result.image_size)
        area = share_inside_box(np.ones_like(attn), box, cell, result.image_size)  # a uniform map's share
        column.caption(
            f"{share:.0%} of this map lies inside the detection's box, which covers {area:.0%} of the image "
            "(what a map spread evenly would put there)."
        )
    ablation_part(detector, model_key, image_key, result, bg, features, query)


def ablation_part(detector: Detector, model_key: tuple, image_key: str, result: DetrResult, bg: Background,
                  features: DetrFeatures, query: int) -> None:  # fmt: skip
    st.markdown("**Ablate heads** and see how the detections and their scores change.")
    t = detector.model.transformer
    families = {
        "encoder": (len(t.encoder.layers), t.n_heads),
        "decoder_self": (len(t.decoder.layers), t.n_heads),
        "cross": (len(t.decoder.layers), t.n_heads),
    }
    heads, fill = heads_picker(families, key="dp_abl")
    if heads:
        key = digest("detr_ablation", model_key, id(detector.model), image_key, sorted(heads), fill)
        after = computed(key, lambda: ablated_predictions(detector, features, heads, fill, result.image_size),
                         spinner="Running the transformer with the heads ablated…")  # fmt: skip
        changes(result, bg, after)
    if st.toggle("Rank every head for this detection", key="dp_imp_on",
                 help="Ablates each head alone, in batches, and takes one gradient."):  # fmt: skip
        key = digest("detr_importance", model_key, id(detector.model), image_key, query, fill)
        n_heads = sum(a * b for a, b in families.values())
        imp = computed(key, lambda: importance(DetrProbe(detector.model, features, query), fill),
                       spinner=f"Ablating each of the {n_heads} heads…")  # fmt: skip
        family = st.radio("Attention", list(families), key="dp_imp_family", format_func=FAMILY_NAMES.get,
                          horizontal=True)  # fmt: skip
        importance_view(imp, family, key="dp_imp")


def changes(result: DetrResult, bg: Background, after: Predictions) -> None:
    threshold = st.session_state.get("dp_threshold", 0.7)
    real = after.probs[:, :-1]
    scores, labels = real.max(-1), real.argmax(-1)
    shown = [int(q) for q in np.nonzero(scores >= threshold)[0]]
    left, right = st.columns([3, 2])
    chart(
        detections_figure(
            bg, after.boxes[shown], [f"q{q} {result.class_names[labels[q]]} {scores[q]:.2f}" for q in shown],
            [int(labels[q]) for q in shown], ids=shown,
            title=f"With the heads ablated: {len(shown)} detection(s) at score ≥ {threshold:.2f}",
        ),
        key="dp_abl_detections", where=left,
    )  # fmt: skip
    clean_scores, clean_labels = scores_labels(result)
    before = [int(q) for q in detections(result, threshold)]
    still = scores >= after.probs[:, -1]  # (N,) a real class is still the most likely output
    rows = [
        {"query": q, "class": result.class_names[clean_labels[q]], "score": clean_scores[q],
         "score ablated": after.probs[q, clean_labels[q]],
         "ablated predicts": result.class_names[labels[q]] if still[q] else "no object"}
        for q in before
    ]  # fmt: skip
    right.markdown(f"**The {len(before)} detection(s) of the model** at score ≥ {threshold:.2f}")
    right.dataframe(pd.DataFrame(rows).round(3), hide_index=True, key="dp_abl_table")
    right.caption(f"Heads {FILLS[st.session_state.get('dp_abl_fill', 'zero')]}.")
