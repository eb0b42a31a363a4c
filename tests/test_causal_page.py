"""AppTest of the causal decoder page on the shipped gpt-stdlib weights."""

import re
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import models.bert
import models.gpt
from tests.conftest import count_calls, figure, z
from viz.heatmap import MASK_GREY, masked_colour

PAGE = str(Path(__file__).parents[1] / "app_pages" / "causal_decoder.py")


@pytest.fixture(scope="module")
def default_page():
    at = AppTest.from_file(PAGE, default_timeout=180)
    at.session_state["cd_new"] = 12
    return at.run()


def test_head_scores_find_an_induction_head(default_page):
    at = default_page
    assert not at.exception and not at.error
    assert z(at, "ind_scores").shape == z(at, "prev_scores").shape == (2, 4)
    summary = next(m.value for m in at.markdown if m.value.startswith("Best induction head"))
    assert float(re.search(r"\(score ([0-9.]+)\)", summary).group(1)) >= 0.5
    for key in ("prev_scores", "ind_scores"):  # each score printed rounded on its cell, not 0.77999997…
        trace = figure(at, key)["data"][0]
        assert trace["texttemplate"] == "%{z:.2f}"


def test_repeated_text_and_the_causal_mask(default_page):
    at = default_page
    t = 2 * len("Quick zebras jump. ")
    probs, before = z(at, "own_text"), z(at, "mask_before")
    assert probs.shape == before.shape == (t, t)
    upper = np.triu(np.ones((t, t), dtype=bool), 1)
    assert (z(at, "mask_after")[upper] == 0).all()  # exactly zero after the softmax
    assert np.isnan(before[upper]).all() and np.isfinite(before[~upper]).all()  # −∞ drawn as masked
    assert masked_colour(figure(at, "mask_before")["layout"]) == MASK_GREY
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    circles = figure(at, "own_text")["data"][-1]  # induction targets, named by the axes' labels
    assert circles["y"][0] == "19 Q" and circles["x"][0] == "1 u"  # the second "Q" looks at the first "u"
    share = next(m.value for m in at.markdown if "induction target" in m.value)
    assert (
        float(re.search(r"\*\*([0-9.]+)\*\*", share).group(1)) > 0.3
    )  # chance (uniform over the past) is 0.04


def test_generation_adds_one_row_per_character(default_page):
    at = default_page
    rows = z(at, "generation")
    assert rows.shape == (12, len("Return the ") + 11)
    assert np.isnan(rows[0, len("Return the ") :]).all() and not np.isnan(rows[-1]).any()


def test_encoder_vs_decoder(default_page):
    at = default_page
    enc, dec = z(at, "vs_encoder"), z(at, "vs_decoder")
    assert dec.shape == (len("Quick zebras jump. "),) * 2
    assert (dec[np.triu(np.ones(dec.shape, dtype=bool), 1)] == 0).all()
    assert enc[np.triu(np.ones(enc.shape, dtype=bool), 1)].sum() > 0  # the encoder looks ahead
    future = [float(m.value) for m in at.metric]
    assert future[0] > 0 and future[1] == 0


def run_with(**state):
    at = AppTest.from_file(PAGE, default_timeout=180)
    at.session_state["cd_new"] = 5
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


def test_empty_text_and_prompt_get_messages():
    at = run_with(cd_text="  ", cd_prompt="")
    assert not at.exception
    infos = " ".join(i.value for i in at.info)
    assert "Type some text" in infos and "Type a prompt" in infos


def test_unknown_characters_long_prompt_and_long_generation_are_bounded():
    at = run_with(cd_text="Grüße, 世界 ", cd_prompt="x" * 500, cd_new=5000)
    assert not at.exception
    warnings = " ".join(w.value for w in at.warning)
    assert "outside the model's alphabet" in warnings and "'ü'" in warnings
    assert "the first 372 were dropped" in warnings
    assert not at.error or "fills the whole context" in at.error[0].value
    at.session_state["cd_prompt"] = "Return"
    at.run()
    assert "Generating 122 characters, not 5000" in " ".join(w.value for w in at.warning)
    assert z(at, "generation").shape[0] == 122


@pytest.fixture
def forward_calls(monkeypatch):
    """Every forward of MiniLM or the GPT, by model class."""
    return count_calls(monkeypatch, (models.bert.BertModel, "forward"), (models.gpt.GPT, "forward"))


def test_head_choices_never_rerun_a_model(forward_calls):
    at = run_with(cd_text="Text seen by this test only. ")
    assert not at.exception
    # one forward per input: the repeated text (sections 2-3), the text itself for each model (section 5)
    assert forward_calls.count("BertModel") == 1 and forward_calls.count("GPT") >= 2
    n_forwards = len(forward_calls)
    own = z(at, "own_text")
    for key, value in [("cd_layer", 0), ("cd_head", 3), ("cd_enc_layer", 5), ("cd_enc_head", "mean")]:
        at.selectbox(key=key).set_value(value).run()
    at.selectbox(key="cd_dec_head").set_value("max").run()
    assert not at.exception
    assert not np.array_equal(z(at, "own_text"), own)  # another head is shown
    assert figure(at, "own_text")["layout"]["title"]["text"] == "Layer 0, head 3"
    assert "Layer 0, head 3" in figure(at, "generation")["layout"]["title"]["text"]
    assert figure(at, "vs_encoder")["layout"]["title"]["text"] == "MiniLM L5 mean over heads"
    assert len(forward_calls) == n_forwards


def test_value_norms_of_the_head_on_the_text_of_sections_2_and_3(default_page):
    """Section 6 (opened by its toggle): α of the chosen head is section 2's map, masked grey above the
    diagonal, and ‖α f(x)‖ is α scaled by each key's ‖f(x_j)‖."""
    at = default_page
    at.toggle(key="cd_vn_on").set_value(True).run()
    assert not at.exception and not at.error
    layer, head = at.session_state["cd_layer"], at.session_state["cd_head"]
    at.selectbox(key="cd_vn_decoder_self_layer").set_value(layer).run()
    at.selectbox(key="cd_vn_decoder_self_head").set_value(head).run()
    alpha, weighted = z(at, "cd_alpha_map"), z(at, "cd_weighted_map")
    t = 2 * len("Quick zebras jump. ")
    above = np.triu_indices(t, 1)
    assert alpha.shape == (t, t) and np.isnan(alpha[above]).all() and np.isnan(weighted[above]).all()
    np.testing.assert_allclose(np.nan_to_num(alpha), z(at, "own_text"), atol=1e-6)
    lengths = z(at, "cd_value_lengths")[0]
    np.testing.assert_allclose(weighted, alpha * lengths[None, :], rtol=1e-5, atol=1e-6)
    summed = z(at, "cd_summed_map")
    assert summed.shape == (t, t) and np.isnan(summed[above]).all() and (summed[np.tril_indices(t)] > 0).all()
