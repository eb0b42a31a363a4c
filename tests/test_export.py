"""Export: PNG and SVG through kaleido on the local chromium, standalone HTML, .npz and the view config;
the text page's Export holds the matrix it draws."""

import io
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

import ui.export
import ui.widgets
from tests.conftest import z
from viz.export import (
    config_json,
    figure_arrays,
    matrix_png,
    npz_bytes,
    read_config,
    standalone_html,
    static_export_available,
    static_image,
)
from viz.heatmap import heatmap, raster

PAGE = str(Path(__file__).parents[1] / "app_pages" / "text_attention.py")
needs_chromium = pytest.mark.skipif(not static_export_available(), reason="kaleido or chromium is missing")


def small_figure():
    matrix = np.arange(12, dtype=float).reshape(3, 4) / 11
    return heatmap(matrix, ["a", "b", "c"], ["w", "x", "y", "z"], title="t", height=300)


@needs_chromium
@pytest.mark.parametrize("scale", [1, 3])
def test_png_has_the_figure_size_times_the_scale(scale):
    fig = small_figure()
    fig.update_layout(width=420)
    image = Image.open(io.BytesIO(static_image(fig, "png", scale)))
    assert image.format == "PNG"
    assert image.size == (420 * scale, 300 * scale)


@needs_chromium
def test_svg_parses_and_has_the_figure_size():
    fig = raster(np.random.default_rng(0).random((300, 300)), title="raster")  # an image trace too
    fig.update_layout(width=500, height=400)
    root = ET.fromstring(static_image(fig, "svg"))
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert (root.get("width"), root.get("height")) == ("500", "400")
    assert root.iter("{http://www.w3.org/2000/svg}image")  # the raster is inside, not linked


def test_html_works_offline():
    html = standalone_html(small_figure())
    urls = re.findall(r"<(?:script|link|img|iframe)\b[^>]*?\b(?:src|href)\s*=\s*[\"']([^\"']+)", html, re.I)
    assert [u for u in urls if re.match(r"\s*(https?:)?//", u)] == []
    assert len(html) > 3_000_000  # plotly.js is inside the file
    assert '"z":' in html or "bdata" in html


def test_npz_holds_arrays_tokens_and_view_without_pickle():
    matrix = np.random.default_rng(1).random((5, 5)).astype(np.float32)
    view = {"page": "text_attention", "model": "m", "layer": np.int64(2), "head": "mean"}
    data = np.load(io.BytesIO(npz_bytes({"matrix": matrix, "tokens": ["[CLS]", "注意", "x"]}, view)))
    np.testing.assert_array_equal(data["matrix"], matrix)
    assert data["matrix"].dtype == np.float32
    assert data["tokens"].tolist() == ["[CLS]", "注意", "x"]
    assert read_config(str(data["view"]))["layer"] == 2


def test_view_config_round_trips():
    view = {"page": "text_attention", "model": "all-MiniLM-L6-v2", "layer": 3, "head": 5, "text": "多头 x",
            "state": {"ta_layer": 3, "ta_head": "max", "ta_tab": "Heads"}}  # fmt: skip
    assert read_config(config_json(view)) == {"version": 1, **view}
    with pytest.raises(ValueError, match="no 'page'"):
        read_config('{"layer": 1}')
    with pytest.raises(ValueError, match="not JSON"):
        read_config(b"\x89PNG")
    with pytest.raises(ValueError, match="version"):
        read_config('{"page": "x", "version": 99}')


def test_matrix_png_fallback_is_one_pixel_a_cell():
    matrix = np.array([[0.0, 1.0, np.nan]])
    image = Image.open(io.BytesIO(matrix_png(matrix, scale=2))).convert("RGB")
    assert image.size == (6, 2)
    assert image.getpixel((4, 0)) == (217, 217, 217)  # masked: the mask grey
    assert image.getpixel((0, 0)) != image.getpixel((2, 0))


def test_figure_arrays_default_to_the_traces():
    fig = small_figure()
    arrays = figure_arrays(fig)
    np.testing.assert_array_equal(arrays["trace0_z"], np.asarray(fig.data[0].z))


def test_the_text_pages_npz_is_the_displayed_matrix(monkeypatch):
    exported = {}

    def recording(fig, key, **kwargs):
        exported[key] = kwargs
        return ui.export.chart(fig, key, **kwargs)

    monkeypatch.setattr(ui.widgets, "chart", recording)
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state["text_input"] = "The export holds what is drawn. 注意力"
    at.session_state["ta_layer"], at.session_state["ta_head"] = 3, 5
    at.run()
    assert not at.exception
    shown = z(at, "head_map")
    export = exported["head_map"]
    data = np.load(io.BytesIO(npz_bytes(export["arrays"], export["view"])))
    np.testing.assert_array_equal(data["matrix"], shown.astype(data["matrix"].dtype))
    assert len(data["row_tokens"]) == shown.shape[0]
    view = read_config(str(data["view"]))
    assert (view["page"], view["layer"], view["head"]) == ("text_attention", 3, 5)
    assert any(f"· {view['model']} ·" in m.value for m in at.markdown)  # the model the page names
    assert view["state"]["text_input"] == "The export holds what is drawn. 注意力"
    whole = export["whole"]()
    assert whole["maps"].shape == (6, 12, shown.shape[0], shown.shape[0])
    np.testing.assert_array_equal(whole["maps"][3, 5], data["matrix"])


def test_a_link_names_the_model_and_the_text(tmp_path):
    from scripts.make_long_bert import make_long_bert

    path = str(make_long_bert(tmp_path / "small-bert", positions=64))
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.query_params["model"] = path
    at.query_params["text"] = "Opened from a link."
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["model_path"] == path
    assert at.session_state["text_input"] == "Opened from a link."
    assert at.query_params["model"] == path  # and the page keeps them in its URL
    assert at.query_params["text"] == "Opened from a link."
    at.text_area(key="text_input").set_value("x" * 2500).run()
    assert "text" not in at.query_params and len(at.query_params["digest"]) == 16


def test_a_digest_link_asks_for_its_text_until_it_is_pasted():
    from ui.share import text_digest

    long_text = "A text too long for a link. " * 100
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.query_params["digest"] = text_digest(long_text)
    at.run()
    assert any("names its text by digest" in w.value for w in at.warning)
    assert at.query_params["digest"] == text_digest(long_text)  # kept while the text is missing
    at.text_area(key="text_input").set_value(long_text).run()
    assert not any("names its text by digest" in w.value for w in at.warning)
    assert at.query_params["digest"] == text_digest(long_text) and "text" not in at.query_params
