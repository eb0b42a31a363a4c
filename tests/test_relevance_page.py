"""AppTest of the relevance and head importance page, and of the DETR page's relevance section: each
model kind draws, and controls never rerun the model."""

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import models.bert
import models.gpt
import models.seq2seq
from ui.relevance import EXAMPLES

PAGE = str(Path(__file__).parents[1] / "app_pages" / "relevance_ablation.py")
DETR_PAGE = str(Path(__file__).parents[1] / "app_pages" / "detr.py")


def chart(at, key) -> dict:
    found = next(c for c in at.get("plotly_chart") if c.proto.id.endswith(key) or key in c.proto.id)
    return json.loads(found.proto.spec)


def z(at, key) -> np.ndarray:
    data = chart(at, key)["data"][0]["z"]
    if isinstance(data, dict):  # plotly's typed-array encoding
        shape = tuple(int(n) for n in str(data["shape"]).split(","))
        return np.frombuffer(base64.b64decode(data["bdata"]), dtype=data["dtype"]).reshape(shape)
    return np.array(data, dtype=float)


@pytest.fixture
def forwards(monkeypatch) -> list:
    """Every forward of a text model from here on (the encoder–decoder's by its encoder passes)."""
    calls = []
    for cls, method in ((models.bert.BertModel, "forward"), (models.gpt.GPT, "forward"),
                        (models.seq2seq.Seq2Seq, "encode")):  # fmt: skip
        original = getattr(cls, method)

        def counting(self, *args, _original=original, **kwargs):
            calls.append(type(self).__name__)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, method, counting)
    return calls


def page(model: str, text: str, importance: bool = True) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=180)
    at.session_state["ra_model"] = model
    at.session_state["ra_imp_on"] = importance  # the head importance is computed when asked
    kind = {"all-MiniLM-L6-v2": "encoder", "gpt-stdlib": "causal", "seq2seq-dates": "seq2seq"}[model]
    at.session_state[f"ra_text_{kind}"] = text
    return at.run()


@pytest.mark.parametrize(
    "model, text, n_tokens, shape",
    [
        ("all-MiniLM-L6-v2", "Relevance test: the cat sat.", 9, {"encoder": (6, 12)}),
        ("gpt-stdlib", "Return the value of x.", 22, {"decoder_self": (2, 4)}),
        ("seq2seq-dates", "3rd of May 1999", 15, {"encoder": (2, 4), "cross": (2, 4)}),
    ],
)
def test_each_model_draws_and_controls_never_rerun_it(forwards, model, text, n_tokens, shape):
    at = page(model, text)
    assert not at.exception and not at.error
    rows = z(at, "ra_relevance")
    assert rows.shape == (2, n_tokens)  # relevance and raw attention, over the input tokens
    np.testing.assert_allclose(np.nanmax(rows, 1), 1.0, rtol=1e-6)  # each row scaled to its maximum
    family = next(iter(shape))
    assert z(at, "ra_imp_measured").shape == z(at, "ra_imp_gradient").shape == shape[family]
    assert chart(at, "ra_imp_measured")["data"][0]["texttemplate"].startswith("%{z:.")  # values rounded
    runs = len(forwards)
    at.selectbox(key="ra_raw_layer").set_value(0)
    at.selectbox(key="ra_raw_head").set_value(1).run()
    assert not at.exception and len(forwards) == runs  # the raw map is read from the kept forward
    assert z(at, "ra_relevance").shape == (2, n_tokens)
    if "cross" in shape:
        at.radio(key="ra_imp_family").set_value("cross").run()
        assert z(at, "ra_imp_measured").shape == shape["cross"] and len(forwards) == runs
    at.multiselect(key="ra_abl_heads").select((family, 0, 0)).run()
    assert not at.exception
    assert at.metric, "the ablation's change is shown"
    runs = len(forwards)
    at.radio(key="ra_imp_fill").set_value("zero").run()  # already computed: kept
    at.selectbox(key="ra_raw_head").set_value("mean").run()
    assert len(forwards) == runs


def test_head_importance_waits_until_asked(forwards):
    at = page("all-MiniLM-L6-v2", "Importance is ranked only when asked.", importance=False)
    assert not at.exception and not at.error
    assert z(at, "ra_relevance").shape[0] == 2
    assert not [c for c in at.get("plotly_chart") if "ra_imp_measured" in c.proto.id]
    runs = len(forwards)  # the forward and the relevance's
    at.toggle(key="ra_imp_on").set_value(True).run()
    assert not at.exception and z(at, "ra_imp_measured").shape == (6, 12)
    assert len(forwards) > runs  # the ablations ran now


def test_causal_page_explains_a_chosen_prediction(forwards):
    at = page("gpt-stdlib", EXAMPLES["causal"])
    assert not at.exception
    first = z(at, "ra_relevance")
    at.number_input(key="ra_pos").set_value(10).run()
    rows = z(at, "ra_relevance")
    assert (rows[:, 11:] == 0).all()  # causal: neither the relevance nor the attention reaches later
    assert not np.array_equal(first, rows)
    runs = len(forwards)
    at.number_input(key="ra_pos").set_value(len(EXAMPLES["causal"]) - 1).run()  # back: kept, not rerun
    assert len(forwards) == runs
    np.testing.assert_array_equal(z(at, "ra_relevance"), first)


def test_a_date_the_model_cannot_read_gets_a_message():
    at = page("seq2seq-dates", "£5 on Tuesday")
    assert not at.exception
    assert "Characters the model does not know" in at.error[0].value


def test_detr_section_explains_a_detection_and_ablates_heads():
    at = AppTest.from_file(DETR_PAGE, default_timeout=180)
    at.run()
    at.sidebar.radio(key="dp_model_source").set_value("Untrained small DETR (random weights)").run()
    assert not at.exception and not any("dp_rel_map" in c.proto.id for c in at.get("plotly_chart"))
    at.toggle(key="dp_rel_on").set_value(True).run()
    assert not at.exception and not at.error
    h = w = 128 // 16  # the small model is DC5 (stride 16) at 128 pixels
    assert z(at, "dp_rel_map").shape == z(at, "dp_rel_raw").shape == (h, w)
    at.selectbox(key="dp_rel_target").set_value("w").run()
    assert not at.exception and z(at, "dp_rel_map").shape == (h, w)
    at.multiselect(key="dp_abl_heads").select(("cross", 2, 0)).select(("encoder", 0, 1)).run()
    assert not at.exception
    at.slider(key="dp_threshold").set_value(0.0).run()  # every query is a detection
    table = next(d.value for d in at.dataframe if "score ablated" in d.value.columns)
    assert sorted(table["query"]) == list(range(20))  # the small model has 20 queries
    assert ((table["score ablated"] >= 0) & (table["score ablated"] <= 1)).all()
    assert (table["score ablated"] != table["score"]).any()  # the ablation changed the scores
    assert chart(at, "dp_abl_detections")["layout"]["title"]["text"].startswith("With the heads ablated: 20")
    at.toggle(key="dp_imp_on").set_value(True).run()
    assert not at.exception and z(at, "dp_imp_measured").shape == (3, 8)
