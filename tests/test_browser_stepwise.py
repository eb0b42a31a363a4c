"""The step-by-step and causal decoder pages in a real browser: every figure drawn, masked cells grey."""

import pytest
from playwright.sync_api import expect

from tests.conftest import screenshot

pytestmark = pytest.mark.browser


def choose(page, label: str, option: str, index: int = 0) -> None:
    """Pick `option` in the select box labelled `label` (the index-th of that label) by typing it."""
    page.get_by_test_id("stSelectbox").filter(has_text=label).nth(index).click()
    page.keyboard.type(option)
    page.keyboard.press("Enter")


def test_step_by_step_in_chromium(page, app_url):
    page.goto(f"{app_url}/step_by_step")
    page.get_by_text("Check: recomputed here vs the model's own capture").wait_for()
    page.get_by_label("gpt-stdlib (causal decoder)").check(force=True)
    page.get_by_text("The GPT is pre-norm").wait_for()
    page.get_by_test_id("stStatusWidget").wait_for(state="hidden")  # the rerun is over, no stale figures
    plots = page.locator(".js-plotly-plot")
    # only the open stage is drawn: X; Plotly's script loads after the run ends, so wait for the figures
    # rather than count them at once
    expect(plots).to_have_count(1)
    expect(plots.nth(0).locator(".hm image")).to_have_count(1)
    page.get_by_role("tab", name="3 · Scores → softmax").click()
    page.get_by_text("The mask removes").wait_for()
    page.get_by_test_id("stStatusWidget").wait_for(state="hidden")
    expect(plots).to_have_count(4)  # QKᵀ, scaled, masked, softmax
    assert not page.get_by_test_id("stException").count()
    assert screenshot(page, "step_by_step").stat().st_size > 10_000
    page.get_by_role("tab", name="2 · Q, K, V").click()
    choose(page, "Head", "head 3")  # reruns the stage view's fragment only
    page.get_by_text("2 · Q, K, V of head 3").wait_for()
    page.get_by_test_id("stStatusWidget").wait_for(state="hidden")
    assert not page.get_by_test_id("stException").count()


def test_causal_decoder_in_chromium(page, app_url):
    page.goto(f"{app_url}/causal_decoder")
    page.get_by_text("Best induction head").wait_for()
    page.get_by_text("5 · Encoder vs decoder").wait_for()
    page.get_by_text("Weight on later tokens").first.wait_for()
    page.get_by_test_id("stStatusWidget").wait_for(state="hidden")
    expect(page.locator(".js-plotly-plot")).to_have_count(8)
    assert page.locator("path[d^='M 0.5,-0.5']").count() >= 1 or page.locator(".shapelayer path").count() >= 3
    assert not page.get_by_test_id("stException").count()
    assert screenshot(page, "causal_decoder").stat().st_size > 10_000
    choose(page, "Head", "head 3")  # the first head picker: sections 2-4, one fragment
    page.get_by_text("Layer 1, head 3: each step's new row").wait_for()
    page.get_by_test_id("stStatusWidget").wait_for(state="hidden")
    expect(page.locator(".js-plotly-plot")).to_have_count(8)
    assert not page.get_by_test_id("stException").count()
