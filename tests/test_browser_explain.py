"""The rollout, flow and value-norm page in a real browser, on MiniLM's longest input: the flow toggle
computes one output token's exact flows to all 512 wordpieces and draws them."""

import pytest

from tests.conftest import screenshot

pytestmark = pytest.mark.browser

PARAGRAPH = (
    "Attention rollout and attention flow follow what a token can draw from the tokens below it, "
    "through every layer and the residual connection, while a raw attention map shows one layer only. "
)


def settle(page) -> None:
    page.wait_for_timeout(500)  # the run a change starts shows the status widget a moment later
    page.get_by_test_id("stStatusWidget").wait_for(state="hidden")


def test_flow_at_512_wordpieces_in_chromium(page, app_url):
    page.goto(f"{app_url}/rollout_flow")
    page.get_by_text("Rollout through every layer").first.wait_for()
    box = page.get_by_label("Text")
    box.fill(PARAGRAPH * 40)  # 1,400 words: cut to MiniLM's 512 positions with a notice
    box.press("Control+Enter")
    toggle = page.get_by_text("Compute attention flow")
    toggle.wait_for()
    settle(page)
    toggle.click()
    page.get_by_text("Attention flow (maximum flow to each input token)").wait_for()
    settle(page)
    assert not page.get_by_test_id("stException").count()
    assert not page.get_by_test_id("stAlertContentError").count()
    assert page.get_by_text("512 exact maximum flows").count()
    assert screenshot(page, "rollout_flow_512").stat().st_size > 10_000
