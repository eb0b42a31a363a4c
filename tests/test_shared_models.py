"""Models are shared by every session of the process: no page leaves one changed.

Every page runs on its defaults through app.py, then each model the pages share (ui.models.get_model's
cache) is compared with a fresh load of the same model: bit-identical weights and buffers, eval mode, no
hook left on any module, no gradient kept on a parameter."""

import pytest
import torch
from streamlit.testing.v1 import AppTest

from models.bert_positions import run_variants
from models.device import default_device
from models.registry import load_model
from tests.test_app import ROOT, page_paths
from ui.models import get_model

SHARED = [
    ("all-MiniLM-L6-v2", "encoder"),
    ("gpt-stdlib", "causal"),
    ("seq2seq-dates", "seq2seq"),
    ("detr-shapes", "detr"),
]


def torch_model(loaded) -> torch.nn.Module:
    """The nn.Module inside whatever the registry returns for a kind."""
    return loaded[0] if isinstance(loaded, tuple) else loaded.model


def differences(shared: torch.nn.Module, fresh: torch.nn.Module) -> list[str]:
    found = []
    fresh_state = fresh.state_dict()
    for name, value in shared.state_dict().items():
        if not torch.equal(value.cpu(), fresh_state[name].cpu()):
            found.append(f"{name} changed")
    for name, module in shared.named_modules():
        if module.training:
            found.append(f"{name or 'model'} is in training mode")
        hooks = (module._forward_hooks, module._forward_pre_hooks, module._backward_hooks)
        if any(hooks):
            found.append(f"{name or 'model'} has a hook")
    for name, param in shared.named_parameters():
        if param.grad is not None:
            found.append(f"{name} keeps a gradient")
    return found


@pytest.fixture(scope="module")
def visited():
    for path in page_paths():
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
        at.switch_page(path).run()
        assert not at.exception, (path, [e.value for e in at.exception])
    device = default_device()
    minilm = get_model("all-MiniLM-L6-v2", device, kind="encoder")
    encoding = minilm.encode("The cat sat on the mat.")
    run_variants(minilm, encoding.ids, encoding.tokens)  # positions removed and shuffled on the shared model
    return device


@pytest.mark.parametrize(("name", "kind"), SHARED)
def test_no_page_changes_a_shared_model(visited, name, kind):
    shared = get_model(name, visited, kind=kind)
    fresh = load_model(name, device=visited, kind=kind)
    assert torch_model(shared) is not torch_model(fresh)
    assert differences(torch_model(shared), torch_model(fresh)) == []


def test_the_check_sees_a_changed_model():
    model, fresh = (torch_model(load_model("gpt-stdlib", kind="causal")) for _ in range(2))
    model.train()
    handle = next(iter(model.children())).register_forward_hook(lambda *_: None)
    with torch.no_grad():
        next(model.parameters()).add_(1e-6)
    first = next(model.parameters())
    first.grad = torch.zeros_like(first)
    found = differences(model, fresh)
    handle.remove()
    assert any("changed" in f for f in found) and any("training" in f for f in found)
    assert any("hook" in f for f in found) and any("gradient" in f for f in found)
