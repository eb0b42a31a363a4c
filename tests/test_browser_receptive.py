"""The receptive-field lab in a real browser: a visit draws the open tab's section only, and clicking each
tab draws its own section with its figures and no error."""

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

SECTIONS = {  # each tab and the heading of the section it draws
    "Sequences": "Effective receptive field on a sequence (S1, S3)",
    "Parallelism": "Parallelism: forward time against length (S2)",
    "Images": "Receptive fields on an image: CNN against the DETR encoder",
    "CNN = attention": "A CNN is a special self-attention (S7)",
    "Norms": "Layer norm against batch norm on MiniLM activations (S8)",
    "Residuals": "Residual connections keep a deep stack from degrading (S9)",
}


def settle(page) -> None:
    """Wait for the script run to end, so that no stale element is read."""
    page.wait_for_timeout(500)  # the run a click starts shows the status widget a moment later
    page.get_by_test_id("stStatusWidget").wait_for(state="hidden")


def test_each_tab_draws_its_own_section(page, app_url):
    page.goto(f"{app_url}/receptive_fields")
    page.get_by_role("heading", name="Receptive-field lab").wait_for()
    first = page.get_by_role("heading", name=SECTIONS["Sequences"])
    first.wait_for()
    page.locator(".js-plotly-plot").first.wait_for()
    settle(page)
    for heading in list(SECTIONS.values())[1:]:  # not drawn until their tab is opened
        expect(page.get_by_role("heading", name=heading)).to_have_count(0)
    for tab, heading in SECTIONS.items():
        page.get_by_role("tab", name=tab, exact=True).click()
        page.get_by_role("heading", name=heading).wait_for()
        panel = page.get_by_role("tabpanel").filter(has=page.get_by_role("heading", name=heading))
        panel.locator(".js-plotly-plot").first.wait_for()
        settle(page)
        assert not page.get_by_test_id("stException").count(), tab
        assert not page.get_by_test_id("stAlertContentError").count(), tab
