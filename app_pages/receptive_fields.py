"""Receptive-field lab: what RNNs, CNNs and self-attention see, measured on the same input (S1-S3, S7-S9).

The tabs are stateful: a visit draws (and computes) the open tab's section only, and opening another tab
draws that one. Each section is a fragment, so a control reruns its own section only. Two pairs of
sections share an input: the model settings feed the sequence and the parallelism sections, the sentences
feed the norms and the residual sections; the other section of a pair reads the input when its tab is
opened. Results are kept per input: the gradient maps and MiniLM's activations once per process without
copies (`ui.results`), the small ones in `st.cache_data`.
"""

from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch

from models.bert import TextModel
from models.detr.api import Detector
from models.detr.scenes import make_scene
from models.errors import ModelLoadError
from models.receptive.conv_attention import error_vs_alpha, head_maps
from models.receptive.defaults import DEFAULT_SENTENCES, DEFAULTS, TABLE_MODELS, TIMING_LENGTHS, scene_image
from models.receptive.image import (
    MAX_DEPTH_2D,
    MAX_GRADIENT_WORK,
    MAX_IMAGE_SIDE,
    cnn_field_2d,
    detr_encoder_span,
    field_distance_2d,
    gradient_work,
    largest_kernel,
    theoretical_radius_2d,
)
from models.receptive.norms import (
    MAX_RESIDUAL_DEPTH,
    axis_stats,
    batch_norm,
    layer_norm,
    residual_trace,
    sentence_batch,
)
from models.receptive.parallelism import complexity_table, time_forward
from models.receptive.sequence import (
    LIMITS,
    MODEL_NAMES,
    SeqConfig,
    check_config,
    check_work,
    cnn_width_vs_depth,
    effective_field,
    field_width,
    largest_fitting,
    longest_timing,
    sequential_steps,
    theoretical_field,
)
from ui.export import chart
from ui.models import get_model
from ui.results import computed, digest
from ui.widgets import clamped_int, device
from viz.norms import norm_axes_figure, norm_stats_figure, residual_figure
from viz.receptive import (
    construction_error_figure,
    effective_field_figure,
    field_maps_figure,
    head_maps_figure,
    span_figure,
    timing_figure,
    width_vs_depth_figure,
)

MAX_SENTENCES = 16
MAX_SENTENCE_TOKENS = 48
MAX_SEED = 2**31 - 1
TAB_KEY = "rf_tab"  # the open tab's label; only that tab's section runs


@st.cache_data(max_entries=64, show_spinner=False)
def field_of(name: str, cfg: SeqConfig, t: int, n_inits: int, device: str) -> np.ndarray:
    return effective_field(name, cfg, t, n_inits=n_inits, device=device)


@st.cache_data(max_entries=512, show_spinner=False)
def time_of(name: str, cfg: SeqConfig, length: int, device: str) -> float:
    return float(time_forward(name, cfg, [length], device=device)[0])


@st.cache_data(max_entries=8, show_spinner=False)
def table_of(cfg: SeqConfig, layer_times: dict) -> list[dict]:
    return complexity_table(cfg, layer_times)


@st.cache_data(max_entries=8, show_spinner=False)
def residual_traces(x: np.ndarray, depth: int, n_heads: int) -> dict:
    x = torch.from_numpy(x)
    return {
        "with skip: x + MHA(LN(x))": vars(residual_trace(x, depth, n_heads, skip=True)),
        "without skip: MHA(LN(x))": vars(residual_trace(x, depth, n_heads, skip=False)),
    }


@st.cache_data(max_entries=8, show_spinner=False)
def width_vs_depth(cfg: SeqConfig, depths: tuple[int, ...], n_inits: int, device: str) -> dict:
    return cnn_width_vs_depth(cfg, list(depths), n_inits=n_inits, device=device)


def gradient_map(seed: int, size: int, kernel: int, depth: int) -> np.ndarray:
    """(size, size) |∂y_centre/∂x| of a random CNN of this depth on the scene, once per process."""
    key = digest("rf_gradient_map", seed, size, kernel, depth)
    return computed(key, lambda: cnn_field_2d(scene_image(seed, size), [depth], kernel_size=kernel)[0])


@st.cache_data(max_entries=8, show_spinner="Running DETR…")
def detr_span(_detector: Detector, name: str, device: str, seed: int, size: int) -> tuple[np.ndarray, float]:
    return detr_encoder_span(_detector, make_scene(seed, size=size).image)


@st.cache_data(max_entries=4, show_spinner=False)
def construction(kernel: int) -> tuple[np.ndarray, np.ndarray]:
    return error_vs_alpha(kernel_size=kernel, size=10, alphas=np.logspace(-1, 1.7, 18))


@dataclass(frozen=True)
class Activations:
    """MiniLM's hidden states of every layer for a batch of sentences. Shared: never mutated."""

    states: np.ndarray  # (L+1, B, T, d) float32; 0 = the embeddings, padding included
    mask: np.ndarray  # (B, T) int64: 1 for a real token, 0 for padding
    labels: list[str]  # "sentence:token" for each real token, in order

    @property
    def nbytes(self) -> int:
        return self.states.nbytes + self.mask.nbytes


def activations(model: TextModel, sentences: tuple[str, ...]) -> Activations:
    """The batch's hidden states, computed once per (model, sentences) per process."""

    def run() -> Activations:
        ids, mask, labels = sentence_batch(model, sentences)
        with torch.no_grad():
            out = model.model(ids.to(model.device), attention_mask=mask.to(model.device))
        states = torch.stack(out.hidden_states).float().cpu().numpy()  # (L+1, B, T, d)
        return Activations(states, mask.numpy(), labels)

    key = digest("rf_activations", model.name, str(model.device), id(model.model), sentences)
    return computed(key, run, spinner="Running MiniLM…")


def init_state() -> None:
    for key, value in DEFAULTS.items():
        st.session_state.setdefault(key, value)


def whole(label: str, key: str, low: int, high: int, note: str = "", container=None, on_change=None) -> int:
    """A number input kept in [low, high] (ui.widgets.clamped_int), its help naming the limit. A value
    the session holds outside the range (set before the widget was drawn, or a range that shrank) is
    brought inside it, with a message naming the limit."""
    asked = st.session_state.get(key)
    help = f"{low} to {high}" + (f"; {note}" if note else "")
    value = clamped_int(label, key, low, high, DEFAULTS[key], container, help, on_change)
    if isinstance(asked, (int, float)) and not low <= asked <= high:
        (container or st).warning(
            f"{label} = {asked:g} is outside the limit [{low}, {high}]; {value} is used"
        )
    return value


# SeqConfig field -> (session key, least, most): the most a setting can be whatever the others are; the
# widgets' maxima are lower where the others make the effective field need more than a computation may
# take (models.receptive.sequence.largest_fitting)
SETTINGS = {
    "length": ("rf_length", 2, LIMITS.max_length),
    "d_model": ("rf_width", 2, LIMITS.max_width),
    "cnn_layers": ("rf_cnn_layers", 1, LIMITS.max_layers),
    "attn_layers": ("rf_attn_layers", 1, LIMITS.max_layers),
    "n_heads": ("rf_heads", 1, LIMITS.max_width),
    "radius": ("rf_radius", 0, LIMITS.max_length),
    "rnn_layers": ("rf_rnn_layers", 1, LIMITS.max_layers),
}


def session_settings() -> SeqConfig:
    """The model settings the session holds before this run's widgets, each inside its widest range."""
    held = {}
    for field, (key, low, high) in SETTINGS.items():
        value = st.session_state.get(key, DEFAULTS[key])
        held[field] = int(min(max(value, low), high)) if isinstance(value, (int, float)) else DEFAULTS[key]
    return SeqConfig(**held)


def held_config() -> SeqConfig | None:
    """The model settings for the parallelism section: as the sequence section last kept them
    (st.session_state.rf_cfg), or, before it has run in this session, the settings the session holds within
    the limits the sequence section's widgets would apply; None when they break a limit."""
    if "rf_cfg" in st.session_state:
        return st.session_state.rf_cfg
    held = session_settings()
    fit = {field: largest_fitting(held, field, low, high) for field, (_, low, high) in SETTINGS.items()}
    fitted = {field: min(getattr(held, field), fit[field]) for field in SETTINGS}
    fitted["n_heads"] = min(fitted["n_heads"], fitted["d_model"])

    def setting(key: str, high: int) -> int:
        value = st.session_state.get(key, DEFAULTS[key])
        return int(min(max(value, 1), high)) if isinstance(value, (int, float)) else DEFAULTS[key]

    cfg = SeqConfig(
        **fitted,
        kernel_size=setting("rf_kernel", LIMITS.max_kernel),
        dilation=setting("rf_dilation", LIMITS.max_dilation),
        causal=bool(st.session_state.get("rf_causal", False)),
    )
    try:
        check_config(cfg)
    except ValueError:
        return None
    return cfg


def sequence_controls() -> tuple[SeqConfig | None, list[str], int, bool]:
    """The model settings and the sequence section's own controls. The settings are kept in
    st.session_state.rf_cfg for the parallelism section: None, with the error shown, when they break a
    limit."""
    held = session_settings()
    fit = {field: largest_fitting(held, field, low, high) for field, (_, low, high) in SETTINGS.items()}
    cols = st.columns(4)
    with cols[0]:
        length = whole("sequence length T", "rf_length", 2, fit["length"])
        width = whole("width d", "rf_width", 2, fit["d_model"], "even")
        n_inits = whole("random initialisations", "rf_inits", 1, LIMITS.max_inits, "each sees 4 inputs")
    with cols[1]:
        cnn_layers = whole("CNN depth", "rf_cnn_layers", 1, fit["cnn_layers"])
        kernel = whole("CNN kernel size k", "rf_kernel", 1, LIMITS.max_kernel)
        dilation = whole("CNN dilation", "rf_dilation", 1, LIMITS.max_dilation)
    with cols[2]:
        attn_layers = whole("attention layers", "rf_attn_layers", 1, fit["attn_layers"])
        heads = whole("attention heads", "rf_heads", 1, min(width, fit["n_heads"]), "must divide d")
        radius = whole("local window radius r", "rf_radius", 0, fit["radius"], "sees |t − s| ≤ r")
    with cols[3]:
        rnn_layers = whole("recurrent layers", "rf_rnn_layers", 1, fit["rnn_layers"])
        causal = st.checkbox(
            "causal CNN and attention",
            key="rf_causal",
            persist_state="session",
            help="see only s ≤ t",
        )
        log = st.checkbox("log scale", key="rf_log", persist_state="session")
    models = st.multiselect("models", MODEL_NAMES, key="rf_models", persist_state="session")
    cfg = SeqConfig(
        length, width, rnn_layers, cnn_layers, kernel, dilation, attn_layers, heads, radius, causal
    )
    try:
        check_config(cfg)
    except ValueError as err:
        st.error(str(err))
        cfg = None
    st.session_state.rf_cfg = cfg
    return cfg, models, n_inits, log


def field_rows(gradients: dict, fields: dict, t: int) -> list[dict]:
    """One row per model: theoretical field, effective radius, and how much reaches the far end."""
    rows = []
    for name, g in gradients.items():
        first, last = fields[name]
        far = 0 if t >= len(g) / 2 else len(g) - 1  # the input position farthest from t
        rows.append(
            {
                "model": name,
                "theoretical field": f"s = {first}..{last} ({last - first + 1} positions)",
                "effective radius (RMS |s − t|)": round(field_width(g, t), 2),
                f"|∂y_t/∂x_s| at s = {far} / at s = t": f"{g[far] / g[t]:.1e}",
            }
        )
    return rows


@st.fragment(key="sequence_section")
def sequence_section(device: str) -> None:
    st.subheader("Effective receptive field on a sequence (S1, S3)")
    st.caption(
        "Every model reads the same random (B, T, d) input. For output position t we back-propagate a "
        "gradient of 1 on every channel of y_t and record |∂y_t/∂x_s| summed over channels, averaged over "
        "random initialisations and inputs (Luo et al., 2016). The bars under the chart are the "
        "theoretical fields. Recurrent networks (S1) run over the same sequence as the others; their "
        "gradient decays with the distance t − s. The CNN sees a sliding window (S3); self-attention "
        "reaches every position from its first layer (it has no positional encoding here, so its "
        "gradient is nearly flat)."
    )
    cfg, models, n_inits, log = sequence_controls()
    if cfg is None:
        return
    try:
        check_work(cfg, n_inits=n_inits)
    except ValueError as err:
        st.error(str(err))
        return
    st.session_state.rf_t = min(max(st.session_state.rf_t, 0), cfg.length - 1)
    t = st.slider("output position t", 0, cfg.length - 1, key="rf_t", persist_state="session")
    if not models:
        st.warning("Choose at least one model.")
        return
    effective_fields(cfg, models, t, n_inits, log, device)
    cnn_depth_curve(cfg, n_inits, device)


def effective_fields(cfg: SeqConfig, models: list[str], t: int, n_inits: int, log: bool, device: str) -> None:
    bar = st.progress(0.0, text="measuring gradients…")
    gradients, fields = {}, {}
    for i, name in enumerate(models):
        gradients[name] = field_of(name, cfg, t, n_inits, device)
        fields[name] = theoretical_field(name, cfg, t)
        bar.progress((i + 1) / len(models), text=f"measured {name}")
    bar.empty()
    chart(effective_field_figure(gradients, fields, t, log=log), key="rf_erf_chart")
    st.dataframe(field_rows(gradients, fields, t), hide_index=True, key="rf_erf_table")


def cnn_depth_curve(cfg: SeqConfig, n_inits: int, device: str) -> None:
    curve = width_vs_depth(cfg, (1, 2, 4, 8, 16), n_inits, device)
    left, right = st.columns([3, 2])
    chart(
        width_vs_depth_figure(curve["depth"], curve["effective"], curve["theoretical"]),
        key="rf_depth",
        where=left,
    )
    right.markdown(
        "**The CNN's effective field grows like √depth (S3).** Its theoretical field grows linearly "
        "with depth, (k − 1)·dilation positions per layer, but the gradient is a sum over paths through "
        "the stack, and most paths stay near the centre: the profile is close to a Gaussian whose width "
        "grows with the square root of the depth (Luo et al., 2016). Dilation widens both."
    )


@st.fragment(key="parallelism_section")
def parallelism_section(device: str) -> None:
    cfg = held_config()
    if cfg is None:
        st.warning("Fix the sequence settings in the first tab.")
        return
    st.subheader("Parallelism: forward time against length (S2)")
    st.caption(
        "One batch-1 forward pass per length on the current device (on CPU, one thread, so that other "
        "processes' scheduling does not swamp the tiny models), the fastest of up to 5 after a warm-up. "
        "A recurrent layer has n steps that each wait for the previous one: its time grows step by step "
        "with n. Convolution and attention have as many sequential steps as layers; their work grows "
        "with n (n² for full attention) but runs in parallel."
    )
    top = whole("longest length", "rf_timing_max", 16, longest_timing(cfg, 16, LIMITS.max_timing_length))
    try:
        check_work(cfg, longest=top)
    except ValueError as err:
        st.error(str(err))
        return
    timing_sweep(cfg, tuple(n for n in TIMING_LENGTHS if n <= top), device)
    complexity(cfg, device)


def timing_sweep(cfg: SeqConfig, lengths: tuple[int, ...], device: str) -> None:
    bar = st.progress(0.0, text="timing…")
    times, steps = {}, {}
    done, total = 0, len(MODEL_NAMES) * len(lengths)
    for name in MODEL_NAMES:
        model_times = []
        for n in lengths:
            model_times.append(time_of(name, cfg, n, device))
            done += 1
            bar.progress(done / total, text=f"timed {name} at n = {n}")
        times[name] = np.array(model_times)
        steps[name] = np.array([sequential_steps(name, cfg, n) for n in lengths], dtype=float)
    bar.empty()
    chart(timing_figure(np.array(lengths), times, steps, device), key="rf_timing")


def complexity(cfg: SeqConfig, device: str) -> None:
    st.markdown(
        f"**Table 1 of “Attention Is All You Need”, with this configuration's numbers (n = {cfg.length}).**"
    )
    layer_times = {name: time_of(name, cfg, cfg.length, device) for name in TABLE_MODELS}
    st.dataframe(table_of(cfg, layer_times), hide_index=True)
    st.caption(
        "Multiply-adds count the mixing step of one layer from its shapes, as in the paper. Time per "
        "layer is the measured forward time of the stack divided by its depth. The measured path length "
        "reads one layer's connectivity from the exact zeros of its input gradient and stacks layers "
        "until the first and last positions are linked. Our restricted attention gathers a window of "
        "2r + 1 keys per query, so its work is O(r·n·d) as in the paper, not a masked n × n matrix."
    )


@st.fragment
def image_section(device: str) -> None:
    st.subheader("Receptive fields on an image: CNN against the DETR encoder")
    st.caption(
        "Left: the gradient |∂y/∂x| of the centre output of a random K×K CNN (tanh after each "
        "layer) over the input image, averaged over 4 initialisations, for several depths; the dotted "
        "square is the theoretical field. Right: the span of self-attention in the encoder of our DETR "
        "on the same image, the mean attention distance of each head in each layer (Dosovitskiy et "
        "al., 2021): Σ_j p_ij‖pos_i − pos_j‖ over the feature cells, averaged over queries, converted "
        "to pixels of the image. Both are mean distances in pixels."
    )
    cols = st.columns(4)
    seed = whole("scene", "rf_img_seed", 0, MAX_SEED, "the procedural scene's seed", cols[0])
    size = whole("image side (pixels)", "rf_img_size", 8, MAX_IMAGE_SIDE, container=cols[1])
    depths = sorted(st.session_state.get("rf_img_depths") or [1])  # the multiselect's, drawn after
    top = largest_kernel(size, depths)  # the gradient maps of every depth within MAX_GRADIENT_WORK
    kernel = whole("kernel size", "rf_img_kernel", 1, top, f"odd; at most {top} for these depths", cols[2])
    depths = cols[3].multiselect(
        "CNN depths", [1, 2, 4, 8, 16, 24, 32], key="rf_img_depths", persist_state="session"
    )
    if not depths:
        st.warning("Choose at least one depth.")
        return
    depths = sorted(depths)
    if gradient_work(size, kernel, depths) > MAX_GRADIENT_WORK:
        st.error(
            f"Kernel size {kernel} at depths {depths} would take more than about 6 s; the largest that "
            f"fits is {largest_kernel(size, depths)}. Lower the kernel or drop the deepest depths."
        )
        return
    distances = cnn_maps(seed, size, kernel, depths)
    if distances is not None:
        detr_spans(seed, size, depths, distances, device)


def cnn_maps(seed: int, size: int, kernel: int, depths: list[int]) -> list[float] | None:
    """Draw the gradient map of each depth around the centre; their mean distances in pixels, or None
    (with the error shown) when the kernel breaks a limit."""
    bar = st.progress(0.0, text="back-propagating through each depth…")
    try:
        maps = []
        for i, depth in enumerate(depths):
            maps.append(gradient_map(seed, size, kernel, depth))
            bar.progress((i + 1) / len(depths), text=f"gradient map at depth {depth}")
    except ValueError as err:
        st.error(str(err))
        return None
    finally:
        bar.empty()
    radii = np.array([theoretical_radius_2d(d, kernel) for d in depths])
    half = min(int(radii.max()) + 3, size // 2)  # draw the centre window the deepest field covers
    window = slice(size // 2 - half, size // 2 + half + 1)
    image = scene_image(seed, size).mean(0)[window, window]
    shown = np.stack([m[window, window] for m in maps])
    chart(field_maps_figure(shown, depths, radii, image=image), key="rf_maps")
    st.caption(
        f"The central {2 * half + 1} × {2 * half + 1} pixels of the {size} × {size} scene; the gradient is "
        "exactly zero outside the theoretical field."
    )
    return [field_distance_2d(m) for m in maps]


def detr_spans(seed: int, size: int, depths: list[int], distances: list[float], device: str) -> None:
    try:
        detector = get_model("detr-shapes", device, kind="detr")
        spans, uniform = detr_span(detector, detector.name, device, seed, size)
    except ModelLoadError as err:
        spans = uniform = None
        st.info(f"The DETR side needs our trained detector, which could not be loaded: {err}")
    chart(span_figure(depths, distances, spans, uniform), key="rf_span")
    if spans is not None:
        st.caption(
            f"DETR encoder heads: {spans.min():.0f} to {spans.max():.0f} pixels (first layer "
            f"{spans[0].min():.0f} to {spans[0].max():.0f}; attending evenly to the whole image would give "
            f"{uniform:.0f}), between the feature cells of its ResNet backbone; the random CNN's gradient "
            f"reaches {distances[-1]:.1f} pixels at depth {depths[-1]} (depth limit {MAX_DEPTH_2D})."
        )


@st.fragment
def construction_section() -> None:
    st.subheader("A CNN is a special self-attention (S7)")
    st.caption(
        "Cordonnier, Loukas and Jaggi (ICLR 2020): K² heads with a quadratic relative-position score "
        "−α‖(p − q) − Δ_h‖², one head per kernel offset Δ_h; every head reads the input itself and its "
        "output projection is the kernel slice W[:, :, Δ_h]. As the sharpness α grows, each head's "
        "softmax puts all its weight on the pixel at its offset and the sum over heads is the "
        "convolution. Local-window attention in the sequence lab above is the same idea in 1-D."
    )
    left, right = st.columns(2)
    kernel = left.selectbox("kernel size K", [3, 5], key="rf_conv_kernel", persist_state="session")
    alpha = right.slider("α for the head maps", 0.1, 50.0, key="rf_alpha", persist_state="session")
    alphas, errors = construction(kernel)
    chart(construction_error_figure(alphas, errors), key="rf_construction", where=left)
    chart(head_maps_figure(head_maps(kernel, alpha), kernel), key="rf_head_maps", where=right)


def minilm(device: str) -> TextModel | None:
    try:
        return get_model("all-MiniLM-L6-v2", device, kind="encoder")
    except ModelLoadError as err:
        st.error(f"MiniLM could not be loaded: {err}")
        return None


def sentence_lines() -> tuple[str, ...]:
    return tuple(s.strip() for s in st.session_state.rf_sentences.splitlines() if s.strip())


@st.fragment(key="norms_section")
def norms_section(device: str) -> None:
    st.subheader("Layer norm against batch norm on MiniLM activations (S8)")
    st.text_area(
        "sentences, one per line",
        key="rf_sentences",
        persist_state="session",
        help=f"1 to {MAX_SENTENCES} sentences",
    )
    sentences = sentence_lines()
    if not sentences:
        st.warning("Enter at least one sentence.")
        return
    if len(sentences) > MAX_SENTENCES:
        st.error(f"{len(sentences)} sentences exceed the limit of {MAX_SENTENCES}; remove some lines")
        return
    model = minilm(device)
    if model is None:
        return
    long = [i for i, s in enumerate(sentences) if len(model.encode(s).ids) > MAX_SENTENCE_TOKENS]
    if long:
        st.error(f"sentence {long[0] + 1} has more than {MAX_SENTENCE_TOKENS} tokens, the limit; shorten it")
        return
    norm_views(activations(model, sentences))


def norm_views(acts: Activations) -> None:
    n_layers, d = len(acts.states) - 1, acts.states.shape[-1]
    cols = st.columns(3)
    layer = cols[0].slider(
        "hidden state (0 = embeddings)", 0, n_layers, key="rf_norm_layer", persist_state="session"
    )
    n_tokens = len(acts.labels)
    st.session_state.rf_norm_token = min(st.session_state.rf_norm_token, n_tokens - 1)
    row = cols[1].slider(
        "token outlined (layer norm's axis)", 0, n_tokens - 1, key="rf_norm_token", persist_state="session"
    )
    channel = cols[2].slider(
        "channel outlined (batch norm's axis)", 0, d - 1, key="rf_norm_channel", persist_state="session"
    )
    h, mask = torch.from_numpy(acts.states[layer]), torch.from_numpy(acts.mask)  # views, not copies
    versions = {"before": h, "layer norm": layer_norm(h), "batch norm": batch_norm(h, mask)}
    real = {k: v[mask.bool()].numpy() for k, v in versions.items()}  # (N, d) real tokens only
    st.markdown(
        "Each row is a real token of the batch (sentence:token), each column a channel of d = "
        f"{d}. **Layer norm** (black row) averages over the d channels of one token, with no other "
        "sample involved: the same token gets the same result in any batch. **Batch norm** (green "
        "column) averages one channel over every token of the batch, so a token's result depends on "
        "the other sentences. Padding is excluded from both."
    )
    chart(
        norm_axes_figure(real["before"], real["layer norm"], real["batch norm"], acts.labels, row, channel),
        key="rf_norm_axes",
    )
    stats = {label: vars(axis_stats(v, mask)) for label, v in versions.items()}
    chart(norm_stats_figure(stats), key="rf_norm_stats")


@st.fragment(key="residual_section")
def residual_section(device: str) -> None:
    st.subheader("Residual connections keep a deep stack from degrading (S9)")
    depth = whole("attention layers", "rf_res_depth", 1, MAX_RESIDUAL_DEPTH)
    model = minilm(device)
    if model is None:
        return
    first = next(iter(sentence_lines()), DEFAULT_SENTENCES.splitlines()[0])
    x = activations(model, (first,)).states[0, 0]  # (T, d): MiniLM's embedding output of the first sentence
    n_heads = model.config.num_attention_heads
    chart(residual_figure(residual_traces(x, depth, n_heads)), key="rf_residual")
    st.caption(
        f"The tokens of “{first}” (MiniLM's embedding output) pass through {depth} randomly initialised "
        f"attention blocks with {n_heads} heads. Attention averages token vectors, so without the skip "
        "connection the tokens collapse onto one vector (cosine → 1, effective rank → 1) and what "
        "distinguished them is gone; the gradient reaching early layers only carries that common "
        "direction. With the skip, each block adds to the tokens instead of replacing them "
        "(Dong, Cordonnier and Loukas, 2021)."
    )


def main() -> None:
    init_state()
    st.title("Receptive-field lab")
    st.markdown(
        "What does each output position see? RNN, LSTM, GRU, a CNN and self-attention run on the same "
        "input, and the lab measures their receptive fields, their parallelism, and the building blocks "
        "(norms, residuals) around attention."
    )
    with st.expander("Claims demonstrated here"):
        st.markdown(
            "- **S1** RNNs are very good at sequences: RNN/LSTM/GRU run over the same input as the others.\n"
            "- **S2** RNNs are hard to parallelise: forward time and sequential steps against length.\n"
            "- **S3** A CNN is a sliding window with little context: theoretical and effective field "
            "against depth and kernel size.\n"
            "- **S7** A CNN is a special self-attention that only looks nearby: local-window attention, "
            "and multi-head attention reproducing a convolution.\n"
            "- **S8** Layer norm normalises each sample, batch norm each channel: on MiniLM activations.\n"
            "- **S9** The residual connection keeps a deep network from degrading: a deep attention "
            "stack with and without it."
        )
    sections = {
        "Sequences": lambda: sequence_section(device()),
        "Parallelism": lambda: parallelism_section(device()),
        "Images": lambda: image_section(device()),
        "CNN = attention": construction_section,
        "Norms": lambda: norms_section(device()),
        "Residuals": lambda: residual_section(device()),
    }
    # Stateful tabs: only the open tab's section runs, so a visit computes one section; opening another
    # tab reruns the page and computes that one
    tabs = st.tabs(list(sections), key=TAB_KEY, on_change="rerun")
    for tab, section in zip(tabs, sections.values(), strict=True):
        with tab:
            if tab.open:
                section()


if __name__ == "__main__":  # Streamlit runs a page as __main__; the benchmark imports its defaults
    main()
