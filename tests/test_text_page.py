from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import models.bert
from tests.conftest import count_calls, figure, z

PAGE = str(Path(__file__).parents[1] / "app_pages" / "text_attention.py")


def z_shape(trace):
    z = trace["z"]
    if isinstance(z, dict):  # plotly's typed-array encoding: {"dtype", "bdata", "shape": "T, T"}
        return tuple(int(n) for n in str(z["shape"]).split(","))
    return np.asarray(z).shape


@pytest.fixture
def forward_calls(monkeypatch):
    return count_calls(monkeypatch, (models.bert.BertModel, "forward"))


def run_page(text=None):
    at = AppTest.from_file(PAGE, default_timeout=120)
    if text is not None:
        at.session_state["text_input"] = text
    return at.run()


def test_default_text_shows_every_head_without_rerunning_the_model(forward_calls):
    at = run_page("A page that changes layer and head. 注意力")
    assert not at.exception
    summary = next(m.value for m in at.markdown if "wordpieces**" in m.value)
    n_tokens = int(summary.split("**")[1].split()[0])
    assert z_shape(figure(at, "head_map")["data"][0]) == (n_tokens, n_tokens)
    assert not [c for c in at.get("plotly_chart") if "overview" in c.proto.id]  # only the open tab runs
    assert len(forward_calls) == 1
    at.session_state["ta_tab"] = "Every layer × head"
    at.run()
    assert z_shape(figure(at, "overview")["data"][0]) == (6 * n_tokens, 12 * n_tokens)  # thumbnails
    at.session_state["ta_tab"] = "Per-head statistics"
    at.run()
    assert len(at.dataframe[0].value) == 72
    at.session_state["ta_tab"] = "Value-weighted norms"
    at.run()
    at.selectbox(key="ta_vn_encoder_layer").set_value(4).run()
    at.selectbox(key="ta_vn_encoder_head").set_value(7).run()
    alpha, weighted = z(at, "ta_alpha_map"), z(at, "ta_weighted_map")
    lengths = z(at, "ta_value_lengths")[0]  # ‖f(x_j)‖ of head 7: the weighted map is α scaled per key
    np.testing.assert_allclose(weighted, alpha * lengths[None, :], rtol=1e-5, atol=1e-6)
    assert z(at, "ta_summed_map").shape == (n_tokens, n_tokens)
    at.session_state["ta_tab"] = "Heads"
    at.run()
    at.selectbox(key="ta_layer").set_value(4).run()
    at.selectbox(key="ta_head").set_value(7).run()
    assert not at.exception
    assert figure(at, "head_map")["layout"]["title"]["text"] == "Layer 4, head 7"
    np.testing.assert_allclose(z(at, "head_map"), alpha, atol=1e-6)  # the value tab's α is this head's map
    at.selectbox(key="ta_head").set_value("mean").run()
    assert "mean over heads" in figure(at, "head_map")["layout"]["title"]["text"]
    assert len(forward_calls) == 1  # a head change never reruns the model


@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_empty_text_asks_for_text(text):
    at = run_page(text)
    assert not at.exception
    assert "Type or upload some text" in at.info[0].value


def test_long_text_is_truncated_with_a_notice_and_drawn_as_a_raster_with_a_zoom_window():
    at = run_page("token " * 600)
    assert not at.exception
    assert "last 90 wordpieces were dropped" in at.warning[0].value
    raster = figure(at, "head_raster")
    assert raster["data"][0]["type"] == "image" and "512 × 512" in raster["layout"]["title"]["text"]
    assert z_shape(figure(at, "head_zoom")["data"][0]) == (128, 128)
    at.number_input(key="head_zq").set_value(300).run()
    zoom = figure(at, "head_zoom")
    assert zoom["data"][0]["y"][0] == "300 token" and "queries 300–427" in zoom["layout"]["title"]["text"]


def test_uploads(tmp_path):
    at = run_page()
    at.file_uploader(key="text_upload").set_value(
        ("notes.txt", "上传的文本 works".encode(), "text/plain")
    ).run()
    assert not at.exception and not at.error
    assert at.text_area(key="text_input").value == "上传的文本 works"
    at.file_uploader(key="text_upload").set_value(
        ("image.txt", b"\x89PNG\r\n\x1a\n\x00\xff\xfe", "text/plain")
    ).run()
    assert not at.exception
    assert "not UTF-8 text" in at.error[0].value
    assert at.text_area(key="text_input").value == "上传的文本 works"
    for encoding in ["utf-16", "utf-16-be", "utf-8-sig"]:  # Notepad's "Unicode" and "UTF-8 with BOM"
        data = "Ünïcode text".encode(encoding)
        if encoding == "utf-16-be":
            data = b"\xfe\xff" + data
        at.file_uploader(key="text_upload").set_value(("notepad.txt", data, "text/plain")).run()
        assert not at.exception and not at.error
        assert at.text_area(key="text_input").value == "Ünïcode text"
    at.file_uploader(key="text_upload").set_value(("odd.txt", b"\xff\xfe\x00\xd8", "text/plain")).run()
    assert "not UTF-16 text" in at.error[0].value  # a lone surrogate
    assert at.text_area(key="text_input").value == "Ünïcode text"


def test_broken_model_directory_gets_a_message(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    at = run_page()
    at.radio(key="model_source").set_value("A BERT-family model by name or path").run()
    at.text_input(key="model_path").input(str(tmp_path)).run()
    assert not at.exception
    assert "Cannot load the model" in at.error[0].value and "model.safetensors" in at.error[0].value
