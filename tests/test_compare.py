"""Compare: Jensen–Shannon against scipy, exact zeros for an input against itself, alignment, and the
page in AppTest (two texts, the untrained copy, two DETR checkpoints)."""

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.distance import jensenshannon
from streamlit.testing.v1 import AppTest

from models.compare import align, head_distances, js_rows, restrict, untrained_copy
from models.registry import load_model
from tests.conftest import figure, z

PAGE = str(Path(__file__).parents[1] / "app_pages" / "compare.py")


def random_rows(seed: int, shape=(3, 7, 7)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g, dtype=torch.float64).softmax(-1)


def test_js_rows_matches_scipy_and_is_zero_on_itself():
    p, q = random_rows(0), random_rows(1)
    p[0, 0] = torch.tensor([1.0, 0, 0, 0, 0, 0, 0])  # zeros in a row
    expected = jensenshannon(p.numpy(), q.numpy(), axis=-1, base=2) ** 2
    np.testing.assert_allclose(js_rows(p, q).numpy(), expected, atol=1e-12)
    np.testing.assert_allclose(js_rows(p, q).numpy(), js_rows(q, p).numpy(), atol=1e-15)
    assert (js_rows(p, p) == 0).all()
    disjoint = js_rows(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]]))
    assert disjoint.item() == 1.0  # one bit: the most two distributions can differ


def test_alignment_by_tokens_or_by_position():
    same = align(["[CLS]", "a", "[SEP]"], ["[CLS]", "a", "[SEP]"])
    assert same.by_tokens and same.n == 3 and same.notice is None
    other = align(["[CLS]", "a", "b", "[SEP]"], ["[CLS]", "c", "[SEP]"])
    assert not other.by_tokens and other.n == 3 and "matched by index" in other.notice


def test_restrict_renormalises_rows_after_a_cut():
    w = random_rows(2, (5, 5))
    cut = restrict(w, 3)
    np.testing.assert_allclose(cut.sum(-1).numpy(), 1.0, atol=1e-12)
    np.testing.assert_allclose(cut.numpy(), (w[:3, :3] / w[:3, :3].sum(-1, keepdim=True)).numpy())
    assert restrict(w, 5) is w


def test_an_input_against_itself_is_exactly_zero_and_the_untrained_copy_is_not():
    from models.attention import LAZY
    from models.readout import readout

    model = load_model("all-MiniLM-L6-v2")
    ids = model.encode("Compare a text with itself.").ids

    def family(m):
        return readout(encoder=m.run(ids, capture=LAZY).attentions)["encoder"]

    a, b = family(model), family(model)
    alignment = align(["x"] * len(ids), ["x"] * len(ids))
    assert (head_distances(a, b, alignment) == 0).all()
    fresh = untrained_copy(model)
    assert fresh.model is not model.model and fresh.name.endswith("(untrained, seed 0)")
    far = head_distances(a, family(fresh), alignment)
    assert far.shape == (6, 12) and (far > 0.01).all() and (far <= 1).all()


def run_page(**state) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=300)
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


def test_two_equal_texts_give_a_zero_difference_map_and_zero_distances():
    text = "The same text on both sides."
    at = run_page(cmp_text_a=text, cmp_text_b=text, cmp_layer=2, cmp_head=3)
    assert not at.exception, [e.value for e in at.exception]
    assert not at.info  # same tokens: no alignment notice
    assert (z(at, "cmp_diff_map") == 0).all()
    np.testing.assert_array_equal(z(at, "cmp_a_map"), z(at, "cmp_b_map"))
    assert (z(at, "cmp_js") == 0).all()
    assert figure(at, "cmp_a_map")["layout"]["title"]["text"].endswith("layer 2, head 3")


def test_two_texts_of_different_lengths_are_matched_by_position_with_a_notice():
    at = run_page(cmp_text_a="A short text.", cmp_text_b="A somewhat longer text than the first one.")
    assert not at.exception
    assert any("matched by index" in i.value for i in at.info)
    n = len(z(at, "cmp_a_map"))
    assert z(at, "cmp_b_map").shape == (n, n) == z(at, "cmp_diff_map").shape
    np.testing.assert_allclose(z(at, "cmp_b_map").sum(-1), 1.0, atol=1e-5)  # rows renormalised
    assert (z(at, "cmp_js") > 0).any()


def test_the_untrained_copy_and_two_detr_checkpoints():
    at = run_page(cmp_mode="A model against its untrained copy")
    assert not at.exception
    diff = z(at, "cmp_diff_map")
    np.testing.assert_allclose(diff, z(at, "cmp_a_map") - z(at, "cmp_b_map"), atol=1e-6)
    assert np.abs(diff).max() > 0.05
    detr = "Two DETR checkpoints on one image"
    at = run_page(cmp_mode=detr, cmp_detr_a="detr-shapes", cmp_detr_b="detr-shapes")
    assert not at.exception, [e.value for e in at.exception]
    assert (z(at, "cmp_js") == 0).all()  # a checkpoint against itself on one image
    at = run_page(cmp_mode=detr, cmp_detr_a="detr-shapes", cmp_detr_b="detr-small-untrained")
    assert not at.exception
    assert z(at, "cmp_js").shape == (3, 8) and (z(at, "cmp_js") > 0).all()


@pytest.mark.parametrize("head", ["mean", "max"])
def test_reductions_over_heads(head):
    at = run_page(cmp_text_a="Heads reduced.", cmp_text_b="Heads reduced.", cmp_head=head)
    assert not at.exception
    assert (z(at, "cmp_diff_map") == 0).all()
