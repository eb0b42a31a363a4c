"""The DETR to run and the image to run it on, in the sidebar and at the top of the page, and the result
of that one run, kept once per process."""

import hashlib
from pathlib import Path

import numpy as np
import streamlit as st

from models import hub
from models.detr.api import DEFAULT_WEIGHTS, Detector, DetrResult, run_detr
from models.detr.inspect import scores_labels
from models.detr.scenes import make_scene
from models.errors import ModelLoadError
from ui.hub import SUGGESTIONS, ask_for, model_field, named_model
from ui.images import IMAGE_TYPES, read_image
from ui.models import get_model, get_uploaded_model
from ui.results import computed, digest
from ui.uploads import UPLOAD_MB, UploadError
from ui.widgets import MEAN, device
from viz.detr import Background, background

DEFAULT, PATH, UPLOAD, SMALL, R50 = (
    "Default detector (shapes)",
    "DETR by name or path",
    "Upload a DETR checkpoint",
    "Untrained small DETR (random weights)",
    "Untrained DETR-R50 (random weights)",
)
SCENE, IMAGE = "Generated scene (with ground truth)", "Upload an image"
# the embedded models among the choices -> their names in models.registry
REGISTRY = {DEFAULT: "detr-shapes", SMALL: "detr-small-untrained", R50: "detr-r50-untrained"}


def model_picker() -> tuple[Detector, tuple] | None:
    """-> (detector, a key naming it), or None with a message shown."""
    with st.sidebar:
        source = st.radio(
            "DETR model", [DEFAULT, PATH, UPLOAD, SMALL, R50], key="dp_model_source", bind="query-params"
        )
        try:
            if source == PATH:
                path, revision = model_field(
                    "dp_ckpt_path", SUGGESTIONS["detr"], label="Official DETR name, Hugging Face name or path"
                )
                if not path:
                    st.info(
                        "Type an official DETR name (detr-r50: COCO's 91 classes), a Hugging Face DETR name, "
                        "or the path of a .pth file, our directory or a Hugging Face DETR directory."
                    )
                    return None
                detector = named_model(path, revision, "detr", what="the checkpoint")
                return None if detector is None else (detector, (source, path, revision, device()))
            if source == UPLOAD:
                upload = st.file_uploader(
                    "DETR weights (.pth, .pt, .safetensors)",
                    type=["pth", "pt", "safetensors"],
                    key="dp_ckpt",
                    max_upload_size=UPLOAD_MB["checkpoint"],
                )
                if upload is None:
                    st.info("Upload an official torch-hub .pth or a DETR state dict.")
                    return None
                data = upload.getvalue()
                sha = hashlib.sha256(data).hexdigest()
                detector = get_uploaded_model(sha, data, Path(upload.name).suffix, device(), kind="detr")
                return detector, (source, sha, device())
            if source == DEFAULT and not (DEFAULT_WEIGHTS / "model.safetensors").exists():
                st.warning(
                    f"No trained default detector is shipped yet (nothing at {DEFAULT_WEIGHTS}; "
                    "`python -m scripts.train_detr` makes it). Pick an untrained model to explore the "
                    "architecture, or load a checkpoint."
                )
                return None
            return get_model(REGISTRY[source], device(), kind="detr"), (source, "", device())
        except ModelLoadError as err:
            st.error(f"Cannot load the checkpoint: {err}")
    return None


def shapes_notice(model_key: tuple, scene) -> None:
    """On a photograph, the shapes detector finds shapes: say so, and offer the official DETR-R50."""
    if model_key[0] != DEFAULT or scene is not None:
        return
    st.info(
        "The default detector knows six drawn shapes only (trained on generated scenes), so on a photograph "
        "it finds squares and rings. DETR-R50, the official model trained on COCO (91 classes: people, "
        "animals, vehicles, objects), sees what is in a photograph."
    )
    size = "" if hub.cached("detr-r50") else " (downloads 159 MB once)"
    st.button(f"Use DETR-R50{size}", key="dp_use_r50", on_click=use_r50)


def use_r50() -> None:
    st.session_state.dp_model_source = PATH
    ask_for("dp_ckpt_path", "detr-r50")


def model_caption(detector: Detector, model_key: tuple) -> None:
    c = detector.config
    st.caption(
        f"{detector.name}: {c.backbone_depth}-layer ResNet, d = {c.d_model}, {c.num_encoder_layers} encoder "
        f"+ {c.num_decoder_layers} decoder layers × {c.n_heads} heads, {c.num_queries} queries, "
        f"{c.num_classes} classes; images resized to a shorter side of {c.min_size} (longer ≤ {c.max_size})."
    )
    if model_key[0] in (SMALL, R50):
        st.warning(
            "This model has random weights: its attention shows the architecture, not learned behaviour."
        )


def image_picker():
    """-> (image key, (H, W, 3) uint8 image, scene or None), or None with a message shown."""
    source = st.radio("Image", [SCENE, IMAGE], key="dp_image_source", horizontal=True, bind="query-params")
    if source == SCENE:
        c1, c2 = st.columns(2)
        seed = c1.number_input(
            "Scene seed", min_value=0, max_value=2**31 - 1, key="dp_seed", persist_state="session",
            bind="query-params",
        )  # fmt: skip
        size = c2.number_input(
            "Scene size (pixels)",
            min_value=64,
            max_value=1024,
            step=32,
            key="dp_scene_size",
            persist_state="session",
            bind="query-params",
        )
        scene = make_scene(int(seed), int(size))
        return f"scene-{seed}-{size}", scene.image, scene
    upload = st.file_uploader(
        "Image (PNG, JPEG, WebP, BMP, GIF, TIFF)",
        type=IMAGE_TYPES,
        key="dp_upload",
        max_upload_size=UPLOAD_MB["image"],
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


def detr_result(detector: Detector, model_key: tuple, image_key: str, image: np.ndarray) -> DetrResult:
    """The model run once per (model, image) per process, shared by sessions (bounded in bytes: the
    encoder keeps q and k, not its maps)."""
    key = digest("detr", model_key, id(detector.model), image_key)
    return computed(
        key, lambda: run_detr(detector, image, threshold=0.0), spinner="Running DETR once on this image…"
    )


@st.cache_data(max_entries=8)
def image_background(image_key: str, _image: np.ndarray) -> Background:
    """The image as small JPEGs under every figure (a few hundred kB; cheap to copy)."""
    return background(_image)


def reset_for(result: DetrResult, result_key: tuple) -> None:
    """A new (model, image): start on the best query, the last layer, the head mean, the centre."""
    if st.session_state.get("dp_result_key") == result_key:
        return
    st.session_state.dp_result_key = result_key
    scores, _ = scores_labels(result)
    n_dec, n_enc = result.decoder_cross.shape[0], result.encoder_attention.n_layers
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
