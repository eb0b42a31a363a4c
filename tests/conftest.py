"""Shared fixtures: the app served on 127.0.0.1 and a page in Debian's chromium driven by Playwright."""

import base64
import json
import os
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

from models.detr.detr import DetrConfig
from tests.app_server import running_app

ROOT = Path(__file__).parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "tests" / "_screenshots"

# A DETR small enough for unit tests: ResNet-18 at width 8, d = 32, 6 queries, 64-pixel images.
TINY_DETR = DetrConfig(
    num_classes=4,
    backbone_depth=18,
    backbone_width=8,
    d_model=32,
    n_heads=4,
    num_encoder_layers=2,
    num_decoder_layers=3,
    dim_feedforward=64,
    num_queries=6,
    min_size=64,
    max_size=96,
    class_names=["a", "b", "c", "d"],
)


@pytest.fixture(autouse=True)
def fresh_results():
    """Each test starts with no kept results: the store is per process, and a test that counts forwards
    must not find the input computed by an earlier test."""
    from ui.results import result_cache

    result_cache().clear()


@pytest.fixture(scope="session")
def app_url(tmp_path_factory):
    """`streamlit run app.py` on 127.0.0.1 for the test session; stopped afterwards."""
    with running_app(tmp_path_factory.mktemp("streamlit") / "server.log") as (url, _):
        yield url


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, app_url):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    outside = []  # the app must not reach the network: every request stays on 127.0.0.1
    context.on(
        "request",
        lambda r: outside.append(r.url) if urlparse(r.url).hostname not in (None, "127.0.0.1") else None,
    )
    page = context.new_page()
    page.set_default_timeout(90_000)
    page.goto(app_url)
    yield page
    context.close()
    assert not outside, f"the page requested {outside}"


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def pick_option(page, label: str, option) -> None:
    """Choose `option` (a name or a compiled pattern) in the select box labelled `label`, opening the list
    again if a rerun closed it or redrew the box under the click."""
    for _ in range(5):
        page.get_by_test_id("stSelectbox").filter(has_text=label).first.click()
        choice = page.get_by_role("option", name=option, exact=True)
        try:
            choice.wait_for(timeout=5000)
            choice.click()
            return
        except Exception:  # the list closed under a rerun: open it again
            page.keyboard.press("Escape")
    raise TimeoutError(f"no option {option!r} in {label!r}")


def count_calls(monkeypatch, *targets: tuple[object, str]) -> list[str]:
    """Wrap each (class or module, attribute) so that every call is recorded, by the class name of the
    instance for a method (e.g. "BertModel") or by the attribute's name; returns the record."""
    calls = []
    for owner, attribute in targets:
        original = getattr(owner, attribute)

        def counting(*args, _original=original, _owner=owner, _name=attribute, **kwargs):
            is_method = isinstance(_owner, type) and args and isinstance(args[0], _owner)
            calls.append(type(args[0]).__name__ if is_method else _name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(owner, attribute, counting)
    return calls


def figure(at, key: str) -> dict:
    """The Plotly spec of the AppTest chart whose element id holds `key`."""
    chart = next(c for c in at.get("plotly_chart") if c.proto.id.endswith(key) or key in c.proto.id)
    return json.loads(chart.proto.spec)


def z(at, key: str) -> np.ndarray:
    """The z of that chart's first trace, decoded from Plotly's typed-array encoding when it is one."""
    data = figure(at, key)["data"][0]["z"]
    if isinstance(data, dict):
        shape = tuple(int(n) for n in str(data["shape"]).split(","))
        return np.frombuffer(base64.b64decode(data["bdata"]), dtype=data["dtype"]).reshape(shape)
    return np.array(data, dtype=float)
