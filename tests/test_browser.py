"""The app in a real browser: what only a browser shows (Plotly drawing, fonts, clicks)."""

import pytest
from playwright.sync_api import expect

from tests.conftest import screenshot

pytestmark = pytest.mark.browser


def test_text_attention_in_chromium(page):
    page.get_by_text("Layer 0, head 0").first.wait_for()
    text_area = page.get_by_label("Text (any language)")
    text_area.fill("我有一只猫: every token looks at every other token.")
    text_area.press("Control+Enter")
    page.locator("span[title='position 1']", has_text="我").wait_for()
    page.get_by_test_id("stSelectbox").filter(has_text="Head").click()
    page.get_by_role("option", name="head 5", exact=True).click()
    page.get_by_text("Layer 0, head 5").first.wait_for()
    heatmap = page.locator(".js-plotly-plot").first
    expect(heatmap.locator(".hm image")).to_have_count(1)
    overview = page.locator(".js-plotly-plot").nth(1)
    expect(overview.locator(".hm image")).to_have_count(72)  # once Plotly has laid out every subplot
    overview.scroll_into_view_if_needed()
    thumbnail = overview.locator(".hm image").nth(2 * 12 + 7).bounding_box()  # layer 2, head 7
    page.mouse.click(thumbnail["x"] + thumbnail["width"] / 2, thumbnail["y"] + thumbnail["height"] / 2)
    page.get_by_text("Layer 2, head 7").first.wait_for()
    assert not page.get_by_test_id("stException").count()
    assert screenshot(page, "text_attention").stat().st_size > 10_000
