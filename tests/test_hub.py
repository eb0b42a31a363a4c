"""Models by name (models/hub.py): fetched from stand-ins for the Hugging Face Hub and the DETR file server
on 127.0.0.1 (tests/hub_server.py) into temporary caches, then loaded by the registry without the network.
No test reaches the internet."""

import errno
import hashlib
import io
import json
import os
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_model

from models import hub
from models.bert import BertConfig, BertModel
from models.detr.detr import build_detr
from models.errors import ModelLoadError
from models.registry import kind_of, load_model
from tests.conftest import TINY_DETR
from tests.hub_server import COMMIT, FakeHub, stand_in

BERT = BertConfig(
    vocab_size=7, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
    max_position_embeddings=16,
)  # fmt: skip
VOCAB = b"[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nworld\n"


def bert_files(tmp_path: Path, extra: dict | None = None) -> dict[str, bytes]:
    """A tiny random BERT as a Hub repo holds it, plus a README and a pickle the app must not fetch."""
    torch.manual_seed(0)
    save_model(BertModel(BERT), str(tmp_path / "bert.safetensors"))
    return {
        "config.json": json.dumps({"model_type": "bert", **asdict(BERT), **(extra or {})}).encode(),
        "vocab.txt": VOCAB,
        "model.safetensors": (tmp_path / "bert.safetensors").read_bytes(),
        "pytorch_model.bin": b"not fetched when safetensors exist",
        "README.md": b"# tiny",
    }


def write_dir(directory: Path, files: dict[str, bytes]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (directory / name).write_bytes(data)
    return directory


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A stand-in Hub and file server, with HF_HOME and TORCH_HOME in a temporary directory."""
    yield from stand_in(tmp_path, monkeypatch)


def downloads(server: FakeHub) -> list[str]:
    return [r for r in server.requests if r.startswith("GET") and "/resolve/" in r]


def test_a_name_is_told_from_a_path(tmp_path):
    assert hub.is_name("gpt2") and hub.is_name("Qwen/Qwen2.5-0.5B") and hub.is_name("detr-r50")
    assert not hub.is_name(str(tmp_path)) and not hub.is_name("~/models/x") and not hub.is_name("./x")
    assert not hub.is_name("a/b/c") and not hub.is_name("") and not hub.is_name("org/..")


def test_a_downloaded_name_loads_offline_as_its_local_directory(fake, tmp_path, monkeypatch):
    files = bert_files(tmp_path)
    fake.add_repo("org/tiny-bert", files)
    assert hub.cached("org/tiny-bert") is None
    plan = hub.plan("org/tiny-bert")
    assert plan.files == {f: len(files[f]) for f in ("config.json", "vocab.txt", "model.safetensors")}
    assert plan.weights == len(files["model.safetensors"]) and plan.destination == str(
        tmp_path / "hf" / "hub"
    )
    assert downloads(fake) == []  # sizing fetches nothing

    seen = []
    folder = hub.download("org/tiny-bert", progress=lambda done, total: seen.append((done, total)))
    assert folder == tmp_path / "hf" / "hub" / "models--org--tiny-bert" / "snapshots" / COMMIT
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors", "vocab.txt"]
    assert seen[-1] == (plan.weights, plan.weights)

    fake.requests.clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    by_name = load_model("org/tiny-bert", kind="encoder")
    by_path = load_model(str(write_dir(tmp_path / "local", files)), kind="encoder")
    assert fake.requests == []
    assert kind_of("org/tiny-bert") == "encoder"
    ids = by_path.encode("hello world").ids
    assert by_name.encode("hello world").ids == ids
    a, b = by_name.run(ids).attentions, by_path.run(ids).attentions
    assert all(torch.equal(x.probs, y.probs) for x, y in zip(a, b, strict=True))


def test_a_repo_with_only_a_pickle_is_read_with_weights_only(fake, tmp_path):
    files = bert_files(tmp_path)
    state = {k: v.contiguous() for k, v in BertModel(BERT).state_dict().items()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    del files["model.safetensors"]
    files["pytorch_model.bin"] = buffer.getvalue()
    fake.add_repo("org/bin-only", files)
    assert "pytorch_model.bin" in hub.plan("org/bin-only").files
    hub.download("org/bin-only")
    model = load_model("org/bin-only", kind="encoder")
    assert torch.equal(
        model.model.layers[0].attention.q_proj.weight.cpu(), state["layers.0.attention.q_proj.weight"]
    )


class Payload:
    """A pickled object that would run code: torch.load(weights_only=True) refuses it."""


def test_a_pickle_that_would_run_code_is_refused(fake, tmp_path):
    files = bert_files(tmp_path)
    buffer = io.BytesIO()
    torch.save({"layers.0.x": Payload()}, buffer)
    del files["model.safetensors"]
    files["pytorch_model.bin"] = buffer.getvalue()
    fake.add_repo("org/pickled", files)
    hub.download("org/pickled")
    with pytest.raises(ModelLoadError, match=r"refused to load .*pytorch_model\.bin: Weights only load"):
        load_model("org/pickled", kind="encoder")


def test_hub_errors_say_what_to_do(fake, tmp_path):
    fake.add_repo("org/tiny-bert", bert_files(tmp_path))
    fake.add_repo("org/gated", bert_files(tmp_path), gated=True)
    fake.add_repo("org/onnx-only", {"config.json": b"{}", "model.onnx": b"x"})
    with pytest.raises(
        ModelLoadError, match="org/nothing is not a model on the Hugging Face Hub.*local directory"
    ):
        hub.plan("org/nothing")
    with pytest.raises(ModelLoadError, match="org/tiny-bert has no revision 'v9'"):
        hub.plan("org/tiny-bert", revision="v9")
    with pytest.raises(ModelLoadError, match="org/gated is gated: accept its conditions.*HF_TOKEN"):
        hub.plan("org/gated")
    with pytest.raises(ModelLoadError, match="neither safetensors weights nor pytorch_model.bin"):
        hub.plan("org/onnx-only")
    with pytest.raises(hub.NotDownloaded, match="nor a model name downloaded before"):
        load_model("org/tiny-bert", kind="encoder")
    assert downloads(fake) == []


def test_offline_and_not_cached_is_said_without_the_network(fake, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    fake.add_repo("org/tiny-bert", {})
    with pytest.raises(hub.NotDownloaded, match="not in the cache .*HF_HUB_OFFLINE is set.*local directory"):
        hub.plan("org/tiny-bert")
    with pytest.raises(hub.NotDownloaded, match="HF_HUB_OFFLINE"):
        hub.download("detr-r50")
    with pytest.raises(hub.NotDownloaded):
        load_model("org/tiny-bert", kind="encoder")
    assert fake.requests == []


def test_an_interrupted_download_is_never_loaded_and_a_retry_completes_it(fake, tmp_path):
    files = bert_files(tmp_path)
    fake.add_repo("org/tiny-bert", files)
    fake.cut["model.safetensors"] = 100
    with pytest.raises(ModelLoadError, match="org/tiny-bert"):
        hub.download("org/tiny-bert")
    assert hub.cached("org/tiny-bert") is None
    with pytest.raises(hub.NotDownloaded):
        load_model("org/tiny-bert", kind="encoder")
    del fake.cut["model.safetensors"]
    folder = hub.download("org/tiny-bert")
    assert (folder / "model.safetensors").read_bytes() == files["model.safetensors"]
    assert load_model("org/tiny-bert", kind="encoder").config.hidden_size == BERT.hidden_size


def test_weights_that_would_not_fit_are_refused_before_they_are_fetched(fake, tmp_path, monkeypatch):
    files = bert_files(tmp_path, extra={"torch_dtype": "bfloat16"})
    fake.add_repo("org/half", files)
    size = len(files["model.safetensors"])
    monkeypatch.setenv("ATTN_MEMORY_BYTES", str(size + size // 2))  # fits as stored, not upcast
    with pytest.raises(ModelLoadError, match=r"org/half needs about .* of cpu memory \(bfloat16 weights"):
        hub.download("org/half", device="cpu")
    assert not any(r.endswith("/model.safetensors") for r in downloads(fake))
    monkeypatch.setenv("ATTN_MEMORY_BYTES", str(2 * size))
    hub.download("org/half", device="cpu")
    assert any(r.endswith("/model.safetensors") for r in downloads(fake))


def test_a_full_disk_is_refused_before_the_download(fake, tmp_path, monkeypatch):
    fake.add_repo("org/tiny-bert", bert_files(tmp_path))
    monkeypatch.setattr(hub.shutil, "disk_usage", lambda path: type("U", (), {"free": 10})())
    with pytest.raises(ModelLoadError, match="needs .* on disk and .* has 0.0 MB free.*HF_HOME"):
        hub.download("org/tiny-bert")
    assert downloads(fake) == []


# --- the official DETR checkpoints --------------------------------------------------------------------


def detr_checkpoint() -> bytes:
    torch.manual_seed(0)
    state = {k: v.contiguous() for k, v in build_detr(TINY_DETR).state_dict().items()}
    buffer = io.BytesIO()
    torch.save({"model": state}, buffer)
    return buffer.getvalue()


def serve_detr(fake: FakeHub, monkeypatch, data: bytes, prefix: str | None = None) -> str:
    """Serve `data` as the detr-r50 file, named with its sha256 prefix (or `prefix`)."""
    name = f"detr-r50-{prefix or hashlib.sha256(data).hexdigest()[:8]}.pth"
    monkeypatch.setitem(hub.DETR_URLS, "detr-r50", fake.add_file(name, data))
    return name


def test_an_official_detr_name_is_fetched_checked_and_loaded(fake, tmp_path, monkeypatch):
    data = detr_checkpoint()
    name = serve_detr(fake, monkeypatch, data)
    assert hub.plan("detr-r50").total == len(data)
    with pytest.raises(hub.NotDownloaded):
        load_model("detr-r50", kind="detr")
    seen = []
    path = hub.download("detr-r50", progress=lambda done, total: seen.append((done, total)))
    assert path == tmp_path / "torch" / "hub" / "checkpoints" / name and path.read_bytes() == data
    assert seen[-1] == (len(data), len(data))
    by_name = load_model("detr-r50", kind="detr")
    (tmp_path / "local").mkdir()
    by_path = load_model(str(write_dir(tmp_path / "local", {name: data}) / name), kind="detr")
    for (k, a), (_, b) in zip(by_name.model.state_dict().items(), by_path.model.state_dict().items()):
        assert torch.equal(a, b), k


def test_a_checkpoint_whose_hash_does_not_match_is_refused_and_not_kept(fake, tmp_path, monkeypatch):
    serve_detr(fake, monkeypatch, detr_checkpoint(), prefix="00000000")
    with pytest.raises(ModelLoadError, match="has sha256 .*not the 00000000 its name promises.*deleted"):
        hub.download("detr-r50")
    assert list((tmp_path / "torch" / "hub" / "checkpoints").iterdir()) == []
    with pytest.raises(hub.NotDownloaded):
        load_model("detr-r50", kind="detr")


def test_an_interrupted_checkpoint_download_is_not_kept(fake, tmp_path, monkeypatch):
    data = detr_checkpoint()
    name = serve_detr(fake, monkeypatch, data)
    fake.cut[name] = len(data) // 3
    with pytest.raises(ModelLoadError, match="detr-r50"):
        hub.download("detr-r50")
    assert list((tmp_path / "torch" / "hub" / "checkpoints").iterdir()) == []
    assert hub.cached("detr-r50") is None
    del fake.cut[name]
    assert hub.download("detr-r50").read_bytes() == data


def test_a_disk_that_fills_during_the_download_leaves_nothing(fake, tmp_path, monkeypatch):
    serve_detr(fake, monkeypatch, detr_checkpoint())
    real_fdopen = os.fdopen

    class Full(io.RawIOBase):
        def __init__(self, fd):
            self.file = real_fdopen(fd, "wb")

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __exit__(self, *exc):
            self.file.close()

    monkeypatch.setattr(hub.os, "fdopen", lambda fd, mode: Full(fd))
    with pytest.raises(ModelLoadError, match="the disk filled while downloading detr-r50.*TORCH_HOME"):
        hub.download("detr-r50")
    assert list((tmp_path / "torch" / "hub" / "checkpoints").iterdir()) == []


def test_a_file_url_works_as_a_server(tmp_path, monkeypatch):
    data = detr_checkpoint()
    name = f"detr-r50-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    (tmp_path / name).write_bytes(data)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setitem(hub.DETR_URLS, "detr-r50", (tmp_path / name).as_uri())
    assert hub.download("detr-r50").read_bytes() == data
    assert [p.name for p in (tmp_path / "torch" / "hub" / "checkpoints").iterdir()] == [name]


def test_a_model_loaded_by_name_is_called_by_its_name(fake, tmp_path):
    fake.add_repo("org/tiny-bert", bert_files(tmp_path))
    hub.download("org/tiny-bert")
    assert load_model("org/tiny-bert", kind="encoder").name == "org/tiny-bert"
    assert load_model("org/tiny-bert", kind="encoder", revision="main").name == "org/tiny-bert@main"


def test_an_unreachable_hub_is_said_so():
    httpx = pytest.importorskip("httpx2")  # huggingface_hub's HTTP client
    message = str(hub._explain("org/x", None, httpx.ConnectError("[Errno 111] Connection refused")))
    assert "the Hugging Face Hub cannot be reached (ConnectError" in message and "HF_HUB_OFFLINE=1" in message
