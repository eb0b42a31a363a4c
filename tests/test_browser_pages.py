"""Every page through the navigation in a real browser, and widgets that come back after being hidden."""

import pytest
from playwright.sync_api import expect

from tests.conftest import screenshot

pytestmark = pytest.mark.browser

PAGES = [
    ("Text attention", "Text attention"),
    ("Step by step", "Step by step"),
    ("Causal decoder", "Causal decoder"),
    ("Encoder–decoder", "Encoder–decoder"),
    ("Positional encodings", "Positional encodings"),
    ("Receptive fields", "Receptive-field lab"),
    ("DETR", "DETR: what each object query looks at"),
]


def settle(page) -> None:
    """Wait for the script run to end, so that no stale element is read."""
    page.wait_for_timeout(500)  # the run a click starts shows the status widget a moment later
    page.get_by_test_id("stStatusWidget").wait_for(state="hidden")


def test_every_page_draws_without_an_error(page):
    """The navigation reaches every page; each draws its figures with no exception and no error."""
    nav = page.get_by_test_id("stSidebarNav")
    nav.wait_for()
    for link, title in PAGES:
        nav.get_by_role("link", name=link).click()
        page.get_by_role("heading", name=title).wait_for()
        page.locator(".js-plotly-plot").first.wait_for()
        settle(page)
        assert not page.get_by_test_id("stException").count(), link
        assert not page.get_by_test_id("stAlertContentError").count(), link
    assert screenshot(page, "detr_default").stat().st_size > 10_000


def test_a_hidden_number_input_comes_back_with_its_value(page, app_url):
    """The batch size inputs of the positional page are hidden when padding is off; turning it back on
    shows the value the page computes with, not the widget's own default."""
    page.goto(f"{app_url}/positional")
    page.get_by_role("tab", name="DETR 2-D sine").click()
    pad = page.get_by_text("pad it as in a batch with a larger image")
    pad.click()
    height = page.get_by_label("batch height")
    expect(height).to_have_value("800")
    height.fill("1000")
    height.press("Enter")
    settle(page)
    pad.click()  # off: the inputs go
    expect(height).to_have_count(0)
    settle(page)
    pad.click()  # on again: the value the user typed, on the screen and in the computation
    expect(page.get_by_label("batch height")).to_have_value("1000")
    settle(page)
    expect(page.get_by_label("batch height")).to_have_value("1000")
    page.get_by_text("padded to 32 × 42").first.wait_for()  # 1000 / 32 rounds up to 32 rows
    assert not page.get_by_test_id("stException").count()
