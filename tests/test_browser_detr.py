"""The DETR page in a real browser: upload an image, click a detection's box, see its attention grid; every
click is read back from the clicked point's customdata."""

import io
import re
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from models.detr.scenes import make_scene
from tests.conftest import screenshot

pytestmark = pytest.mark.browser
DEFAULT_SHIPPED = (Path(__file__).parents[1] / "weights" / "detr-shapes" / "model.safetensors").exists()


def scene_png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(make_scene(11, 128).image).save(buf, format="PNG")
    return buf.getvalue()


def scroll_to(page, locator) -> None:
    """Scroll to an element that a rerun may be replacing: try again once the rerun has drawn it."""
    for _ in range(5):
        try:
            locator.scroll_into_view_if_needed(timeout=5_000)
            return
        except PlaywrightError:
            page.wait_for_timeout(1_000)
    locator.scroll_into_view_if_needed()


def settle(page) -> None:
    """Wait for the run a click started to end, so that the next click lands on the redrawn figure."""
    page.wait_for_timeout(500)
    page.get_by_test_id("stStatusWidget").wait_for(state="hidden")


def test_detr_page_in_chromium(page):
    page.get_by_test_id("stSidebar").get_by_text("Device").wait_for()  # app.py's navigation is in place
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="DETR").click()
    page.get_by_text("DETR: what each object query looks at").wait_for()
    if not DEFAULT_SHIPPED:
        page.get_by_text("Untrained small DETR (random weights)").click()
    page.get_by_text("Upload an image", exact=True).click()
    page.locator("input[type=file]").set_input_files(
        {"name": "scene.png", "mimeType": "image/png", "buffer": scene_png()}
    )
    page.get_by_text(re.compile(r"detections? at score ≥ 0\.70")).first.wait_for()
    # the slider came back after the upload hid it: it must show the page's threshold, not its own minimum
    threshold = page.get_by_role("slider", name="Score threshold")
    expect(threshold).to_have_attribute("aria-valuetext", "0.70")
    threshold.focus()
    for _ in range(5):
        page.keyboard.press("ArrowLeft")
    page.get_by_text(re.compile(r"detections? at score ≥ 0\.65")).first.wait_for()
    detections = page.locator(".js-plotly-plot").first
    labels = detections.locator(".annotation-text")
    assert labels.count() >= 1
    k = labels.count() - 1  # the lowest-scoring detection shown
    query = re.match(r"q(\d+) ", labels.nth(k).text_content()).group(1)
    corner = labels.nth(k).bounding_box()  # the label sits on the box's top-left corner
    page.mouse.click(corner["x"] + 3, corner["y"] + corner["height"] + 3)  # the outline's nearest point
    page.get_by_text(re.compile(rf"^query {query}: .* · layer \d+, mean over heads")).first.wait_for()
    grid = page.get_by_text(f"Query {query}: every decoder layer × head").first
    grid.wait_for()
    scroll_to(page, grid)
    page.locator(".js-plotly-plot .hm image").nth(1).wait_for()  # the overlay and the grid
    h = w = 8  # the small model's feature map at 128 pixels (stride 16)
    tiles = page.locator(".js-plotly-plot", has_text=f"Query {query}: every decoder layer").locator(
        ".hm image"
    )
    area = tiles.bounding_box()  # 3 layers x 9 columns of (h + 1) x (w + 1) cells, less the last gap

    def click_tile(layer: int, column: int) -> None:
        settle(page)  # a click while the fragment's rerun redraws the grid is lost
        x = area["x"] + area["width"] * (column * (w + 1) + w / 2) / (9 * (w + 1) - 1)
        y = area["y"] + area["height"] * (layer * (h + 1) + h / 2) / (3 * (h + 1) - 1)
        page.mouse.click(x, y)

    click_tile(0, 8)  # the last column is the mean of the heads: the tile's customdata says "mean"
    page.get_by_text(re.compile(rf"^query {query}: .* · layer 0, mean over heads$")).first.wait_for()
    layer, head = 1, 3
    click_tile(layer, head)
    page.get_by_text(re.compile(rf"^query {query}: .* · layer {layer}, head {head}$")).first.wait_for()
    best = re.match(r"q(\d+) ", labels.nth(0).text_content()).group(1)
    strip = page.locator(".js-plotly-plot", has_text="What each detection looks at").locator(".hm image")
    scroll_to(page, strip)
    settle(page)
    area = strip.bounding_box()  # 12 tiles of (w + 1) cells, less the last gap; the first is the best
    page.mouse.click(area["x"] + area["width"] * (w / 2) / (12 * (w + 1) - 1), area["y"] + area["height"] / 2)
    page.get_by_text(re.compile(rf"^query {best}: .* · layer {layer}, head {head}$")).first.wait_for()
    page.get_by_role("tab", name="Encoder self-attention").click()
    encoder = page.locator(".js-plotly-plot", has_text="where it attends, layer").locator(".hm image")
    scroll_to(page, encoder)  # the figures' Export buttons push it below the fold
    settle(page)
    area = encoder.bounding_box()
    page.mouse.click(area["x"] + area["width"] * 0.9, area["y"] + area["height"] * 0.1)
    page.get_by_text(re.compile(r"^\(0, 7\): where it attends, layer")).first.wait_for()
    assert not page.get_by_test_id("stException").count()
    assert screenshot(page, "detr").stat().st_size > 10_000
