"""The app in a real browser: what only a browser shows (Plotly drawing, fonts, clicks)."""

import pytest
from playwright.sync_api import expect

from tests.conftest import pick_option, screenshot

pytestmark = pytest.mark.browser


def test_text_attention_in_chromium(page):
    page.get_by_text("Layer 0, head 0").first.wait_for()
    text_area = page.get_by_label("Text (any language)")
    text_area.fill("我有一只猫: every token looks at every other token.")
    text_area.press("Control+Enter")
    page.locator("span[title='position 1']", has_text="我").wait_for()
    pick_option(page, "Head", "head 5")
    page.get_by_text("Layer 0, head 5").first.wait_for()
    page.wait_for_timeout(500)  # the fragment's rerun redraws the overview: wait until it is over
    page.get_by_test_id("stStatusWidget").wait_for(state="hidden")
    heatmap = page.locator(".js-plotly-plot").first
    expect(heatmap.locator(".hm image")).to_have_count(1)
    page.get_by_role("tab", name="Every layer × head").click()
    overview = page.locator(".js-plotly-plot").filter(has=page.locator(".scatterlayer")).first
    expect(overview.locator(".hm image")).to_have_count(1)  # every layer x head in one trace
    page.wait_for_timeout(500)
    page.get_by_test_id("stStatusWidget").wait_for(state="hidden")
    overview.scroll_into_view_if_needed()
    grid = overview.locator(".nsewdrag").first.bounding_box()  # the plot area: 12 heads x 6 layers
    page.mouse.click(grid["x"] + grid["width"] * 7.5 / 12, grid["y"] + grid["height"] * 2.5 / 6)
    page.get_by_text("Layer 2, head 7").first.wait_for()
    assert not page.get_by_test_id("stException").count()
    assert screenshot(page, "text_attention").stat().st_size > 10_000


def test_a_thousand_tokens_head_by_head(page, tmp_path_factory):
    """A local BERT with 2,048 positions on 1,700 wordpieces: each head switch draws the raster of the
    whole map and the zoom window."""
    from scripts.make_long_bert import make_long_bert

    path = make_long_bert(tmp_path_factory.mktemp("long-bert"), positions=2048)
    page.get_by_text("Layer 0, head 0").first.wait_for()
    page.get_by_test_id("stSidebar").get_by_text("A BERT-family model by name or path").click()
    field = page.get_by_label("Hugging Face name or local path")
    field.fill(str(path))
    field.press("Enter")
    text_area = page.get_by_label("Text (any language)")
    text_area.fill(" ".join(f"word{i % 97} and more" for i in range(400)))
    text_area.press("Control+Enter")
    page.get_by_text("1710 wordpieces").wait_for()
    for head in (3, 9, 11):
        pick_option(page, "Head", f"head {head}")
        page.get_by_text(f"Layer 0, head {head}").first.wait_for()
        raster = page.locator(".js-plotly-plot").first
        expect(raster.locator("image")).to_have_count(1)  # the whole 1,710 x 1,710 map, one image
        expect(raster).to_contain_text("1710 × 1710")
        expect(page.locator(".js-plotly-plot").nth(1).locator(".hm image")).to_have_count(1)  # the zoom
    assert not page.get_by_test_id("stException").count()
    assert screenshot(page, "text_attention_long").stat().st_size > 10_000
