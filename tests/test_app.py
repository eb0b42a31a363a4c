"""The whole app through app.py's navigation: every page opens on its defaults without an exception."""

import ast
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).parents[1]


def page_paths() -> list[str]:
    """The page files named in app.py's PAGES list."""
    tree = ast.parse((ROOT / "app.py").read_text())
    return [
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "Page"
    ]


def test_every_page_file_exists():
    paths = page_paths()
    assert len(paths) >= 7
    assert all((ROOT / path).is_file() for path in paths)


@pytest.mark.parametrize("path", page_paths())
def test_page_opens_through_the_navigation(path):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    at.switch_page(path).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not [e.value for e in at.error if "unexpected error" in e.value]
    assert at.title, f"{path} shows no title"
    if not path.endswith("text_attention.py"):
        assert at.title[0].value != "Text attention", f"{path} did not open"


def test_an_unexpected_error_becomes_a_message(monkeypatch):
    import viz.attention

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(viz.attention, "token_strip_html", broken)  # drawn at every run of the text page
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    assert not at.exception
    assert "unexpected error (RuntimeError: boom)" in at.error[0].value
