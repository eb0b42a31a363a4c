"""Positional encodings: see them, compare them, and see what they do to attention (S6, S20, S21).

Only the open tab runs (stateful tabs). Big tables (the sinusoidal encoding up to 8192 × 4096 and its
8192 × 8192 similarity, MiniLM's 512 × 384 table) are computed once per input (`ui.results.computed`) and
drawn by the heatmap core as rasters beside a zoom window. Channel, point, layer/head, seed and zoom
controls live in fragments: a change redraws one view and never reruns a model.
"""

from collections.abc import Callable

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from models.bert import ModelLoadError, TextModel
from models.bert_positions import input_parts, offset_share, permutation_gap, run_variants
from models.maps import STATISTICS
from models.positional import (
    DETR_LONGER_MAX,
    apply_rope,
    check_size,
    detr_channel_name,
    detr_feature_mask,
    detr_feature_size,
    detr_resized_size,
    detr_sine,
    position_similarity,
    rope_scores,
    scores_by_offset,
    similarity_to_point,
    sinusoidal,
)
from ui.export import chart
from ui.images import IMAGE_TYPES, upright_size
from ui.models import get_model
from ui.results import computed, digest
from ui.rope_section import real_rope_section
from ui.uploads import UPLOAD_MB, UploadError
from ui.widgets import clamped_int, device, layer_head_picker
from viz.attention import attention_heatmap
from viz.heatmap import CELL_BUDGET
from viz.positional import (
    channel_maps,
    channel_waves,
    colour_limit,
    encoding_heatmap,
    offset_profile,
    point_similarity_map,
    rope_rotation,
    similarity_heatmap,
    statistic_comparison,
    where_added_diagram,
)

MAX_ROPE_POSITIONS = 1024  # the RoPE view draws an N × N matrix
ZOOM, MAX_ZOOM = 128, 256  # rows and columns a side of a zoom window: by default, and at most
EXAMPLE = "The cat sat on the mat because it was warm, and the dog slept by the door."
COMPARED = ["positions intact", "positions removed", "shuffled"]
DEFAULTS = {
    "sin_n": 128,
    "sin_d": 128,
    "sin_base": 10000.0,
    "sin_channels": [0, 1, 10, 11, 40],
    "learned_channels": [0, 1, 2],
    "learned_text": EXAMPLE,
    "detr_h": 480,
    "detr_w": 640,
    "detr_pad": False,
    "detr_pad_h": 800,
    "detr_pad_w": 1333,
    "detr_channels": [0, 1, 20, 128, 129, 148],
    "rope_d": 64,
    "rope_n": 128,
    "rope_base": 10000.0,
    "rope_seed": 0,
    "attn_text": EXAMPLE,
    "attn_seed": 0,
    "attn_layer": 0,
    "attn_head": 2,  # attends to the previous token with weight ≈ 1 in MiniLM
    "attn_reorder": False,
    "where_layers": 2,
}

Draw = Callable[[np.ndarray, int, int], go.Figure]  # (matrix or window, first row, first column) -> figure


def read_only(array: np.ndarray) -> np.ndarray:
    """Results kept by `computed` are shared by sessions: nothing may write to them."""
    array.setflags(write=False)
    return array


# --- big matrices: a raster of the whole beside a zoom window ---------------------------------------------


def zoomable(matrix: np.ndarray, key: str, draw: Draw, names: tuple[str, str]) -> None:
    """`draw(matrix, 0, 0)` as cells when it has at most CELL_BUDGET of them; else the whole as a raster
    beside a zoom window of rows × columns named `names`, drawn by `draw(window, first row, first col)`."""
    if matrix.size <= CELL_BUDGET:
        chart(draw(matrix, 0, 0), key=f"{key}_map")
        return
    whole, zoom = st.columns(2)
    chart(draw(matrix, 0, 0), key=f"{key}_raster", where=whole)
    with zoom:
        zoom_window(matrix, key, draw, names)


@st.fragment
def zoom_window(matrix: np.ndarray, key: str, draw: Draw, names: tuple[str, str]) -> None:
    n_rows, n_cols = matrix.shape
    c1, c2, c3 = st.columns(3)
    size = clamped_int("Window", f"{key}_zw", 8, MAX_ZOOM, ZOOM, c3, help=f"at most {MAX_ZOOM} a side")
    height, width = min(size, n_rows), min(size, n_cols)
    r0 = clamped_int(f"First {names[0]}", f"{key}_zr", 0, n_rows - height, 0, c1)
    c0 = clamped_int(f"First {names[1]}", f"{key}_zc", 0, n_cols - width, 0, c2)
    fig = draw(matrix[r0 : r0 + height, c0 : c0 + width], r0, c0)
    fig.update_layout(
        title=f"Zoom: {names[0]} {r0}–{r0 + height - 1}, {names[1]} {c0}–{c0 + width - 1}", height=560
    )
    chart(fig, key=f"{key}_zoom")


def valid_channels(chosen: list[int], d: int) -> list[int]:
    kept = [c for c in chosen if 0 <= c < d]
    return kept or [0]


@st.fragment
def waves(table: np.ndarray, key: str, label: str, title: str) -> None:
    """The chosen channels of an (N, d) table as lines against position."""
    d = table.shape[1]
    st.session_state[key] = [c for c in st.session_state.get(key, []) if c < d]
    channels = st.multiselect(label, list(range(d)), key=key, persist_state="session")
    chart(channel_waves(table, valid_channels(channels, d), title), key=f"{key}_waves")


def minilm() -> TextModel | None:
    try:
        return get_model("all-MiniLM-L6-v2", device(), kind="encoder")
    except ModelLoadError as err:
        st.error(f"Cannot load all-MiniLM-L6-v2: {err}")
        return None


# --- sinusoidal ---------------------------------------------------------------------------------------


def sinusoidal_tables(n: int, d: int, base: float) -> dict:
    """The (N, d) encoding and its (N, N) similarity PE·PEᵀ, computed once per (N, d, base) per process;
    the product (550 GFLOP at 8192 × 4096) runs on the chosen device."""

    def compute() -> dict:
        pe = sinusoidal(n, d, base)  # (N, d) float32
        sim = position_similarity(pe.to(device())).cpu().numpy()  # (N, N)
        return {
            "pe": read_only(pe.numpy()),
            "sim": read_only(sim),
            "limit": np.float32(colour_limit(pe.numpy())),
            "sim_range": np.array([sim.min(), sim.max()]),
        }

    return computed(
        digest("sinusoidal", n, d, base),
        compute,
        spinner=f"Computing {n} × {d} and its {n} × {n} similarity…",
    )


def sinusoidal_section() -> None:
    st.markdown(
        "The encoding of *Attention Is All You Need*: channel pair i of position pos holds "
        "sin(pos·ω_i) and cos(pos·ω_i), with ω_i = base^(−2i/d). Fast pairs first, slow pairs last."
    )
    c1, c2, c3 = st.columns(3)
    n = c1.number_input(
        "positions N", min_value=1, max_value=1_000_000, step=1, key="sin_n", persist_state="session"
    )
    d = c2.number_input(
        "channels d (even)", min_value=1, max_value=1_000_000, step=2, key="sin_d", persist_state="session"
    )
    base = c3.number_input("base", min_value=2.0, max_value=1e6, key="sin_base", persist_state="session")
    n, d, base = int(n), int(d), float(base)
    try:
        check_size(n, d)
    except ValueError as err:
        st.error(str(err))
        return
    tables = sinusoidal_tables(n, d, base)
    limit = float(tables["limit"])
    zoomable(
        tables["pe"], "sin_pe",
        lambda m, r0, c0: encoding_heatmap(
            m, f"sinusoidal, N={n}, d={d}", limit=limit, row_start=r0, col_start=c0
        ),
        ("position", "channel"),
    )  # fmt: skip
    waves(
        tables["pe"],
        "sin_channels",
        "channels to draw as waves",
        "each channel is a wave; frequency falls with i",
    )
    low, high = (float(v) for v in tables["sim_range"])
    zoomable(
        tables["sim"], "sin_sim",
        lambda m, r0, c0: similarity_heatmap(
            m, "PE[m] · PE[n] = Σ_i cos((m − n)·ω_i)", row_start=r0, col_start=c0, zmin=low, zmax=high
        ),
        ("m", "n"),
    )  # fmt: skip
    st.caption(
        "The dot product depends on m − n only: every diagonal is constant, and it falls off with |m − n|."
    )


# --- learned (MiniLM) ------------------------------------------------------------------------------------


def learned_table(model: TextModel) -> dict:
    """MiniLM's (N, d) position table and the cosine similarity of its rows, once per model."""

    def compute() -> dict:
        table = model.model.embeddings.position_embeddings.weight.detach().float().cpu()  # (N, d)
        sim = position_similarity(table, normalize=True).numpy()
        return {
            "table": read_only(table.numpy()),
            "sim": read_only(sim),
            "limit": np.float32(colour_limit(table.numpy())),
            "sim_range": np.array([sim.min(), sim.max()]),
        }

    return computed(digest("learned table", model.name, str(model.device), id(model.model)), compute)


def learned_input(model: TextModel, text: str) -> dict:
    """The sentence's wordpieces and its embedding split into token, segment and position (one forward)."""

    def compute() -> dict:
        encoding = model.encode(text)
        parts = input_parts(model, encoding.ids)
        return {
            "tokens": encoding.tokens,
            "n_dropped": encoding.n_dropped,
            "parts": {k: read_only(v.numpy()) for k, v in parts.items()},
        }

    key = digest("learned input", model.name, str(model.device), id(model.model), text)
    return computed(key, compute, spinner="Running the model…")


def learned_section() -> None:
    st.markdown(
        "BERT-family models learn their positions: a table W with one row per position (512 × 384 for "
        "all-MiniLM-L6-v2). Reading row p is multiplying a length-N one-hot vector by the table — the seed "
        "note's d × N matrix (**S6**) — and the result is **added** to the token embedding."
    )
    model = minilm()
    if model is None:
        return
    text = st.text_input(
        "sentence (its positions are read from the table)",
        key="learned_text",
        persist_state="session",
        max_chars=2000,
    )
    if not text.strip():
        st.warning("Type a sentence to see its position rows.")
        return
    table = learned_table(model)
    limit = float(table["limit"])
    zoomable(
        table["table"], "learned_table",
        lambda m, r0, c0: encoding_heatmap(
            m, f"learned position table {table['table'].shape}", limit=limit, row_start=r0, col_start=c0
        ),
        ("position", "channel"),
    )  # fmt: skip
    waves(table["table"], "learned_channels", "channels", "learned channels against position")
    low, high = (float(v) for v in table["sim_range"])
    zoomable(
        table["sim"], "learned_sim",
        lambda m, r0, c0: similarity_heatmap(
            m, "cosine similarity of the learned rows", "cosine", r0, c0, zmin=low, zmax=high
        ),
        ("m", "n"),
    )  # fmt: skip
    st.caption("Learned from data, the rows still end up most similar to their neighbours.")
    embedding_parts(learned_input(model, text), table["table"].shape[0])


def embedding_parts(view: dict, n_positions: int) -> None:
    """The one-hot identity, the recomputed embedding output, and the three parts of the sum."""
    parts, tokens = view["parts"], view["tokens"]
    if view["n_dropped"]:
        st.warning(f"The model has {n_positions} positions; {view['n_dropped']} wordpieces were cut off.")
    same = np.array_equal(parts["position"], parts["position_one_hot"])
    ln_gap = float(np.abs(parts["normalised"] - parts["model"]).max())
    c1, c2 = st.columns(2)
    c1.metric(
        "one-hot(N) @ W equals W[p] (exactly)",
        "yes" if same else "no",
        help=f"max |difference| {np.abs(parts['position'] - parts['position_one_hot']).max():.1e}",
    )
    c2.metric(
        "LayerNorm(token + segment + position) vs the model's embedding output",
        f"{ln_gap:.1e}",
        help="The model adds the three and normalises; we recompute it by hand.",
    )
    labels = [f"{i} {t}" for i, t in enumerate(tokens)]
    for col, (key, title) in zip(
        st.columns(3),
        [("token", "token embedding"), ("position_one_hot", "one-hot @ W"), ("sum", "sum (+ segment)")],
        strict=True,
    ):
        chart(
            encoding_heatmap(parts[key], title=title, row_labels=labels), key=f"learned_part_{key}", where=col
        )
    st.caption(
        "Row p of the middle map is row p of the table: the one-hot vector of position p picks it. "
        "The model adds it to the token's row, then normalises the sum (LayerNorm)."
    )


# --- DETR 2-D sine ---------------------------------------------------------------------------------------


def image_size() -> tuple[int, int] | None:
    upload = st.file_uploader(
        "or an image (only its size is used)",
        type=IMAGE_TYPES,
        key="detr_upload",
        max_upload_size=UPLOAD_MB["image"],
    )
    if upload is None:
        c1, c2 = st.columns(2)
        h = c1.number_input(
            "image height (pixels)", min_value=1, max_value=1_000_000, key="detr_h", persist_state="session"
        )
        w = c2.number_input(
            "image width (pixels)", min_value=1, max_value=1_000_000, key="detr_w", persist_state="session"
        )
        return int(h), int(w)
    try:
        h, w = upright_size(upload.getvalue(), upload.name)
    except UploadError as err:
        st.error(str(err))
        return None
    st.caption(f"{upload.name}: {h} × {w} pixels")
    return h, w


def batch_size(resized: tuple[int, int]) -> tuple[int, int] | None:
    """The padded batch the image sits in (the resized image itself unless padding is on), or None after
    saying why the batch cannot be."""
    padded = st.checkbox(
        "pad it as in a batch with a larger image (padding is masked)",
        key="detr_pad",
        persist_state="session",
    )
    if not padded:
        return resized
    c1, c2 = st.columns(2)
    pad_hw = tuple(
        int(col.number_input(label, min_value=1, max_value=1_000_000, key=key, persist_state="session"))
        for col, label, key in ((c1, "batch height", "detr_pad_h"), (c2, "batch width", "detr_pad_w"))
    )
    if not (resized[0] <= pad_hw[0] <= DETR_LONGER_MAX and resized[1] <= pad_hw[1] <= DETR_LONGER_MAX):
        st.error(
            f"The batch must hold the resized image ({resized[0]} × {resized[1]}); no resized image in a "
            f"DETR batch is longer than {DETR_LONGER_MAX} pixels, so neither is the batch."
        )
        return None
    return pad_hw


def detr_section() -> None:
    st.markdown(
        "Image features are 2-D, so DETR encodes y and x (**S20**): 128 channels for y then 128 for x, "
        "each interleaving sin and cos of the cumulative position normalised to 0…2π over the unpadded "
        "extent (temperature 10000, eps 1e-6). Computed by `models/detr/position_encoding.py`, the "
        "official implementation, on the feature map of your image: DETR resizes the shorter side to 800 "
        "(longer ≤ 1333) and the ResNet backbone has stride 32."
    )
    size = image_size()
    if size is None:
        return
    try:
        resized = detr_resized_size(*size)
        feature = detr_feature_size(*size)
    except ValueError as err:
        st.error(str(err))
        return
    pad_hw = batch_size(resized)
    if pad_hw is None:
        return
    mask = detr_feature_mask(resized, pad_hw)
    st.write(
        f"resized to {resized[0]} × {resized[1]} → feature map {feature[0]} × {feature[1]}"
        + (f", padded to {mask.shape[0]} × {mask.shape[1]}" if pad_hw != resized else "")
    )
    pos = detr_sine(mask)  # (256, H, W)
    detr_channels(pos)
    detr_point(pos)
    st.caption(
        "Similarity falls off in both y and x around the point: half the channels see each axis. "
        "Padding cells get a degenerate encoding (x stops counting, y is 0 down a fully padded "
        "column); attention masks them, so it does not matter."
    )


@st.fragment
def detr_channels(pos: torch.Tensor) -> None:
    channels = valid_channels(
        st.multiselect(
            "channels",
            list(range(pos.shape[0])),
            key="detr_channels",
            persist_state="session",
            format_func=lambda c: f"{c}: {detr_channel_name(c)}",
        ),
        pos.shape[0],
    )
    chart(
        channel_maps(
            pos.numpy(),
            channels,
            [f"{c}: {detr_channel_name(c)}" for c in channels],
            "chosen channels over the feature map",
        ),
        key="detr_maps",
    )


@st.fragment
def detr_point(pos: torch.Tensor) -> None:
    c1, c2 = st.columns(2)
    height, width = pos.shape[1:]
    y = clamped_int("point y (row)", "detr_y", 0, height - 1, height // 3, c1)  # kept on a smaller map
    x = clamped_int("point x (column)", "detr_x", 0, width - 1, width // 3, c2)
    sim = similarity_to_point(pos, y, x).numpy()
    chart(
        point_similarity_map(sim, (y, x), f"cosine similarity of every position to ({y}, {x})"),
        key="detr_point",
    )


# --- RoPE --------------------------------------------------------------------------------------------


@st.fragment
def rope_section() -> None:
    st.markdown(
        "Rotary position embedding (RoFormer) adds nothing: it **rotates** channel pair (2i, 2i+1) of each "
        "query and key at position m by the angle m·θ_i, θ_i = base^(−2i/d). A rotation by m then one by n "
        "leaves q·k depending on n − m only."
    )
    c1, c2, c3, c4 = st.columns(4)
    d = int(
        c1.number_input(
            "d (even)", min_value=1, max_value=1_000_000, step=2, key="rope_d", persist_state="session"
        )
    )
    n = int(
        c2.number_input(
            "positions N", min_value=1, max_value=1_000_000, key="rope_n", persist_state="session"
        )
    )
    base = float(
        c3.number_input("base", min_value=2.0, max_value=1e6, key="rope_base", persist_state="session")
    )
    seed = int(
        c4.number_input(
            "seed of q, k", min_value=0, max_value=2**31 - 1, key="rope_seed", persist_state="session"
        )
    )
    if n > MAX_ROPE_POSITIONS:
        st.error(
            f"N = {n} is more than this view's {MAX_ROPE_POSITIONS} positions (it draws an N × N matrix)."
        )
        return
    try:
        check_size(n, d)
    except ValueError as err:
        st.error(str(err))
        return
    gen = torch.Generator().manual_seed(seed)
    q, k = (
        torch.randn(d, generator=gen, dtype=torch.float64),
        torch.randn(d, generator=gen, dtype=torch.float64),
    )
    pair_ids = sorted({0, d // 4, d // 2 - 1})  # fastest, middle, slowest
    rotated = apply_rope(q.expand(n, d), torch.arange(n), base).reshape(n, d // 2, 2)  # (N, d/2, 2)
    chart(
        rope_rotation(
            rotated[:, pair_ids].permute(1, 0, 2).numpy(),
            pair_ids,
            "q's channel pairs as position grows: fast pairs circle, slow pairs creep",
        ),
        key="rope_rotation",
    )
    scores = rope_scores(q, k, n, base)
    offsets, means, spreads = scores_by_offset(scores)
    pe = sinusoidal(n, d, base).double()
    additive = (q + pe) @ (k + pe).T  # (N, N) absolute encoding added to the same q and k
    low, high = float(scores.min()), float(scores.max())
    zoomable(
        scores.numpy(), "rope_scores",
        lambda m, r0, c0: similarity_heatmap(
            m, "rope(q, m) · rope(k, n)", "q·k", r0, c0, zmin=low, zmax=high
        ),
        ("m", "n"),
    )  # fmt: skip
    chart(
        offset_profile(offsets.numpy(), means.numpy(), spreads.numpy(), "q·k depends on n − m only"),
        key="rope_offsets",
    )
    m1, m2 = st.columns(2)
    m1.metric(
        "RoPE: largest spread along a diagonal",
        f"{float(spreads.max()):.1e}",
        help=f"the scores themselves reach {float(scores.abs().max()):.2f} (float64)",
    )
    m2.metric(
        "added sinusoid (q + PE[m])·(k + PE[n]): largest spread",
        f"{float(scores_by_offset(additive)[2].max()):.2f}",
        help="An absolute encoding added to q and k mixes absolute positions into the score.",
    )


# --- what position does to MiniLM's attention ------------------------------------------------------------


def variants_of(model: TextModel, text: str, seed: int) -> dict:
    """The sentence intact, without positions, shuffled and both (four forwards), once per input."""

    def compute() -> dict:
        encoding = model.encode(text)
        variants = run_variants(model, encoding.ids, encoding.tokens, seed)
        return {
            "variants": variants,
            "n_dropped": encoding.n_dropped,
            "gap_removed": permutation_gap(
                variants["positions removed"], variants["shuffled, positions removed"]
            ),
            "gap_intact": permutation_gap(variants["positions intact"], variants["shuffled"]),
        }

    key = digest("variants", model.name, str(model.device), id(model.model), text, seed)
    return computed(key, compute, spinner="Running the model four ways…")


def attention_section() -> None:
    st.markdown(
        "The same sentence through the real all-MiniLM-L6-v2, three ways: as is; with the position "
        "embeddings left out (a bag of words); and with its words shuffled ([CLS] and [SEP] stay)."
    )
    model = minilm()
    if model is None:
        return
    c1, c2 = st.columns([4, 1])
    text = c1.text_input("sentence", key="attn_text", persist_state="session", max_chars=2000)
    seed = int(
        c2.number_input(
            "shuffle seed", min_value=0, max_value=2**31 - 1, key="attn_seed", persist_state="session"
        )
    )
    if not text.strip():
        st.warning("Type a sentence to compare.")
        return
    result = variants_of(model, text, seed)
    if result["n_dropped"]:
        st.warning(f"The model reads 512 wordpieces; {result['n_dropped']} were cut off.")
    variant_heads(result["variants"])
    m1, m2 = st.columns(2)
    m1.metric(
        "without positions, shuffled vs not (in word order)",
        f"{result['gap_removed']:.1e}",
        help="Largest attention difference once put back in the original order: a bag of words cannot "
        "tell the two orders apart.",
    )
    m2.metric(
        "with positions, shuffled vs not (in word order)",
        f"{result['gap_intact']:.2f}",
        help="The same words in another order are attended differently.",
    )
    for stat in ("entropy", "mean_distance"):
        values = {name: result["variants"][name].statistics()[stat] for name in COMPARED}
        chart(statistic_comparison(values, STATISTICS[stat]), key=f"attn_stat_{stat}")
    st.caption(
        "Mean distance is measured in the positions the model saw. Heads that attend to the previous or "
        "next word (S11) lose that pattern when positions are removed; with the words shuffled they keep "
        "attending to the previous *position*, which now holds another word."
    )


@st.fragment
def variant_heads(variants: dict) -> None:
    """One layer and head of the three runs side by side, with its weight on the previous position."""
    maps = variants["positions intact"].maps
    left, right = st.columns([2, 1], vertical_alignment="bottom")
    layer, head = layer_head_picker(maps.n_layers, maps.n_heads, key="attn", reductions=False, container=left)
    reorder = right.checkbox(
        "draw the shuffled run in the original word order", key="attn_reorder", persist_state="session"
    )
    for col, name in zip(st.columns(3), COMPARED, strict=True):
        variant = variants[name]
        tokens = variants["positions intact"].tokens if reorder else variant.tokens
        chart(
            attention_heatmap(
                variant.head(layer, head, original_order=reorder), tokens, tokens,
                f"{name}: layer {layer}, head {head}",
            ),
            key=f"attn_map_{name}", where=col,
        )  # fmt: skip
        if len(tokens) > 1:
            col.metric(
                "weight on the previous position",
                f"{offset_share(variant.head(layer, head), -1):.2f}",
                help="Mean over queries of the weight on the key just before them, in the order the "
                "model saw. Layer 0, head 2 of MiniLM is a previous-token head.",
            )


# --- where position is added -------------------------------------------------------------------------


@st.fragment
def where_section() -> None:
    n_layers = st.slider("layers drawn", 1, 6, key="where_layers", persist_state="session")
    chart(where_added_diagram(n_layers), key="where_diagram")
    st.markdown(
        "- **BERT / GPT** add the position embedding to the token embedding once, before the first layer "
        "(**S6**); later layers see position only through the residual stream, and it reaches Q, K and V "
        "alike.\n"
        "- **DETR** adds its 2-D encoding (**S20**) before *every* encoder self-attention, and only to the "
        "query and key: `q = k = src + pos`, `value = src` (**S21**). Where things attend depends on "
        "position; what they carry does not."
    )


SECTIONS = {
    "Sinusoidal": sinusoidal_section,
    "Learned (MiniLM)": learned_section,
    "DETR 2-D sine": detr_section,
    "Rotary (RoPE)": rope_section,
    "RoPE on a real model": real_rope_section,
    "What position does to attention": attention_section,
    "Where it is added": where_section,
}


def main() -> None:
    for key, value in DEFAULTS.items():
        st.session_state.setdefault(key, value)
    st.title("Positional encodings")
    st.caption(
        "Attention is blind to order; these are the ways a transformer is told where each token is. "
        "Seed claims S6, S20, S21."
    )
    # Stateful tabs: only the open one runs, so a long table or a model run costs nothing elsewhere.
    tabs = st.tabs(list(SECTIONS), key="pos_tab", on_change="rerun")
    for tab, section in zip(tabs, SECTIONS.values(), strict=True):
        with tab:
            if tab.open:
                section()


main()
