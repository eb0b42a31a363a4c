"""A model by name in a real browser: the app, run offline over a Hugging Face cache that holds a tiny BERT
(fetched beforehand from the stand-in Hub on 127.0.0.1), is given the name and shows its attention."""

import os

import pytest
from playwright.sync_api import expect

from models import hub
from tests.app_server import running_app
from tests.conftest import screenshot
from tests.hub_server import FakeHub
from tests.test_hub import bert_files

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def offline_app(tmp_path_factory):
    """The app served with HF_HOME holding org/tiny-bert and HF_HUB_OFFLINE=1."""
    root = tmp_path_factory.mktemp("hub-browser")
    with pytest.MonkeyPatch.context() as mp, FakeHub() as server:
        mp.setenv("HF_HOME", str(root / "hf"))
        mp.setenv("HF_ENDPOINT", server.url)
        mp.delenv("HF_HUB_OFFLINE", raising=False)
        server.add_repo("org/tiny-bert", bert_files(root))
        hub.download("org/tiny-bert")
    env = {**os.environ, "HF_HOME": str(root / "hf"), "HF_HUB_OFFLINE": "1"}
    with running_app(root / "server.log", env=env) as (url, _):
        yield url


@pytest.fixture
def offline_page(browser, offline_app):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(90_000)
    page.goto(offline_app)
    yield page
    context.close()


def test_a_cached_name_typed_in_the_browser_shows_its_attention(offline_page):
    page = offline_page
    page.get_by_text("Layer 0, head 0").first.wait_for()  # the embedded model first
    page.get_by_test_id("stSidebar").get_by_text("A BERT-family model by name or path").click()
    field = page.get_by_label("Hugging Face name or local path")
    field.fill("org/tiny-bert")
    field.press("Enter")
    text_area = page.get_by_label("Text (any language)")
    text_area.fill("hello world")
    text_area.press("Control+Enter")
    page.get_by_text("4 wordpieces").wait_for()
    page.get_by_text("Layer 0, head 0").first.wait_for()
    heatmap = page.locator(".js-plotly-plot").first
    expect(heatmap.locator(".hm")).to_have_count(1)
    expect(page.get_by_text("1 layers × 2 heads")).to_have_count(1)  # the tiny BERT, not MiniLM
    assert not page.get_by_test_id("stException").count()
    assert not page.get_by_test_id("stAlertContentError").count()
    assert screenshot(page, "text_attention_by_name").stat().st_size > 5_000
