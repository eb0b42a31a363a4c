"""A view leaves the app as a link and as files: a link opened in a fresh browser context shows the same
layer, head and text; the Export menu's .npz is the drawn head's map, and its PNG has the chosen scale."""

from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect

from models.attention import LAZY
from models.maps import AttentionMaps
from models.readout import readout
from models.registry import load_model
from tests.conftest import pick_option
from viz.export import config_json, read_config, static_export_available

pytestmark = pytest.mark.browser
TEXT = "Shared links reopen views. 链接打开同一个视图。"


def idle(page) -> None:
    page.wait_for_timeout(500)
    page.get_by_test_id("stStatusWidget").wait_for(state="hidden")


def head_map(layer: int, head: int) -> np.ndarray:
    model = load_model("all-MiniLM-L6-v2")
    encoding = model.encode(TEXT)
    family = readout(encoder=model.run(encoding.ids, capture=LAZY).attentions)["encoder"]
    return AttentionMaps(family).head(layer, head)


def test_a_shared_link_reopens_the_view_and_exports_it(page, browser, tmp_path):
    page.get_by_text("Layer 0, head 0").first.wait_for()
    text_area = page.get_by_label("Text (any language)")
    text_area.fill(TEXT)
    text_area.press("Control+Enter")
    page.locator("span[title='position 1']").filter(has_text="shared").wait_for()
    pick_option(page, "Layer", "layer 3")
    idle(page)
    pick_option(page, "Head", "head 5")
    page.get_by_text("Layer 3, head 5").first.wait_for()
    idle(page)
    page.wait_for_function("() => location.search.includes('ta_head')")
    link = page.url
    query = parse_qs(urlparse(link).query)
    assert query["text"] == [TEXT] and query["ta_layer"] == ["layer 3"] and query["ta_head"] == ["head 5"]

    fresh = browser.new_context(viewport={"width": 1400, "height": 1000})  # no cookies, no session
    try:
        other = fresh.new_page()
        other.set_default_timeout(90_000)
        other.goto(link)
        other.get_by_text("Layer 3, head 5").first.wait_for()
        assert other.get_by_label("Text (any language)").input_value() == TEXT
        assert not other.get_by_test_id("stException").count()
    finally:
        fresh.close()

    page.get_by_role("button", name="Export").first.click()
    with page.expect_download() as download:
        page.get_by_role("button", name="Data (.npz)").click()
    data = np.load(download.value.path())
    np.testing.assert_allclose(data["matrix"], head_map(3, 5), atol=1e-6)
    view = read_config(str(data["view"]))
    assert (view["layer"], view["head"], view["text"]) == (3, 5, TEXT)
    if static_export_available():
        page.get_by_test_id("stButtonGroup").get_by_text("3×", exact=True).click()
        idle(page)
        with page.expect_download() as download:
            page.get_by_role("button", name="PNG", exact=True).click()
        width, height = Image.open(download.value.path()).size
        assert download.value.suggested_filename.endswith("@3x.png")
        assert width % 3 == 0 and height % 3 == 0 and width > 900


def test_a_long_text_travels_by_digest(browser, app_url):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        page.set_default_timeout(90_000)
        page.goto(f"{app_url}/?digest=0123456789abcdef")
        page.get_by_text("This link names its text by digest").wait_for()
        assert "digest=0123456789abcdef" in page.url
    finally:
        context.close()


def test_a_view_config_reopens_its_view(page, tmp_path):
    page.get_by_text("Layer 0, head 0").first.wait_for()
    state = {"text_input": TEXT, "ta_layer": 2, "ta_head": 4, "ta_tab": "Heads"}
    config = tmp_path / "view.json"
    config.write_text(config_json({"page": "text_attention", "layer": 2, "head": 4, "state": state}))
    page.get_by_role("button", name="Open a view (.json)").click()
    uploader = page.get_by_test_id("stFileUploader").filter(has_text="View config")
    uploader.locator("input[type=file]").set_input_files(str(config))
    page.get_by_text("Layer 2, head 4").first.wait_for()
    assert page.get_by_label("Text (any language)").input_value() == TEXT
    assert not page.get_by_test_id("stException").count()


@pytest.mark.parametrize(
    ("path", "query", "shown"),
    [
        ("causal_decoder", "cd_text=abcabc+xyz&cd_layer=layer+1&cd_head=head+2",
         {"Layer": "layer 1", "Head": "head 2"}),
        ("detr", "dp_seed=7&dp_layer=layer+2&dp_head=head+3", {"Layer": "layer 2", "Head": "head 3"}),
    ],
)  # fmt: skip
def test_links_reopen_the_causal_and_detr_views(browser, app_url, path, query, shown):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        page.set_default_timeout(90_000)
        page.goto(f"{app_url}/{path}?{query}")
        for label, value in shown.items():
            box = page.get_by_test_id("stSelectbox").filter(has_text=label).first
            expect(box.locator("input")).to_have_value(value, timeout=90_000)
        if path == "detr":
            expect(page.get_by_label("Scene seed")).to_have_value("7", timeout=90_000)
        else:
            expect(page.get_by_label("Your text (for sections 2, 3, 5 and 6)")).to_have_value(
                "abcabc xyz", timeout=90_000
            )
        assert not page.get_by_test_id("stException").count()
    finally:
        context.close()


def test_any_figures_view_config_reopens_its_page(browser, app_url, tmp_path):
    """A page that passes no view config of its own (DETR) saves its page and URL-bound state."""
    contexts = [browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in range(2)]
    try:
        page, other = (context.new_page() for context in contexts)
        page.set_default_timeout(90_000)
        other.set_default_timeout(90_000)
        page.goto(f"{app_url}/detr?dp_seed=7")
        expect(page.get_by_label("Scene seed")).to_have_value("7", timeout=90_000)
        idle(page)
        page.get_by_role("button", name="Export").first.click()
        with page.expect_download() as download:
            page.get_by_role("button", name="View config (.json)").click()
        saved = tmp_path / download.value.suggested_filename
        download.value.save_as(saved)
        assert saved.suffix == ".json"
        view = read_config(saved.read_text(encoding="utf-8"))
        assert view["page"] == "detr" and view["state"]["dp_seed"] == 7
        other.goto(app_url)
        other.get_by_text("Layer 0, head 0").first.wait_for()
        other.get_by_role("button", name="Open a view (.json)").click()
        uploader = other.get_by_test_id("stFileUploader").filter(has_text="View config")
        uploader.locator("input[type=file]").set_input_files(str(saved))
        expect(other.get_by_label("Scene seed")).to_have_value("7", timeout=90_000)
        assert not other.get_by_test_id("stException").count()
    finally:
        for context in contexts:
            context.close()
