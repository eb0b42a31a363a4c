"""DETR: upload an image (or draw a scene), see the detections and what each object query looks at."""

import hashlib
import io
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from models.detr.api import DEFAULT_WEIGHTS, Detector, DetrResult, run_detr
from models.detr.inspect import (
    cell_extent,
    detections,
    encoder_maps,
    is_object,
    match_ground_truth,
    positional_encoding,
    scores_labels,
    share_inside_box,
    upsample,
)
from models.detr.scenes import SHAPE_CLASSES, make_scene
from models.errors import ModelLoadError
from models.positional import detr_channel_name
from ui.images import IMAGE_TYPES, read_image
from ui.models import get_model, get_uploaded_model
from ui.uploads import UploadError
from viz.attention import attention_heatmap
from viz.detr import (
    Background,
    attention_overlay,
    background,
    detections_figure,
    layer_predictions,
    map_grid,
    matching_heatmaps,
    matching_scene,
    overlay_rgb,
)
from viz.positional import channel_maps

DEFAULT, PATH, UPLOAD, SMALL, R50 = (
    "Default detector (shapes)",
    "DETR checkpoint by path",
    "Upload a DETR checkpoint",
    "Untrained small DETR (random weights)",
    "Untrained DETR-R50 (random weights)",
)
SCENE, IMAGE = "Generated scene (with ground truth)", "Upload an image"
MEAN = "mean"
RAW, UPSAMPLED = "feature map (raw)", "upsampled (bilinear)"
UPSAMPLE_FACTOR = 8  # display cells per feature cell, each way, when upsampled
MAX_STRIP = 12  # detections drawn side by side at most
WHERE_TO, WHO_FROM = "where it attends", "which positions attend to it"
# the embedded models among the choices -> their names in models.registry
REGISTRY = {DEFAULT: "detr-shapes", SMALL: "detr-small-untrained", R50: "detr-r50-untrained"}


# cache_resource, not cache_data: the result holds every attention (about 160 MB for DETR-R50 at
# 800 x 1066), and cache_data would unpickle a copy at every rerun. It is never mutated.
@st.cache_resource(max_entries=4, show_spinner="Running DETR once on this image…")
def inspect_image(_detector: Detector, model_key: tuple, image_key: str, _image) -> DetrResult:
    return run_detr(_detector, _image, threshold=0.0)


@st.cache_data(max_entries=8)
def get_background(image_key: str, _image: np.ndarray) -> Background:
    return background(_image)


def model_picker() -> tuple[Detector, tuple] | None:
    device = st.session_state.get("device", "cpu")
    with st.sidebar:
        source = st.radio("DETR model", [DEFAULT, PATH, UPLOAD, SMALL, R50], key="dp_model_source")
        try:
            if source == PATH:
                path = st.text_input(
                    "Official .pth, our directory or a Hugging Face DETR directory", key="dp_ckpt_path"
                ).strip()
                if not path:
                    st.info("Give the path of a DETR checkpoint file or directory.")
                    return None
                return get_model(path, device, kind="detr"), (source, path, device)
            if source == UPLOAD:
                upload = st.file_uploader(
                    "DETR weights (.pth, .pt, .safetensors)", type=["pth", "pt", "safetensors"], key="dp_ckpt"
                )
                if upload is None:
                    st.info("Upload an official torch-hub .pth or a DETR state dict.")
                    return None
                data = upload.getvalue()
                digest = hashlib.sha256(data).hexdigest()
                detector = get_uploaded_model(digest, data, Path(upload.name).suffix, device, kind="detr")
                return detector, (source, digest, device)
            if source == DEFAULT and not (DEFAULT_WEIGHTS / "model.safetensors").exists():
                st.warning(
                    f"No trained default detector is shipped yet (nothing at {DEFAULT_WEIGHTS}; "
                    "`python -m scripts.train_detr` makes it). Pick an untrained model to explore the "
                    "architecture, or load a checkpoint."
                )
                return None
            return get_model(REGISTRY[source], device, kind="detr"), (source, "", device)
        except ModelLoadError as err:
            st.error(f"Cannot load the checkpoint: {err}")
    return None


def image_picker():
    """-> (image key, (H, W, 3) uint8 image, scene or None), or None with a message shown."""
    source = st.radio("Image", [SCENE, IMAGE], key="dp_image_source", horizontal=True)
    if source == SCENE:
        c1, c2 = st.columns(2)
        seed = c1.number_input(
            "Scene seed", min_value=0, max_value=2**31 - 1, key="dp_seed", persist_state="session"
        )
        size = c2.number_input(
            "Scene size (pixels)",
            min_value=64,
            max_value=1024,
            step=32,
            key="dp_scene_size",
            persist_state="session",
        )
        scene = make_scene(int(seed), int(size))
        return f"scene-{seed}-{size}", scene.image, scene
    upload = st.file_uploader(
        "Image (PNG, JPEG, WebP, BMP, GIF, TIFF)", type=IMAGE_TYPES, key="dp_upload", max_upload_size=100
    )
    if upload is None:
        st.info("Upload an image to run DETR on it.")
        return None
    data = upload.getvalue()
    try:
        image = np.asarray(read_image(data, upload.name))
    except UploadError as err:
        st.error(str(err))
        return None
    return hashlib.sha256(data).hexdigest(), image, None


def query_labels(result: DetrResult) -> list[str]:
    """ "query q: <class or no object> <score>" for every query, after the last layer."""
    scores, labels = scores_labels(result)
    real = is_object(result)
    return [
        f"query {q}: {result.class_names[labels[q]] if real[q] else 'no object'} {scores[q]:.2f}"
        for q in range(len(scores))
    ]


def reset_for(result: DetrResult, result_key: tuple) -> None:
    """A new (model, image): start on the best query, the last layer, the head mean, the centre."""
    if st.session_state.get("dp_result_key") == result_key:
        return
    st.session_state.dp_result_key = result_key
    scores, _ = scores_labels(result)
    n_dec, n_enc = result.decoder_cross.shape[0], result.encoder.shape[0]
    st.session_state.update(
        dp_query=int(scores.argmax()),
        dp_layer=n_dec - 1,
        dp_head=MEAN,
        dp_pred_layer=n_dec - 1,
        dp_enc_layer=n_enc - 1,
        dp_enc_head=MEAN,
        dp_enc_y=result.h // 2,
        dp_enc_x=result.w // 2,
        dp_dself_layer=n_dec - 1,
        dp_dself_head=MEAN,
        dp_pos_channel=0,
    )


def pick_detection() -> None:
    """on_select of the detections figure: the clicked box's query becomes the chosen one."""
    points = st.session_state.dp_detections.selection.points
    if points:
        st.session_state.dp_query = st.session_state.dp_shown[points[0]["curve_number"]]


def pick_query_row() -> None:
    rows = st.session_state.dp_query_table.selection.rows
    if rows:
        st.session_state.dp_query = int(rows[0])


def pick_strip_tile() -> None:
    """on_select of the strip of every detection's map: that detection's query becomes the chosen one."""
    points = st.session_state.dp_strip.selection.points
    if points:
        col = int(points[0]["x"] // st.session_state.dp_strip_tile_w)
        st.session_state.dp_query = st.session_state.dp_shown[min(col, len(st.session_state.dp_shown) - 1)]


def pick_tile() -> None:
    """on_select of the layer x head grid: the clicked tile becomes the chosen layer and head."""
    points = st.session_state.dp_grid.selection.points
    if points:
        tile_h, tile_w = st.session_state.dp_tile
        layer, col = int(points[0]["y"] // tile_h), int(points[0]["x"] // tile_w)
        st.session_state.dp_layer = min(layer, st.session_state.dp_n_layers - 1)
        st.session_state.dp_head = MEAN if col == st.session_state.dp_n_heads else col


def pick_point() -> None:
    """on_select of the encoder figure: the clicked feature cell becomes the chosen point."""
    points = st.session_state.dp_enc_click.selection.points
    if points:
        ch, cw = st.session_state.dp_cell
        st.session_state.dp_enc_x = min(int(points[0]["x"] // cw), st.session_state.dp_w - 1)
        st.session_state.dp_enc_y = min(int(points[0]["y"] // ch), st.session_state.dp_h - 1)


def layer_choice(label: str, n_layers: int, key: str) -> int:
    return st.selectbox(
        label, range(n_layers), key=key, persist_state="session", format_func=lambda i: f"layer {i}"
    )


def head_choice(label: str, n_heads: int, key: str):
    return st.selectbox(
        label,
        [*range(n_heads), MEAN],
        key=key,
        persist_state="session",
        format_func=lambda h: f"head {h}" if h != MEAN else "mean of heads",
    )


def with_mean(maps: np.ndarray) -> np.ndarray:
    """(L, nh, h, w) -> (L, nh + 1, h, w), the head mean appended as the last column."""
    return np.concatenate([maps, maps.mean(1, keepdims=True)], axis=1)


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
    """Every layer x head of `maps` (L, nh, h, w) plus the head mean, full width, tiles at most 150 px."""
    n_layers, n_heads = maps.shape[:2]
    fig = map_grid(
        bg,
        with_mean(maps),
        [f"layer {i}" for i in range(n_layers)],
        [f"head {j}" for j in range(n_heads)] + [MEAN],
        cell,
        opacity,
        point=point,
        title=title,
        tile_width=min(150, 1000 // (n_heads + 1)),
        names=("layer", "head"),
    )
    st.plotly_chart(fig, key=key, width="content", on_select=on_select, selection_mode="points")


def npz_bytes(result: DetrResult) -> bytes:
    buf = io.BytesIO()
    np.savez(
        buf,
        encoder=result.encoder,  # (E, nh, h, w, h, w)
        decoder_self=result.decoder_self,  # (L, nh, N, N)
        decoder_cross=result.decoder_cross,  # (L, nh, N, h, w)
        layer_probs=result.layer_probs,  # (L, N, K + 1)
        layer_boxes=result.layer_boxes,  # (L, N, 4) xyxy pixels
        class_names=np.array(result.class_names),
    )
    return buf.getvalue()


def png_bytes(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def head_name(head) -> str:
    return "mean of heads" if head == MEAN else f"head {head}"


def detections_section(result: DetrResult, bg: Background) -> None:
    st.slider("Score threshold", 0.0, 1.0, step=0.01, key="dp_threshold", persist_state="session")
    scores, labels = scores_labels(result)
    shown = [int(q) for q in detections(result, st.session_state.dp_threshold)]
    st.session_state.dp_shown = shown
    query = st.session_state.dp_query
    fig = detections_figure(
        bg,
        result.layer_boxes[-1, shown],
        [f"q{q} {result.class_names[labels[q]]} {scores[q]:.2f}" for q in shown],
        [int(labels[q]) for q in shown],
        selected=shown.index(query) if query in shown else None,
        title=f"{len(shown)} detection{'' if len(shown) == 1 else 's'} at score ≥ "
        f"{st.session_state.dp_threshold:.2f} (no NMS, S17)",
    )
    n = len(scores)
    real = is_object(result)
    left, right = st.columns([3, 2])
    with left:
        st.plotly_chart(fig, key="dp_detections", on_select=pick_detection, selection_mode="points")
        if not shown:
            st.info("No query passes the threshold; lower it, or pick any query from the list.")
    with right:
        st.markdown(f"**All {n} queries** (grey: the query predicts “no object”)")
        table = pd.DataFrame(
            {
                "query": np.arange(n),
                "prediction": [result.class_names[labels[q]] if real[q] else "no object" for q in range(n)],
                "score": scores,
                "p(no object)": result.layer_probs[-1, :, -1],
            }
        )
        styled = table.style.apply(
            lambda row: ["" if real[row.name] else "color: #aaa"] * len(row), axis=1
        ).format({"score": "{:.3f}", "p(no object)": "{:.3f}"})
        st.dataframe(
            styled,
            hide_index=True,
            height=330,
            key="dp_query_table",
            on_select=pick_query_row,
            selection_mode="single-row",
        )
        labels_text = query_labels(result)
        st.selectbox(
            "Query to inspect",
            range(n),
            key="dp_query",
            persist_state="session",
            format_func=lambda q: labels_text[q],
        )
    if shown:
        strip = shown[:MAX_STRIP]
        cell = cell_extent(result)
        st.session_state.dp_strip_tile_w = (result.w + 1) * cell[1]
        maps = result.decoder_cross[-1][:, strip].mean(0)  # (D, h, w) last layer, mean of heads
        fig = map_grid(
            bg,
            maps[None],
            ["last layer"],
            [f"q{q} {result.class_names[labels[q]]}" for q in strip],
            cell,
            st.session_state.dp_opacity,
            title="What each detection looks at",
            tile_width=min(150, 1000 // len(strip)),
            names=("", "detection"),
        )
        st.plotly_chart(
            fig, key="dp_strip", width="content", on_select=pick_strip_tile, selection_mode="points"
        )
        best = f", the best {MAX_STRIP}" if len(shown) > MAX_STRIP else ""
        st.caption(f"Last decoder layer, mean of heads{best}; click one to inspect it below.")


@st.fragment
def cross_attention_section(result: DetrResult, bg: Background, image: np.ndarray) -> None:
    n_layers, n_heads = result.decoder_cross.shape[:2]
    query = st.session_state.dp_query
    st.caption(
        "Each object query asks for something (S15); keys and values are the encoder's memory, the content "
        "of the image (S14); the head mixes the two, and the query's attention lands on its object (S16)."
    )
    c1, c2, c3, c4 = st.columns(4)
    with c1:
        layer = layer_choice("Decoder layer", n_layers, "dp_layer")
    with c2:
        head = head_choice("Head", n_heads, "dp_head")
    opacity = c3.slider("Opacity", 0.0, 1.0, step=0.05, key="dp_opacity", persist_state="session")
    resolution = c4.radio("Resolution", [RAW, UPSAMPLED], key="dp_resolution", persist_state="session")
    maps = result.decoder_cross[:, :, query]  # (L, nh, h, w)
    attn = maps[layer].mean(0) if head == MEAN else maps[layer, head]
    cell = cell_extent(result)
    shown, shown_cell = attn, cell
    if resolution == UPSAMPLED:
        k = UPSAMPLE_FACTOR
        shown = upsample(attn, (result.h * k, result.w * k))
        shown_cell = (cell[0] / k, cell[1] / k)
    box = result.layer_boxes[-1, query]
    left, right = st.columns([3, 2])
    with left:
        st.plotly_chart(
            attention_overlay(
                bg,
                shown,
                shown_cell,
                opacity,
                box=box,
                title=f"{query_labels(result)[query]} · layer {layer}, {head_name(head)}",
            ),
            key="dp_overlay",
        )
    with right:
        st.caption(
            f"{share_inside_box(attn, box, cell, result.image_size):.0%} of this map's attention lies inside "
            "the query's box, each feature cell's share spread evenly over the pixels it covers. Feature map "
            f"{result.h} × {result.w}, one cell = {result.stride} pixels of the "
            f"{result.input_size[0]} × {result.input_size[1]} resized input."
        )
        extent = (result.h * cell[0], result.w * cell[1])
        d1, d2 = st.columns(2)
        d1.download_button(
            "Overlay (PNG)",
            lambda: png_bytes(overlay_rgb(image, attn, extent, opacity, smooth=resolution == UPSAMPLED)),
            file_name=f"detr_query{query}_layer{layer}_{head_name(head).replace(' ', '_')}.png",
            mime="image/png",
            on_click="ignore",
            key="dp_png",
        )
        d2.download_button(
            "Attention tensors (.npz)",
            lambda: npz_bytes(result),
            file_name="detr_attention.npz",
            mime="application/octet-stream",
            on_click="ignore",
            key="dp_npz",
        )
    st.session_state.update(
        dp_n_heads=n_heads, dp_n_layers=n_layers, dp_tile=((result.h + 1) * cell[0], (result.w + 1) * cell[1])
    )
    st.caption(
        "Below: every layer and head at the raw feature-map resolution, each tile coloured from 0 to its "
        f"own maximum (head {n_heads} is the mean). Click a tile to open it above."
    )
    grid_chart(
        bg,
        maps,
        cell,
        opacity,
        key="dp_grid",
        on_select=pick_tile,
        title=f"Query {query}: every decoder layer × head",
    )


@st.fragment
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
    st.plotly_chart(
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


@st.fragment
def encoder_section(result: DetrResult, bg: Background) -> None:
    n_layers, n_heads = result.encoder.shape[:2]
    st.caption(
        "Every image position attends to every other (S18). At every encoder layer the positional "
        "encoding is added to queries and keys only, never to the values (S21). Choose a feature position "
        "with the controls or by clicking the image."
    )
    cell = cell_extent(result)
    st.session_state.update(dp_cell=cell, dp_h=result.h, dp_w=result.w)
    c1, c2, c3, c4, c5 = st.columns(5)
    x = c1.number_input("x (feature column)", 0, result.w - 1, key="dp_enc_x", persist_state="session")
    y = c2.number_input("y (feature row)", 0, result.h - 1, key="dp_enc_y", persist_state="session")
    with c3:
        layer = layer_choice("Encoder layer", n_layers, "dp_enc_layer")
    with c4:
        head = head_choice("Head", n_heads, "dp_enc_head")
    direction = c5.radio("Direction", [WHERE_TO, WHO_FROM], key="dp_enc_direction", persist_state="session")
    maps = encoder_maps(result, int(y), int(x), reverse=direction == WHO_FROM)  # (E, nh, h, w)
    attn = maps[layer].mean(0) if head == MEAN else maps[layer, head]
    point = ((x + 0.5) * cell[1], (y + 0.5) * cell[0])
    left, right = st.columns([3, 2])
    with left:
        st.plotly_chart(
            attention_overlay(
                bg,
                attn,
                cell,
                st.session_state.dp_opacity,
                point=point,
                clickable=True,
                title=f"({y}, {x}): {direction}, layer {layer}, {head_name(head)}",
            ),
            key="dp_enc_click",
            on_select=pick_point,
            selection_mode="points",
        )
    if direction == WHO_FROM:
        right.caption("A column of the attention matrix: it need not sum to 1.")
    grid_chart(
        bg,
        maps,
        cell,
        st.session_state.dp_opacity,
        key="dp_enc_grid",
        point=point,
        title=f"Position ({y}, {x}), {direction}: every encoder layer × head",
    )


@st.fragment
def decoder_self_section(result: DetrResult) -> None:
    n_layers, n_heads = result.decoder_self.shape[:2]
    st.caption(
        "The N object queries attend to one another (S18): this is how DETR avoids predicting one object "
        "twice without NMS (S17)."
    )
    c1, c2 = st.columns(2)
    with c1:
        layer = layer_choice("Decoder layer", n_layers, "dp_dself_layer")
    with c2:
        head = head_choice("Head", n_heads, "dp_dself_head")
    matrix = result.decoder_self[layer].mean(0) if head == MEAN else result.decoder_self[layer, head]
    labels = query_labels(result)
    st.plotly_chart(
        attention_heatmap(
            matrix, labels, labels, title=f"Decoder self-attention, layer {layer}, {head_name(head)}"
        ),
        key="dp_dself",
    )


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
        "(S19). Circles mark the assignment, computed here from the last decoder layer."
    )
    m = match_ground_truth(result, scene.boxes, scene.labels)
    n = m.total.shape[0]
    gt_names = [f"{j}: {SHAPE_CLASSES[c]}" for j, c in enumerate(scene.labels)]
    costs = {"class (−1·p)": m.cls, "L1 (5·‖b−b̂‖₁)": m.bbox, "GIoU (−2·GIoU)": m.giou, "sum": m.total}
    st.plotly_chart(
        matching_heatmaps(costs, m.pred, m.gt, [f"query {q}" for q in range(n)], gt_names),
        key="dp_match_costs",
    )
    left, right = st.columns([3, 2])
    left.plotly_chart(
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
    )
    unmatched = sorted(set(range(n)) - {int(q) for q in m.pred})
    right.dataframe(
        pd.DataFrame(
            {"query": m.pred, "ground truth": [gt_names[j] for j in m.gt], "cost": m.total[m.pred, m.gt]}
        ),
        hide_index=True,
    )
    right.markdown(f"**“no object”** ({len(unmatched)} queries): " + ", ".join(map(str, unmatched)))


@st.fragment
def positional_section(result: DetrResult, d_model: int) -> None:
    pos = positional_encoding(result, d_model)  # (d, h, w)
    d = pos.shape[0]
    st.caption(
        "DETR encodes position in y and x separately because image features are 2-D (S20): the first half "
        "of the channels are sines and cosines of y, the second half of x. This encoding is added to Q and "
        "K at every encoder layer (S21). More on the [positional-encodings page](/positional)."
    )
    channel = st.slider("Channel", 0, d - 1, key="dp_pos_channel", persist_state="session")
    partner = (channel + d // 2) % d
    names = [f"{c}: {detr_channel_name(c, d // 2)}" for c in (channel, partner)]
    st.plotly_chart(
        channel_maps(
            pos,
            [channel, partner],
            names,
            title=f"This image's {result.h} × {result.w} feature map: channel {channel} and its "
            f"{'x' if channel < d // 2 else 'y'} partner",
        ),
        key="dp_pos",
    )


st.title("DETR: what each object query looks at")
st.caption(
    "DETR puts a transformer after a CNN and predicts a set of N boxes in one shot, with no anchors and no "
    "non-maximum suppression (S17). Keys and values come from the encoder's image memory (S14), each "
    "object query asks for one object (S15), and cross-attention draws that object out (S16)."
)
for key, value in {
    "dp_threshold": 0.7,
    "dp_opacity": 0.6,
    "dp_resolution": RAW,
    "dp_seed": 0,
    "dp_scene_size": 128,
    "dp_enc_direction": WHERE_TO,
}.items():
    st.session_state.setdefault(key, value)

picked = model_picker()
if picked is None:
    st.stop()
detector, model_key = picked
c = detector.config
st.caption(
    f"{detector.name}: {c.backbone_depth}-layer ResNet, d = {c.d_model}, {c.num_encoder_layers} encoder + "
    f"{c.num_decoder_layers} decoder layers × {c.n_heads} heads, {c.num_queries} queries, {c.num_classes} "
    f"classes; images resized to a shorter side of {c.min_size} (longer ≤ {c.max_size})."
)
if model_key[0] in (SMALL, R50):
    st.warning("This model has random weights: its attention shows the architecture, not learned behaviour.")
chosen = image_picker()
if chosen is None:
    st.stop()
image_key, image, scene = chosen
try:
    result = inspect_image(detector, model_key, image_key, image)
except (RuntimeError, ValueError) as err:
    st.error(f"DETR could not run on this image: {err}")
    st.stop()
bg = get_background(image_key, image)
reset_for(result, (model_key, image_key))

detections_section(result, bg)
tabs = st.tabs(
    [
        "Cross-attention",
        "Per-layer predictions",
        "Encoder self-attention",
        "Decoder self-attention",
        "Matching (ground truth)",
        "Positional encoding",
    ]
)
with tabs[0]:
    cross_attention_section(result, bg, image)
with tabs[1]:
    layer_predictions_section(result, bg)
with tabs[2]:
    encoder_section(result, bg)
with tabs[3]:
    decoder_self_section(result)
with tabs[4]:
    matching_section(result, bg, scene)
with tabs[5]:
    positional_section(result, c.d_model)
