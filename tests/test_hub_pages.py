"""Models by name on the pages (ui/hub.py): a cached name shows its attention, a name not cached offers its
size and downloads only on a click, and the guidance where the default model cannot serve. The Hub and the
DETR file server are the stand-ins of tests/hub_server.py; no test reaches the internet."""

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from models import hub
from models.registry import load_model
from tests.conftest import z
from tests.hub_server import stand_in
from tests.test_hub import bert_files, detr_checkpoint, downloads, serve_detr
from ui.hub import MULTILINGUAL, plan_of
from ui.models import get_model

PAGES = Path(__file__).parents[1] / "app_pages"
BY_NAME = "A BERT-family model by name or path"


@pytest.fixture
def fake(tmp_path, monkeypatch):
    yield from stand_in(tmp_path, monkeypatch)


@pytest.fixture(autouse=True)
def fresh_models():
    """Each test has its own caches on disk: a model or size kept by an earlier test would hide them."""
    get_model.clear()
    plan_of.clear()


def text_page(name: str, text: str) -> AppTest:
    at = AppTest.from_file(str(PAGES / "text_attention.py"), default_timeout=120)
    at.session_state["model_source"] = BY_NAME
    at.session_state["model_path"] = name
    at.session_state["text_input"] = text
    return at.run()


def test_a_cached_name_shows_its_attention_without_the_network(fake, tmp_path, monkeypatch):
    fake.add_repo("org/tiny-bert", bert_files(tmp_path))
    hub.download("org/tiny-bert")
    fake.requests.clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    at = text_page("org/tiny-bert", "hello world")
    assert not at.exception and not at.error
    assert fake.requests == []
    assert any("**4 wordpieces**" in m.value for m in at.markdown)
    model = load_model("org/tiny-bert", kind="encoder")
    expected = model.run(model.encode("hello world").ids).attentions[0].probs[0, 0].numpy()
    np.testing.assert_allclose(z(at, "head"), expected, atol=1e-6)


def test_a_name_not_cached_shows_its_size_and_downloads_only_on_the_click(fake, tmp_path):
    files = bert_files(tmp_path)
    fake.add_repo("org/tiny-bert", files)
    at = text_page("org/tiny-bert", "hello world")
    assert not at.exception and not at.error
    total = sum(len(files[f]) for f in ("config.json", "vocab.txt", "model.safetensors"))
    assert f"3 files, {total / 1e6:.1f} MB" in at.sidebar.info[0].value
    at.run()  # a rerun never downloads
    assert downloads(fake) == []
    button = next(b for b in at.sidebar.button if b.label.startswith("Download org/tiny-bert"))
    button.click().run()
    assert not at.exception and not at.error
    assert downloads(fake) and any("**4 wordpieces**" in m.value for m in at.markdown)


def test_mostly_unknown_text_suggests_a_multilingual_model(fake, tmp_path, monkeypatch):
    fake.add_repo("org/tiny-bert", bert_files(tmp_path))
    hub.download("org/tiny-bert")
    fake.requests.clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    at = text_page("org/tiny-bert", "多头注意力 hello")
    assert "Most of this text (5 of 6 wordpieces) is [UNK]" in at.warning[0].value
    at.button(key="use_multilingual").click().run()
    assert at.session_state["model_path"] == MULTILINGUAL
    assert f"{MULTILINGUAL} is not in the cache" in at.sidebar.error[0].value  # offline: said, not fetched
    assert "HF_HUB_OFFLINE" in at.sidebar.error[0].value and fake.requests == []


def test_unknown_names_and_revisions_get_their_message_and_the_page_keeps_working(fake, tmp_path):
    fake.add_repo("org/tiny-bert", bert_files(tmp_path))
    at = text_page("org/nothing", "hello world")
    assert not at.exception and "is not a model on the Hugging Face Hub" in at.sidebar.error[0].value
    at.session_state["model_path_revision"] = "v9"
    at.session_state["model_path"] = "org/tiny-bert"
    at.run()
    assert not at.exception and "has no revision 'v9'" in at.sidebar.error[0].value


@pytest.fixture
def photo() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (80, 96, 3), dtype=np.uint8)).save(
        buffer, "PNG"
    )
    return buffer.getvalue()


def test_the_shapes_detector_on_a_photograph_offers_detr_r50_in_one_click(fake, monkeypatch, photo):
    serve_detr(fake, monkeypatch, detr_checkpoint())
    at = AppTest.from_file(str(PAGES / "detr.py"), default_timeout=180)
    at.run()
    if at.sidebar.warning:
        pytest.skip("no trained shapes detector in weights/detr-shapes")
    at.radio(key="dp_image_source").set_value("Upload an image").run()
    at.file_uploader(key="dp_upload").set_value(("photo.png", photo, "image/png")).run()
    assert not at.exception
    assert "knows six drawn shapes only" in at.info[0].value
    assert downloads(fake) == [] and not any("/files/" in r and r.startswith("GET") for r in fake.requests)
    at.button(key="dp_use_r50").click().run()
    assert not at.exception and not at.sidebar.error
    assert hub.cached("detr-r50") is not None
    assert "4 classes" in " ".join(c.value for c in at.caption)  # the served checkpoint (TINY_DETR) runs
