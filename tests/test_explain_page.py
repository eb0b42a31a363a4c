"""AppTest of the rollout, flow and value-norm page: every model kind draws, controls never rerun the
model, and inputs the page cannot explain get a message."""

import re
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import models.bert
import models.gpt
import models.seq2seq
from tests.conftest import count_calls, figure, z

ROOT = Path(__file__).parents[1]
PAGE = str(ROOT / "app_pages" / "rollout_flow.py")
KINDS = {  # picker label -> (the method every input runs once, calls per input, text key)
    "all-MiniLM-L6-v2 (encoder)": ((models.bert.BertModel, "forward"), 1, "rf_text_encoder"),
    "gpt-stdlib (causal decoder)": ((models.gpt.GPT, "forward"), 1, "rf_text_causal"),
    # greedy decoding encodes once, the captured pass over the whole decoding once more
    "seq2seq-dates (encoder–decoder)": ((models.seq2seq.Seq2Seq, "encode"), 2, "rf_text_seq2seq"),
}


def run_page(model: str, **state) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=180)
    at.session_state["rf_model"] = model
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


@pytest.mark.parametrize("model", list(KINDS))
def test_each_kind_draws_and_controls_never_rerun_the_model(model, monkeypatch):
    (cls, method), per_input, _ = KINDS[model]
    calls = count_calls(monkeypatch, (cls, method))
    at = run_page(model)
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert len(calls) == per_input
    rollout, raw = z(at, "rf_rollout_map"), z(at, "rf_raw_map")
    n_out, n_in = rollout.shape
    np.testing.assert_allclose(np.nansum(rollout, 1), 1, atol=1e-5)  # rows are distributions
    if "encoder–decoder" in model:
        assert n_in == raw.shape[1] + n_out  # the source characters, then the decoder's own inputs
        assert any("decoded **`2026-11-26`**" in m.value for m in at.markdown)
    else:
        assert rollout.shape == raw.shape == (n_out, n_out)
    if "encoder)" not in model:  # decoders: what an output cannot reach is drawn masked
        assert np.isnan(rollout[:, n_in - n_out :][np.triu_indices(n_out, 1)]).all()
    output = n_out - 1 if "encoder)" not in model else 0
    np.testing.assert_allclose(z(at, "rf_strip_rollout")[0], rollout[output], atol=1e-6)
    flows = z(at, "rf_strip_flow")[0]
    assert np.nanmax(flows) <= 1 + 1e-6 and np.nanmax(flows) > 0.1
    error = next(c.value for c in at.caption if c.value.startswith("Check:"))
    assert float(re.search(r"within ([0-9.e+-]+),", error).group(1)) < 1e-4

    kind = KINDS[model][2].removeprefix("rf_text_")
    at.selectbox(key=f"rf_output_{kind}").set_value(1).run()
    np.testing.assert_allclose(z(at, "rf_strip_rollout")[0], rollout[1], atol=1e-6)
    at.selectbox(key="rf_reduce").set_value("max").run()
    assert "max over heads" in figure(at, "rf_rollout_map")["layout"]["title"]["text"]
    family = "cross" if "encoder–decoder" in model else ("encoder" if "encoder)" in model else "decoder_self")
    if "encoder–decoder" in model:
        at.radio(key="rf_vn_family").set_value("cross").run()
    at.selectbox(key=f"rf_vn_{family}_layer").set_value(1).run()
    at.selectbox(key=f"rf_vn_{family}_head").set_value(2).run()
    assert not at.exception, at.exception
    title = figure(at, "rf_weighted_map")["layout"]["title"]["text"]
    assert "layer 1" in title and "head 2" in title
    alpha, weighted = z(at, "rf_alpha_map"), z(at, "rf_weighted_map")
    lengths = z(at, "rf_value_lengths")[0]  # ‖f(x_j)‖ of head 2: the weighted map is α scaled per key
    np.testing.assert_allclose(weighted, alpha * lengths[None, :], rtol=1e-5, atol=1e-6)
    assert len(calls) == per_input  # no control reran the model


def test_empty_text_asks_for_text():
    at = run_page("gpt-stdlib (causal decoder)", rf_text_causal="  \n ")
    assert not at.exception
    assert "Type some text" in at.info[0].value
    assert not at.get("plotly_chart")


def test_a_date_the_model_cannot_read_gets_a_message():
    at = run_page("seq2seq-dates (encoder–decoder)", rf_text_seq2seq="26/11/2026")
    assert not at.exception
    assert "does not know" in at.error[0].value


def test_a_local_directory_is_read_by_its_kind():
    at = run_page("A Hugging Face name or a local directory", rf_path=str(ROOT / "weights" / "gpt-stdlib"))
    assert not at.exception and not at.error
    assert z(at, "rf_rollout_map").shape[0] == len("Return the number of items in the list. Return the")
    at = run_page("A Hugging Face name or a local directory", rf_path=str(ROOT / "no-such-model"))
    assert "Cannot load the model" in at.error[0].value


def test_flow_of_a_long_input_waits_to_be_asked_for(monkeypatch):
    calls = count_calls(monkeypatch, (models.bert.BertModel, "forward"))
    text = " ".join(["word"] * 428)  # 430 wordpieces with [CLS] and [SEP]: 6 × 430² edges, past 2^20
    at = run_page("all-MiniLM-L6-v2 (encoder)", rf_text_encoder=text)
    assert not at.exception and not at.error
    assert z(at, "rf_strip_rollout")[0].shape == (430,)  # the map itself is a raster at this size
    assert not [c for c in at.get("plotly_chart") if "rf_strip_flow" in c.proto.id]
    at.toggle(key="rf_flow_on").set_value(True).run()
    flows = z(at, "rf_strip_flow")[0]
    assert flows.shape == (430,) and not np.isnan(flows).any() and 0.1 < flows.max() <= 1 + 1e-6
    proof = next(c.value for c in at.caption if c.value.startswith("Every value is an exact maximum flow"))
    assert sum(int(n) for n in re.findall(r"(\d+) (?:equal|ran)", proof)) == 430  # one certificate each
    assert len(calls) == 1
