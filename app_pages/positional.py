"""Positional encodings: see them, compare them, and see what they do to attention (S6, S20, S21)."""

import numpy as np
import streamlit as st
import torch

from models.attention_stats import STATISTICS, head_statistics
from models.bert import ModelLoadError, TextModel
from models.bert_positions import input_parts, offset_share, permutation_gap, run_variants
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
from ui.images import IMAGE_TYPES, upright_size
from ui.models import get_model
from ui.uploads import UploadError
from viz.attention import attention_heatmap
from viz.positional import (
    channel_maps,
    channel_waves,
    encoding_heatmap,
    offset_profile,
    point_similarity_map,
    rope_rotation,
    similarity_heatmap,
    statistic_comparison,
    where_added_diagram,
)

DRAWN_PER_AXIS = 512  # larger tables are drawn at evenly spaced rows/columns; the numbers are exact
MAX_ROPE_POSITIONS = 1024  # the RoPE view draws an N × N matrix
MAX_UPLOAD_BYTES = 20_000_000
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


def sample(n: int, limit: int = DRAWN_PER_AXIS) -> np.ndarray:
    """Up to `limit` evenly spaced indices of 0..n-1, first and last included."""
    return np.unique(np.linspace(0, n - 1, min(n, limit)).round().astype(int))


@st.cache_data(max_entries=8)
def sinusoidal_view(n: int, d: int, base: float) -> dict:
    """The drawn rows and columns of the N × d encoding and the similarity of the drawn positions."""
    check_size(n, d)
    rows = sample(n)
    pe = sinusoidal(n, d, base, positions=torch.from_numpy(rows))  # (rows, d), all channels
    return {"rows": rows, "cols": sample(d), "pe": pe.numpy(), "sim": position_similarity(pe).numpy()}


@st.cache_data(max_entries=4)
def learned_view(_model: TextModel, device: str, text: str) -> dict:
    table = _model.model.embeddings.position_embeddings.weight.detach().float().cpu()  # (N, d)
    encoding = _model.encode(text)
    parts = input_parts(_model, encoding.ids)
    return {
        "table": table.numpy(),
        "sim": position_similarity(table, normalize=True).numpy(),
        "tokens": encoding.tokens,
        "n_dropped": encoding.n_dropped,
        "parts": {k: v.numpy() for k, v in parts.items()},
    }


@st.cache_data(max_entries=8)
def attention_variants(_model: TextModel, device: str, text: str, seed: int) -> dict:
    encoding = _model.encode(text)
    variants = run_variants(_model, encoding.ids, encoding.tokens, seed)
    return {
        "variants": variants,
        "n_dropped": encoding.n_dropped,
        "gap_removed": permutation_gap(
            variants["positions removed"], variants["shuffled, positions removed"]
        ),
        "gap_intact": permutation_gap(variants["positions intact"], variants["shuffled"]),
    }


def valid_channels(chosen: list[int], d: int) -> list[int]:
    kept = [c for c in chosen if 0 <= c < d]
    return kept or [0]


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
    try:
        view = sinusoidal_view(int(n), int(d), float(base))
    except ValueError as err:
        st.error(str(err))
        return
    if len(view["rows"]) < n or len(view["cols"]) < d:
        st.caption(f"Drawing {len(view['rows'])} of {n} positions and {len(view['cols'])} of {d} channels.")
    pe = view["pe"]
    st.plotly_chart(
        encoding_heatmap(pe[:, view["cols"]], view["rows"], view["cols"], f"sinusoidal, N={n}, d={d}"),
        key="sin_heatmap",
    )
    st.session_state.sin_channels = [c for c in st.session_state.sin_channels if c < d]
    channels = st.multiselect(
        "channels to draw as waves", list(range(int(d))), key="sin_channels", persist_state="session"
    )
    channels = valid_channels(channels, int(d))
    st.plotly_chart(
        channel_waves(pe, channels, view["rows"], "each channel is a wave; frequency falls with i"),
        key="sin_waves",
    )
    st.plotly_chart(
        similarity_heatmap(view["sim"], view["rows"], "PE[m] · PE[n] = Σ_i cos((m − n)·ω_i)"),
        key="sin_similarity",
    )
    st.caption(
        "The dot product depends on m − n only: every diagonal is constant, and it falls off with |m − n|."
    )


def learned_section(model: TextModel | None) -> None:
    st.markdown(
        "BERT-family models learn their positions: a table W with one row per position (512 × 384 for "
        "all-MiniLM-L6-v2). Reading row p is multiplying a length-N one-hot vector by the table — the seed "
        "note's d × N matrix (**S6**) — and the result is **added** to the token embedding."
    )
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
    view = learned_view(model, st.session_state.get("device", "cpu"), text)
    table = view["table"]
    rows, cols = sample(table.shape[0]), sample(table.shape[1])
    st.plotly_chart(
        encoding_heatmap(table[rows][:, cols], rows, cols, f"learned position table {table.shape}"),
        key="learned_heatmap",
    )
    channels = valid_channels(
        st.multiselect(
            "channels", list(range(table.shape[1])), key="learned_channels", persist_state="session"
        ),
        table.shape[1],
    )
    st.plotly_chart(
        channel_waves(table, channels, title="learned channels against position"), key="learned_waves"
    )
    st.plotly_chart(
        similarity_heatmap(view["sim"], title="cosine similarity of the learned rows", value_name="cosine"),
        key="learned_similarity",
    )
    st.caption("Learned from data, the rows still end up most similar to their neighbours.")
    parts, tokens = view["parts"], view["tokens"]
    if view["n_dropped"]:
        st.warning(f"The model has {table.shape[0]} positions; {view['n_dropped']} wordpieces were cut off.")
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
    labels = [f"{i} {t}" for i, t in enumerate(tokens)] if len(tokens) <= 64 else None
    cols3 = st.columns(3)
    for col, (key, title) in zip(
        cols3,
        [("token", "token embedding"), ("position_one_hot", "one-hot @ W"), ("sum", "sum (+ segment)")],
        strict=True,
    ):
        col.plotly_chart(
            encoding_heatmap(parts[key], title=title, row_labels=labels), key=f"learned_part_{key}"
        )
    st.caption(
        "Row p of the middle map is row p of the table: the one-hot vector of position p picks it. "
        "The model adds it to the token's row, then normalises the sum (LayerNorm)."
    )


def image_size() -> tuple[int, int] | None:
    upload = st.file_uploader(
        "or an image (only its size is used)", type=IMAGE_TYPES, key="detr_upload", max_upload_size=100
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
    if upload.size > MAX_UPLOAD_BYTES:
        st.error(f"{upload.name} is {upload.size:,} bytes; the limit is {MAX_UPLOAD_BYTES:,}.")
        return None
    try:
        h, w = upright_size(upload.getvalue(), upload.name)
    except UploadError as err:
        st.error(str(err))
        return None
    st.caption(f"{upload.name}: {h} × {w} pixels")
    return h, w


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
    padded = st.checkbox(
        "pad it as in a batch with a larger image (padding is masked)",
        key="detr_pad",
        persist_state="session",
    )
    pad_hw = resized
    if padded:
        c1, c2 = st.columns(2)
        pad_hw = (
            int(
                c1.number_input(
                    "batch height",
                    min_value=1,
                    max_value=1_000_000,
                    key="detr_pad_h",
                    persist_state="session",
                )
            ),
            int(
                c2.number_input(
                    "batch width", min_value=1, max_value=1_000_000, key="detr_pad_w", persist_state="session"
                )
            ),
        )
        if not (resized[0] <= pad_hw[0] <= DETR_LONGER_MAX and resized[1] <= pad_hw[1] <= DETR_LONGER_MAX):
            st.error(
                f"The batch must hold the resized image ({resized[0]} × {resized[1]}); no resized image in a "
                f"DETR batch is longer than {DETR_LONGER_MAX} pixels, so neither is the batch."
            )
            return
    mask = detr_feature_mask(resized, pad_hw)
    st.write(
        f"resized to {resized[0]} × {resized[1]} → feature map {feature[0]} × {feature[1]}"
        + (f", padded to {mask.shape[0]} × {mask.shape[1]}" if padded else "")
    )
    pos = detr_sine(mask)  # (256, H, W)
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
    st.plotly_chart(
        channel_maps(
            pos.numpy(),
            channels,
            [f"{c}: {detr_channel_name(c)}" for c in channels],
            "chosen channels over the feature map",
        ),
        key="detr_maps",
    )
    c1, c2 = st.columns(2)
    for key, size in (("detr_y", pos.shape[1]), ("detr_x", pos.shape[2])):  # keep the point on a smaller map
        st.session_state[key] = min(st.session_state.get(key, size // 3), size - 1)
    y = int(
        c1.number_input(
            "point y (row)", min_value=0, max_value=pos.shape[1] - 1, key="detr_y", persist_state="session"
        )
    )
    x = int(
        c2.number_input(
            "point x (column)", min_value=0, max_value=pos.shape[2] - 1, key="detr_x", persist_state="session"
        )
    )
    sim = similarity_to_point(pos, y, x).numpy()
    st.plotly_chart(
        point_similarity_map(sim, (y, x), f"cosine similarity of every position to ({y}, {x})"),
        key="detr_point",
    )
    st.caption(
        "Similarity falls off in both y and x around the point: half the channels see each axis. "
        "Padding cells get a degenerate encoding (x stops counting, y is 0 down a fully padded "
        "column); attention masks them, so it does not matter."
    )


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
    st.plotly_chart(
        rope_rotation(
            rotated[:, pair_ids].permute(1, 0, 2).numpy(),
            pair_ids,
            "q's channel pairs as position grows: fast pairs circle, slow pairs creep",
        ),
        key="rope_rotation",
    )
    scores = rope_scores(q, k, n, base)
    offsets, means, spreads = scores_by_offset(scores)
    drawn = sample(n)
    pe = sinusoidal(n, d, base).double()
    additive = (q + pe) @ (k + pe).T  # (N, N) absolute encoding added to the same q and k
    c1, c2 = st.columns(2)
    c1.plotly_chart(
        similarity_heatmap(
            scores[drawn][:, drawn].numpy(), drawn, "rope(q, m) · rope(k, n)", value_name="q·k"
        ),
        key="rope_scores",
    )
    c2.plotly_chart(
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


def attention_section(model: TextModel | None) -> None:
    st.markdown(
        "The same sentence through the real all-MiniLM-L6-v2, three ways: as is; with the position "
        "embeddings left out (a bag of words); and with its words shuffled ([CLS] and [SEP] stay)."
    )
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
    result = attention_variants(model, st.session_state.get("device", "cpu"), text, seed)
    variants = result["variants"]
    if result["n_dropped"]:
        st.warning(f"The model reads 512 wordpieces; {result['n_dropped']} were cut off.")
    probs = variants["positions intact"].probs
    c1, c2, c3 = st.columns(3)
    layer = c1.selectbox("layer", list(range(probs.shape[0])), key="attn_layer", persist_state="session")
    head = c2.selectbox("head", list(range(probs.shape[1])), key="attn_head", persist_state="session")
    reorder = c3.checkbox(
        "draw the shuffled run in the original word order", key="attn_reorder", persist_state="session"
    )
    for col, name in zip(st.columns(3), COMPARED, strict=True):
        variant = variants[name]
        matrix = variant.in_original_order() if reorder else variant.probs
        tokens = variants["positions intact"].tokens if reorder else variant.tokens
        col.plotly_chart(
            attention_heatmap(matrix[layer, head], tokens, tokens, f"{name}: layer {layer}, head {head}"),
            key=f"attn_map_{name}",
        )
        if len(tokens) > 1:
            col.metric(
                "weight on the previous position",
                f"{offset_share(variant.probs[layer, head], -1):.2f}",
                help="Mean over queries of the weight on the key just before them, in the order the "
                "model saw. Layer 0, head 2 of MiniLM is a previous-token head.",
            )
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
        values = {
            name: head_statistics(variants[name].probs, variants[name].tokens)[stat] for name in COMPARED
        }
        st.plotly_chart(statistic_comparison(values, STATISTICS[stat]), key=f"attn_stat_{stat}")
    st.caption(
        "Mean distance is measured in the positions the model saw. Heads that attend to the previous or "
        "next word (S11) lose that pattern when positions are removed; with the words shuffled they keep "
        "attending to the previous *position*, which now holds another word."
    )


def where_section() -> None:
    n_layers = st.slider("layers drawn", 1, 6, key="where_layers", persist_state="session")
    st.plotly_chart(where_added_diagram(n_layers), key="where_diagram")
    st.markdown(
        "- **BERT / GPT** add the position embedding to the token embedding once, before the first layer "
        "(**S6**); later layers see position only through the residual stream, and it reaches Q, K and V "
        "alike.\n"
        "- **DETR** adds its 2-D encoding (**S20**) before *every* encoder self-attention, and only to the "
        "query and key: `q = k = src + pos`, `value = src` (**S21**). Where things attend depends on "
        "position; what they carry does not."
    )


def main() -> None:
    for key, value in DEFAULTS.items():
        st.session_state.setdefault(key, value)
    st.title("Positional encodings")
    st.caption(
        "Attention is blind to order; these are the ways a transformer is told where each token is. "
        "Seed claims S6, S20, S21."
    )
    model = None
    try:
        model = get_model("all-MiniLM-L6-v2", st.session_state.get("device", "cpu"), kind="encoder")
    except ModelLoadError as err:
        st.error(f"Cannot load all-MiniLM-L6-v2: {err}")
    tabs = st.tabs(
        [
            "Sinusoidal",
            "Learned (MiniLM)",
            "DETR 2-D sine",
            "Rotary (RoPE)",
            "What position does to attention",
            "Where it is added",
        ]
    )
    sections = [
        sinusoidal_section,
        lambda: learned_section(model),
        detr_section,
        rope_section,
        lambda: attention_section(model),
        where_section,
    ]
    for tab, section in zip(tabs, sections, strict=True):
        with tab:
            section()


main()
