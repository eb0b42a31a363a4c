"""AppTest of the step-by-step page on MiniLM and on our causal GPT."""

import base64
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import models.bert
import models.gpt
from app_pages.step_by_step import STAGES
from tests.conftest import count_calls, figure
from viz.heatmap import MASK_GREY, masked_colour

PAGE = str(Path(__file__).parents[1] / "app_pages" / "step_by_step.py")
GPT = "gpt-stdlib (causal decoder)"


def z(at, key) -> np.ndarray:
    """The z matrix of a chart's first trace (decoding plotly's typed-array form)."""
    data = figure(at, key)["data"][0]["z"]
    if isinstance(data, dict):
        shape = tuple(int(n) for n in str(data["shape"]).split(","))
        return np.frombuffer(base64.b64decode(data["bdata"]), dtype=data["dtype"]).reshape(shape)
    return np.array(data, dtype=float)


@pytest.fixture
def forward_calls(monkeypatch):
    """Every forward of MiniLM or the GPT, by model class."""
    return count_calls(monkeypatch, (models.bert.BertModel, "forward"), (models.gpt.GPT, "forward"))


def run_page(model=None, text=None):
    at = AppTest.from_file(PAGE, default_timeout=120)
    if text is not None:
        at.session_state["sbs_text"] = text
    if model is not None:  # before the first run: the page runs only this model
        at.session_state["sbs_model"] = model
    return at.run()


def open_stage(at, label: str):
    """Open a stage's tab as a click does: the stateful tabs draw only the open stage."""
    at.session_state["sbs_stage"] = label
    at.run()
    assert not at.exception, at.exception
    return at


class EveryStage:
    """The charts of every stage, each tab opened in turn; `figure` and `z` read them like an AppTest's."""

    def __init__(self, at):
        self.charts = []
        for label in STAGES:
            self.charts += list(open_stage(at, label).get("plotly_chart"))
        open_stage(at, STAGES[0])

    def get(self, kind: str) -> list:
        return self.charts if kind == "plotly_chart" else []


def query_box(at):
    return at.number_input(key="sbs_query")


def gaps(at) -> dict:
    table = at.dataframe[-1].value
    return dict(zip(table["stage"], table["largest |difference|"], strict=True))


def test_minilm_shows_every_stage_with_d_and_d_head():
    at = run_page(text="The cat sat on the mat.")
    assert not at.exception and not at.error
    assert len(at.get("plotly_chart")) == 1  # only the open stage is drawn: X
    drawn = EveryStage(at)
    x = z(drawn, "-x")
    t = x.shape[0]
    assert x.shape == (t, 384)
    for key in ("q_fig", "k_fig", "v_fig", "heads"):
        assert z(drawn, key).shape == (t, 32)  # d_head = 384 / 12
    assert z(drawn, "scores").shape == (t, t)
    assert not np.isnan(z(drawn, "masked")).any()  # one unpadded text: MiniLM masks nothing
    assert z(drawn, "concat").shape == (t, 384) and z(drawn, "output").shape == (t, 384)
    assert z(drawn, "w_q_fig").shape == (384, 32)
    w_o = figure(drawn, "w_o_fig")  # 147,456 cells: past the core's cell budget, drawn as a raster
    assert w_o["data"][0]["type"] == "image" and "384 × 384" in w_o["layout"]["title"]["text"]
    assert z(drawn, "cols_a").shape == (t, t) and z(drawn, "cols_va").shape == (32, t)
    np.testing.assert_allclose(z(drawn, "cols_a"), z(drawn, "rows_a").T, atol=1e-6)
    assert max(gaps(at).values()) < 1e-4
    assert "d = 384" in figure(drawn, "-x")["layout"]["xaxis"]["title"]["text"]
    assert "d_head = 32" in figure(drawn, "q_fig")["layout"]["xaxis"]["title"]["text"]
    for key in ("scores", "scaled", "masked", "probs", "rows_a", "cols_a"):  # values printed rounded
        assert figure(drawn, key)["data"][0]["texttemplate"] == "%{z:.2f}"
    assert "texttemplate" not in figure(drawn, "-x")["data"][0]  # 384 channels: no numbers on cells


def test_causal_model_masks_the_upper_triangle():
    at = run_page(GPT, text="abcabcabc")
    assert not at.exception and not at.error
    assert z(at, "-x").shape == (9, 128)
    open_stage(at, STAGES[1])
    assert z(at, "q_fig").shape == (9, 32)
    open_stage(at, STAGES[2])
    masked, probs, scores = z(at, "masked"), z(at, "probs"), z(at, "scores")
    upper = np.triu(np.ones((9, 9), dtype=bool), 1)
    assert np.isnan(masked[upper]).all() and np.isfinite(masked[~upper]).all()
    assert np.isnan(probs[upper]).all() and np.isfinite(scores).all()
    assert masked_colour(figure(at, "masked")["layout"]) == MASK_GREY  # masked cells: the core's grey
    assert "exactly 0" in next(m.value for m in at.markdown if "The mask removes" in m.value)
    assert max(gaps(at).values()) < 1e-4
    at.selectbox(key="sbs_layer").set_value(1).run()
    at.selectbox(key="sbs_head").set_value(3).run()
    query_box(at).set_value(4).run()
    assert not at.exception
    assert "Query **4: b**" in " ".join(m.value for m in at.markdown)
    drawn = [s for s in figure(at, "masked")["layout"]["shapes"] if s.get("layer") != "below"]
    assert drawn[0]["y0"] == 3.5  # the query's row is outlined (over the mask's grey backing)
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


@pytest.mark.parametrize("model", [None, GPT])
def test_layer_head_and_query_never_rerun_the_model(forward_calls, model):
    at = run_page(model, text="A text seen by this test only: forwards are counted.")
    assert not at.exception
    assert forward_calls == ["GPT" if model else "BertModel"]  # every layer captured in one forward
    x = z(at, "-x")
    at.selectbox(key="sbs_layer").set_value(1).run()
    assert not np.array_equal(z(at, "-x"), x)  # layer 1 reads another X
    at.selectbox(key="sbs_head").set_value(2).run()
    query_box(at).set_value(3).run()
    at.selectbox(key="sbs_layer").set_value(0).run()
    assert not at.exception
    np.testing.assert_array_equal(z(at, "-x"), x)
    open_stage(at, STAGES[1])  # another stage: no forward either
    assert "of head 2" in figure(at, "q_fig")["layout"]["xaxis"]["title"]["text"]
    assert len(forward_calls) == 1


def test_a_new_text_starts_the_query_at_its_last_token():
    at = run_page(GPT, text="abcdef")
    assert query_box(at).value == 5
    query_box(at).set_value(1).run()
    at.text_area(key="sbs_text").input("abc").run()
    assert not at.exception and query_box(at).value == 2
    at.text_area(key="sbs_text").input("abcdefgh").run()
    assert query_box(at).value == 7
