"""AppTest of the step-by-step page on MiniLM and on our causal GPT."""

import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

PAGE = str(Path(__file__).parents[1] / "app_pages" / "step_by_step.py")
GPT = "gpt-stdlib (causal decoder)"


def figure(at, key):
    chart = next(c for c in at.get("plotly_chart") if c.proto.id.endswith(key) or key in c.proto.id)
    return json.loads(chart.proto.spec)


def z(at, key) -> np.ndarray:
    """The z matrix of a chart's first trace (decoding plotly's typed-array form)."""
    data = figure(at, key)["data"][0]["z"]
    if isinstance(data, dict):
        import base64

        shape = tuple(int(n) for n in str(data["shape"]).split(","))
        return np.frombuffer(base64.b64decode(data["bdata"]), dtype=data["dtype"]).reshape(shape)
    return np.array(data, dtype=float)


def run_page(model=None, text=None):
    at = AppTest.from_file(PAGE, default_timeout=120)
    if text is not None:
        at.session_state["sbs_text"] = text
    at.run()
    if model is not None:
        at.sidebar.radio(key="sbs_model").set_value(model).run()
    return at


def query_box(at):
    return next(box for box in at.selectbox if box.label == "Query token")


def gaps(at) -> dict:
    table = at.dataframe[-1].value
    return dict(zip(table["stage"], table["largest |difference|"], strict=True))


def test_minilm_shows_every_stage_with_d_and_d_head():
    at = run_page(text="The cat sat on the mat.")
    assert not at.exception and not at.error
    x = z(at, "-x")
    t = x.shape[0]
    assert x.shape == (t, 384)
    for key in ("q_fig", "k_fig", "v_fig", "heads"):
        assert z(at, key).shape == (t, 32)  # d_head = 384 / 12
    assert z(at, "scores").shape == (t, t)
    assert not np.isnan(z(at, "masked")).any()  # one unpadded text: MiniLM masks nothing
    assert z(at, "concat").shape == (t, 384) and z(at, "output").shape == (t, 384)
    assert z(at, "w_q_fig").shape == (384, 32) and z(at, "w_o_fig").shape == (384, 384)
    assert z(at, "cols_a").shape == (t, t) and z(at, "cols_va").shape == (32, t)
    np.testing.assert_allclose(z(at, "cols_a"), z(at, "rows_a").T, atol=1e-6)
    assert max(gaps(at).values()) < 1e-4
    assert "d = 384" in figure(at, "-x")["layout"]["xaxis"]["title"]["text"]
    assert "d_head = 32" in figure(at, "q_fig")["layout"]["xaxis"]["title"]["text"]


def test_causal_model_masks_the_upper_triangle():
    at = run_page(GPT, text="abcabcabc")
    assert not at.exception and not at.error
    masked, probs, scores = z(at, "masked"), z(at, "probs"), z(at, "scores")
    upper = np.triu(np.ones((9, 9), dtype=bool), 1)
    assert np.isnan(masked[upper]).all() and np.isfinite(masked[~upper]).all()
    assert np.isnan(probs[upper]).all() and np.isfinite(scores).all()
    assert z(at, "-x").shape == (9, 128) and z(at, "q_fig").shape == (9, 32)
    assert "exactly 0" in next(m.value for m in at.markdown if "The mask removes" in m.value)
    assert max(gaps(at).values()) < 1e-4
    at.selectbox(key="sbs_layer").set_value(1).run()
    at.selectbox(key="sbs_head").set_value(3).run()
    query_box(at).set_value(4).run()
    assert not at.exception
    row = at.dataframe[0].value
    assert np.isneginf(row["masked"].to_numpy()[5:]).all() and (row["softmax"].to_numpy()[5:] == 0).all()


def test_switching_back_to_a_model_with_more_layers_keeps_working():
    at = run_page(GPT, text="short")
    query_box(at).set_value(4).run()
    at.sidebar.radio(key="sbs_model").set_value("MiniLM (bidirectional encoder)").run()
    assert not at.exception


@pytest.mark.parametrize("text", ["", "  \n "])
def test_empty_text_asks_for_text(text):
    at = run_page(text=text)
    assert not at.exception
    assert "Type some text" in at.info[0].value


def test_characters_outside_the_alphabet_and_long_text_are_reported():
    at = run_page(GPT, text="naïve café " * 30)
    assert not at.exception
    warnings = " ".join(w.value for w in at.warning)
    assert "'ï'" in warnings and "'é'" in warnings and "unknown token" in warnings
    assert "first 202 were dropped" in warnings
    assert z(at, "-x").shape == (128, 128)
