"""The receptive-field lab's default inputs and settings, shared by its page and its benchmark.

`DEFAULTS` maps the page's session-state keys to their first values; `benchmarks/bench_receptive.py`
times the computation these settings ask for, so both read them from here rather than from the page
(importing a page runs it).
"""

import numpy as np

from models.detr.scenes import make_scene
from models.receptive.sequence import MODEL_NAMES

TIMING_LENGTHS = [2**i for i in range(4, 12)]  # 16 .. 2048
TABLE_MODELS = ("Self-attention", "RNN", "CNN", "Local attention")  # the rows of the paper's Table 1
DEFAULT_SENTENCES = (
    "The cat sat on the mat.\n"
    "Attention lets every token look at every other token.\n"
    "A recurrent network reads one word at a time.\n"
    "A convolution sees only a small window."
)
DEFAULTS = {
    "rf_models": list(MODEL_NAMES),
    "rf_length": 64,
    "rf_width": 32,
    "rf_rnn_layers": 1,
    "rf_cnn_layers": 4,
    "rf_kernel": 3,
    "rf_dilation": 1,
    "rf_attn_layers": 1,
    "rf_heads": 4,
    "rf_radius": 4,
    "rf_causal": False,
    "rf_inits": 4,
    "rf_t": 32,
    "rf_log": True,
    "rf_timing_max": 512,
    "rf_img_seed": 0,
    "rf_img_size": 128,
    "rf_img_kernel": 3,
    "rf_img_depths": [1, 2, 4, 8, 16],
    "rf_conv_kernel": 3,
    "rf_alpha": 10.0,
    "rf_sentences": DEFAULT_SENTENCES,
    "rf_norm_layer": 3,
    "rf_norm_token": 1,
    "rf_norm_channel": 0,
    "rf_res_depth": 12,
}


def scene_image(seed: int, size: int) -> np.ndarray:
    """(3, size, size) in [0, 1]: a procedural shapes scene, the kind our DETR was trained on."""
    return make_scene(seed, size=size).image.transpose(2, 0, 1).astype(np.float32) / 255.0
