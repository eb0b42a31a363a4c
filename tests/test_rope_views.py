"""RoPE and grouped-query attention on a real Llama: models.rope_probe, viz.rope, and the pages that show
them (positional encodings, step by step, causal decoder) on a random tiny Llama (GQA 4:1) saved by
transformers with a byte-level BPE tokenizer."""

import base64
import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from models import rope, rope_probe
from models.llama_io import load_llama
from tests.conftest import figure, z
from tests.test_llama import TOKENIZER
from ui.llama_causal import LOCAL as CAUSAL_LOCAL
from ui.llama_models import LOCAL, RANDOM, gqa_label
from viz.heatmap import LEVELS
from viz.rope import drawn_pairs, pair_rotation

transformers = pytest.importorskip("transformers")

PAGES = Path(__file__).parents[1] / "app_pages"
TEXT = "def f(x):\n    return x + 1\n\nclass A:\n    pass\n" * 3


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    """8 query heads over 2 K/V heads (4:1), d_head 16, 512 positions."""
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=TOKENIZER.get_vocab_size(), hidden_size=64, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=8, num_key_value_heads=2, head_dim=16, max_position_embeddings=512,
        rope_theta=10000.0,
    )  # fmt: skip
    directory = tmp_path_factory.mktemp("llama41")
    transformers.LlamaForCausalLM(config).save_pretrained(directory)
    TOKENIZER.save(str(directory / "tokenizer.json"))
    return directory


# --- models.rope_probe ----------------------------------------------------------------------------------


def test_rotated_at_is_the_models_own_rotation():
    inv_freq = rope.inverse_frequencies(16, 10000.0, partial_rotary_factor=0.5)  # 8 of 16 channels turn
    x = torch.randn(16, generator=torch.Generator().manual_seed(0))
    positions = torch.tensor([0, 1, 7, 300])
    cos, sin = rope.cos_sin(inv_freq, positions, torch.float32)
    expected = rope.rotate(x.expand(4, 16), cos, sin)
    got = rope_probe.rotated_at(x, positions, inv_freq)
    torch.testing.assert_close(got.float(), expected, atol=1e-5, rtol=0)
    assert torch.equal(got[:, 8:].float(), x.expand(4, 16)[:, 8:])  # the unrotated channels pass as they are
    torch.testing.assert_close(got[0].float(), x)  # position 0 turns nothing


def test_scores_depend_on_the_offset_only():
    inv_freq = rope.inverse_frequencies(32, 500000.0)
    gen = torch.Generator().manual_seed(1)
    q, k = torch.randn(32, generator=gen), torch.randn(32, generator=gen)
    offsets = torch.arange(64)
    scores = rope_probe.scores_by_offset(q, k, inv_freq, offsets, [0, 100, 3000])
    assert scores.shape == (3, 64)
    assert float((scores - scores[0]).abs().max()) < 1e-10
    assert float(scores[0].std()) > 0.01  # not constant: the offset matters
    assert math.isclose(float(scores[0, 0]), float(q.double() @ k.double()) / math.sqrt(32), rel_tol=1e-12)


def test_decay_bound_starts_at_its_maximum_and_falls():
    inv_freq = rope.inverse_frequencies(64, 10000.0)
    n = len(inv_freq)
    bound = rope_probe.decay_bound(inv_freq, np.array([0, 1, 10, 100, 1000]))
    assert bound[0] == pytest.approx((n + 1) / 2)  # every phase 1: |S_j| = j, mean over j = 1..n
    assert bound[0] > bound[1] > bound[2] and bound[4] < bound[2]


def test_mean_by_distance_of_a_uniform_causal_map():
    t = 6
    probs = np.tril(np.ones((t, t))) / np.arange(1, t + 1)[:, None]  # row i: 1 / (i + 1) on keys 0..i
    got = rope_probe.mean_by_distance(probs)
    expected = [np.mean([1 / (i + 1) for i in range(d, t)]) for d in range(t)]
    np.testing.assert_allclose(got, expected)


# --- viz.rope and the head labels ---------------------------------------------------------------------


def test_pair_rotation_draws_the_given_points():
    before = {"q": np.array([[1.0, 0.0], [0.0, 2.0]]), "k": np.array([[0.5, 0.5], [1.0, 1.0]])}
    after = {"q": np.array([[0.0, 1.0], [-2.0, 0.0]]), "k": np.array([[-0.5, 0.5], [1.0, -1.0]])}
    angles = {"q": np.array([1.57, 1.57]), "k": np.array([0.0, 0.0])}
    fig = pair_rotation(before, after, [0, 3], angles)
    for name, part in (("q before", before["q"]), ("q after", after["q"]), ("k after", after["k"])):
        np.testing.assert_array_equal(drawn_pairs(fig, name), part)
    with pytest.raises(ValueError, match="expected"):
        pair_rotation(before, {"q": after["q"][:1], "k": after["k"]}, [0, 3], angles)


def test_gqa_labels_for_four_query_heads_per_kv_head():
    assert [gqa_label(h, 8, 2) for h in range(8)] == [f"head {h} · K/V {h // 4}" for h in range(8)]
    assert gqa_label("mean", 8, 2) == "mean over heads"


# --- pages ------------------------------------------------------------------------------------------------


def values(array) -> np.ndarray:
    """A figure's array as sent: a list, or plotly's typed array {"dtype", "bdata"}."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"]))
    return np.asarray(array, dtype=float)


def sent_pairs(spec: dict, name: str) -> np.ndarray:
    """drawn_pairs on a figure as the browser receives it."""
    return np.array([[values(t["x"])[-1], values(t["y"])[-1]] for t in spec["data"] if t.get("name") == name])


def app(page: str, **state) -> AppTest:
    at = AppTest.from_file(str(PAGES / page), default_timeout=180)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def test_positional_page_shows_offset_invariance_on_real_q_and_k(llama_dir):
    at = app(
        "positional.py", pos_tab="RoPE on a real model", rope_real_model=LOCAL, rope_real_path=str(llama_dir),
        rope_real_text=TEXT,
    )  # fmt: skip
    assert at.selectbox(key="rope_real_head").options == [f"head {h} · K/V {h // 4}" for h in range(8)]
    at.selectbox(key="rope_real_head").set_value(5).run()
    at.number_input(key="rope_real_j").set_value(3).run()
    assert not at.exception
    lines = figure(at, "rope_real_offsets")["data"]
    assert len(lines) == 3  # the key at 0, at 3 and at 256
    ys = np.array([values(line["y"]) for line in lines])
    assert np.abs(ys - ys[0]).max() < 1e-4 and ys.std() > 0  # the same curve wherever the pair sits
    # the model's own score at (i, j) is the curve's value at the offset i - j
    model = load_llama(llama_dir)
    ids = model.encode(TEXT, max_len=512).ids
    i, j = len(ids) - 1, 3
    out = model.run(ids, capture=True)
    layer = at.session_state["rope_real_layer"]
    record = out.attentions[layer]
    own = float(record.q[0, 5, i] @ record.k[0, 5, j]) / 4.0  # √d_head = 4
    assert abs(ys[0][i - j] - own) < 1e-4
    decay = figure(at, "rope_real_decay")["data"]
    bound = values(decay[0]["y"])
    assert bound[0] > bound[-1]


def test_positional_page_labels_the_untrained_fallback():
    at = app("positional.py", pos_tab="RoPE on a real model", rope_real_model=RANDOM, rope_real_text=TEXT)
    assert "Random weights" in " ".join(c.value for c in at.caption)
    ys = np.array([values(line["y"]) for line in figure(at, "rope_real_offsets")["data"]])
    assert np.abs(ys - ys[0]).max() < 1e-4


def test_step_by_step_rotation_equals_models_rope(llama_dir):
    at = app(
        "step_by_step.py", sbs_model="a Llama-family decoder (RoPE, grouped-query attention)",
        sbs_llama_model=LOCAL, sbs_llama_path=str(llama_dir), sbs_text=TEXT,
    )  # fmt: skip
    at.selectbox(key="sbs_llama_layer").set_value(1).run()
    at.selectbox(key="sbs_llama_head").set_value(6).run()
    at.number_input(key="sbs_llama_j").set_value(5).run()
    assert not at.exception
    model = load_llama(llama_dir)
    ids = model.encode(TEXT, max_len=512).ids
    i, j = len(ids) - 1, 5
    before = model.run(ids, capture=True, unrotated=True).unrotated[1]
    q0, k0 = before.q[0, 6, i], before.k[0, 1, j]  # query head 6 reads K/V head 6 // 4 = 1
    inv_freq = rope.inverse_frequencies(16, 10000.0)
    turned = {}
    for name, x, position in (("q", q0, i), ("k", k0, j)):
        cos, sin = rope.cos_sin(inv_freq, torch.tensor([position]), torch.float32)
        r = rope.rotate(x[None], cos, sin)[0]  # (16,)
        turned[name] = torch.stack((r[:8], r[8:]), dim=-1).numpy()  # pair c = channels (c, c + 8)
    drawn = figure(at, "sbs_rope_pairs")
    shown = [int(a["text"].split(":")[0].removeprefix("pair ")) for a in drawn["layout"]["annotations"]]
    assert shown == [0, 2, 5, 7]
    for name in ("q", "k"):
        np.testing.assert_allclose(sent_pairs(drawn, f"{name} after"), turned[name][shown], atol=1e-5)
    np.testing.assert_allclose(
        sent_pairs(drawn, "q before"), np.stack((q0[:8], q0[8:]), -1)[shown], atol=1e-6
    )
    text = " ".join(m.value for m in at.markdown)
    assert "head 6 reads K/V head 1" in " ".join(h.value for h in at.header)
    assert "query heads [4, 5, 6, 7] attend over the same keys and values" in text
    assert "largest difference between their k: 0)" in text


def test_causal_page_gqa_table_labels_and_grey_raster(llama_dir):
    text = "x = 1\n" * 80  # past 256 tokens: the map is drawn as a raster
    at = app("causal_decoder.py", cd_model=CAUSAL_LOCAL, cd_model_path=str(llama_dir), cdl_text_input=text)
    table = at.dataframe[0].value
    assert list(table.index) == ["K/V head 0", "K/V head 1"]
    assert (table.to_numpy() == "●").tolist() == [[h < 4 for h in range(8)], [h >= 4 for h in range(8)]]
    options = at.selectbox(key="cdl_head").options
    assert options[:8] == [f"head {h} · K/V {h // 4}" for h in range(8)]
    raster = figure(at, "cdl_text_raster")["data"][0]
    pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(raster["source"].split(",", 1)[1]))))
    t = pixels.shape[0]
    assert t > 256 and pixels.shape == (t, t)  # one pixel per cell below 1,024 tokens
    upper = np.triu(np.ones((t, t), dtype=bool), k=1)
    assert (pixels[upper] == LEVELS).all() and (pixels[~upper] < LEVELS).all()  # the future grey, only it
    headers = [h.value for h in at.header]
    assert headers.index("2 · One head on your text") < headers.index(
        "3 · What each head does at this length"
    )  # the head view first: it waits for one forward, the scores for every map of two inputs
    induction = z(at, "cdl_induction")
    best = np.unravel_index(induction.argmax(), induction.shape)
    at.button(key="cdl_best").click().run()
    assert not at.exception
    assert (at.session_state["cdl_layer"], at.session_state["cdl_head"]) == best
    title = figure(at, "cdl_text_raster")["layout"]["title"]["text"]
    assert title.startswith(f"layer {best[0]}, head {best[1]}")
