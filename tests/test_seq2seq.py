"""The encoder-decoder: capture parity, the masks, where cross-attention reads from, the date task,
training, the shipped weights and the page."""

import datetime as dt
import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from models.date_task import (
    EOS,
    MAX_SRC_LEN,
    SRC_VOCAB,
    TGT_VOCAB,
    encode_pairs,
    encode_sources,
    field_attention,
    is_held_out,
    make_pairs,
    ordinal_words,
    parse_date,
    read_fields,
    validate,
    write_date,
)
from models.seq2seq import (
    Seq2SeqLoadError,
    build_seq2seq,
    decode_step_by_step,
    greedy_generate,
    load_seq2seq,
    save_seq2seq,
)
from scripts.train_seq2seq import exact_match, task_config, train
from tests.conftest import count_calls, figure, z
from viz.heatmap import MASK_GREY, masked_colour
from viz.seq2seq import head_rows_heatmap, masked_attention_heatmap, next_token_bar

WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "seq2seq-dates"
PAGE = str(Path(__file__).resolve().parents[1] / "app_pages" / "encoder_decoder.py")


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    config = replace(task_config("tiny"), n_encoder_layers=2, n_decoder_layers=2)
    return build_seq2seq(config).eval(), config


def batch(n: int = 3, seed: int = 0):
    return encode_pairs(make_pairs(n, seed=seed, held_out=False))


def test_capture_matches_fast_path(tiny):
    model, _ = tiny
    src, tgt_in, _ = batch()
    fast = model(src, tgt_in)
    slow = model(src, tgt_in, capture=True)
    assert fast.encoder_self is None and fast.cross is None
    torch.testing.assert_close(slow.logits, fast.logits, atol=1e-5, rtol=1e-5)
    assert len(slow.encoder_self) == len(slow.decoder_self) == len(slow.cross) == 2


def test_record_shapes(tiny):
    model, config = tiny
    src, tgt_in, _ = batch()
    out = model(src, tgt_in, capture=True)
    b, ts, tt, nh = src.size(0), src.size(1), tgt_in.size(1), config.n_heads
    assert out.encoder_self[0].probs.shape == (b, nh, ts, ts)
    assert out.decoder_self[0].probs.shape == (b, nh, tt, tt)
    assert out.cross[0].probs.shape == (b, nh, tt, ts)
    assert out.memory.shape == (b, ts, config.d_model)


def test_decoder_self_attention_is_causal(tiny):
    model, _ = tiny
    src, tgt_in, _ = batch()
    for record in model(src, tgt_in, capture=True).decoder_self:
        upper = torch.triu(torch.ones(tgt_in.size(1), tgt_in.size(1), dtype=torch.bool), diagonal=1)
        assert torch.all(record.probs[..., upper] == 0)  # exactly zero after the softmax
        assert torch.all(record.masked[..., upper] == float("-inf"))  # -inf before it
        assert torch.all(record.probs[..., ~upper] > 0)


def test_padding_is_never_attended(tiny):
    model, _ = tiny
    src, tgt_in, _ = batch(4)
    pad = src == model.pad_id  # (B, Ts)
    assert pad.any(), "the batch must contain padded sources for this test to mean anything"
    out = model(src, tgt_in, capture=True)
    for record in out.encoder_self + out.cross:
        assert torch.all(record.probs.transpose(1, 3)[pad] == 0)  # (B, Tk, Tq, nh) indexed by padded keys


def test_cross_attention_rows_sum_to_one(tiny):
    model, _ = tiny
    src, tgt_in, _ = batch()
    for record in model(src, tgt_in, capture=True).cross:
        torch.testing.assert_close(record.probs.sum(-1), torch.ones(record.probs.shape[:-1]))


def test_cross_attention_keys_and_values_come_from_the_memory(tiny):
    model, _ = tiny
    src, tgt_in, _ = batch(1)
    memory, memory_mask, _ = model.encode(src)
    _, _, cross = model.decode(tgt_in, memory, memory_mask, capture=True)
    layer = model.decoder[0].cross_attn
    torch.testing.assert_close(cross[0].k, layer.split_heads(layer.k_proj(memory)))
    torch.testing.assert_close(cross[0].v, layer.split_heads(layer.v_proj(memory)))

    other = memory + torch.randn_like(memory)
    _, self2, cross2 = model.decode(tgt_in, other, memory_mask, capture=True)
    _, self1, _ = model.decode(tgt_in, memory, memory_mask, capture=True)
    # The first layer's masked self-attention reads only the target: a new memory cannot change it ...
    torch.testing.assert_close(self2[0].probs, self1[0].probs)
    # ... while cross-attention takes K and V from the memory, so they change, and Q does not.
    torch.testing.assert_close(cross2[0].q, cross[0].q)
    assert not torch.allclose(cross2[0].k, cross[0].k)
    assert not torch.allclose(cross2[0].probs, cross[0].probs)


def test_step_by_step_rows_equal_the_full_pass(tiny):
    model, config = tiny
    src, _, _ = batch(1)
    run = decode_step_by_step(model, src, 6, config.bos_id, config.eos_id)
    fast = greedy_generate(model, src, 6, config.bos_id, config.eos_id)[0].tolist()
    assert run.tokens == fast[: len(run.tokens)]
    assert len(run.steps) == len(run.tokens)
    for t, step in enumerate(run.steps):
        for layer in range(config.n_decoder_layers):
            full_self = run.output.decoder_self[layer].probs[0]  # (nh, Tt, Tt)
            torch.testing.assert_close(step.self_rows[layer], full_self[:, t, : t + 1])
            torch.testing.assert_close(step.cross_rows[layer], run.output.cross[layer].probs[0, :, t])
        assert int(step.probs.argmax()) == step.token_id


def test_save_and_load_round_trip(tiny, tmp_path):
    model, config = tiny
    save_seq2seq(model, config, tmp_path, task="test")
    loaded, config2, meta = load_seq2seq(tmp_path)
    assert config2 == config and meta["task"] == "test"
    src, tgt_in, _ = batch()
    torch.testing.assert_close(loaded(src, tgt_in).logits, model(src, tgt_in).logits)


def test_load_refuses_a_broken_directory(tmp_path):
    with pytest.raises(Seq2SeqLoadError, match="train_seq2seq"):
        load_seq2seq(tmp_path)
    (tmp_path / "config.json").write_text('{"model": {"d_model": 32, "n_heads": 2}}')
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(Seq2SeqLoadError):
        load_seq2seq(tmp_path)


# --- the date task -------------------------------------------------------------------------------------


def test_ordinal_words():
    assert [ordinal_words(d) for d in (1, 2, 3, 11, 12, 20, 21, 26, 30, 31)] == [
        "first", "second", "third", "eleventh", "twelfth", "twentieth", "twenty-first", "twenty-sixth",
        "thirtieth", "thirty-first",
    ]  # fmt: skip
    with pytest.raises(ValueError):
        ordinal_words(32)


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("twenty-sixth of November 2026", "2026-11-26"),
        ("26 November 2026", "2026-11-26"),
        ("November 26th, 2026", "2026-11-26"),
        ("the 26th of Nov 2026", "2026-11-26"),
        ("Thursday, 26 Nov. 2026", "2026-11-26"),
        ("sept the first, 1900", "1900-09-01"),
    ],
)
def test_reference_parser(text, iso):
    assert str(parse_date(text)) == iso


def test_read_fields_spans():
    fields = read_fields("Thursday, the 26th of Nov. 2026")
    text = "thursday, the 26th of nov. 2026"
    assert {k: text[slice(*v)] for k, v in fields.spans.items()} == {
        "day": "26th",
        "month": "nov",
        "year": "2026",
    }


def test_field_attention_measures_mass_on_the_source_field():
    spans = {"year": (0, 4), "month": (5, 8), "day": (9, 11)}
    cross = np.zeros((11, 12))
    cross[0:4, 1] = 1.0  # year rows read the year
    cross[5:7, 6] = 0.5  # month rows: half on the month ...
    cross[5:7, 0] = 0.5  # ... half on the year
    cross[8:10, 0] = 1.0  # day rows read the wrong field
    shares = field_attention(cross, spans)
    assert shares == {"year": 1.0, "month": 0.5, "day": 0.0}


def test_reference_parser_refuses_unclear_or_impossible_dates():
    assert parse_date("30 february 2026") is None
    assert parse_date("november 2026") is None
    assert parse_date("26th 27th november 2026") is None
    assert parse_date("26nd november 2026") is None


def test_generator_round_trips_through_the_parser_and_fits_the_model():
    rng = random.Random(1)
    first, last = dt.date(1900, 1, 1).toordinal(), dt.date(2099, 12, 31).toordinal()
    for _ in range(3000):
        date = dt.date.fromordinal(rng.randint(first, last))
        text = write_date(date, rng)
        assert parse_date(text) == date, text
        assert validate(text).ok and len(text) <= MAX_SRC_LEN


def test_held_out_dates_never_appear_in_training_pairs():
    train_dates = {parse_date(text) for text, _ in make_pairs(2000, seed=3, held_out=False)}
    held = {parse_date(text) for text, _ in make_pairs(200, seed=3, held_out=True)}
    assert not any(is_held_out(d) for d in train_dates) and all(is_held_out(d) for d in held)
    assert make_pairs(5, seed=9, held_out=True) == make_pairs(5, seed=9, held_out=True)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   \n ", "empty"),
        ("26 novembre 2026 à midi", "'à'"),
        ("26/11/2026", "'/'"),
        ("the twenty-sixth of november 2026 " * 3, "more than the 48"),
    ],
)
def test_validator_says_what_it_accepts(text, message):
    result = validate(text)
    assert not result.ok and message in result.error and "The model accepts" in result.error


def test_validator_normalises():
    result = validate("  Twenty-Sixth   of\tNovember 2026 ")
    assert result.ok and result.text == "twenty-sixth of november 2026"


def test_encode_pairs_layout():
    src, tgt_in, tgt_out = encode_pairs([("26 nov 2026", "2026-11-26"), ("1 may 1900", "1900-05-01")])
    assert src.shape == (2, 11) and tgt_in.shape == tgt_out.shape == (2, 11)
    assert SRC_VOCAB.decode(src[1].tolist()) == "1 may 1900"
    assert TGT_VOCAB.decode(tgt_in[0].tolist()) == TGT_VOCAB.decode(tgt_out[0].tolist()) == "2026-11-26"
    assert tgt_in[0, 0] == TGT_VOCAB.index["<bos>"] and tgt_out[0, -1] == TGT_VOCAB.index[EOS]


# --- training and the shipped weights ----------------------------------------------------------------


def test_training_smoke_loss_goes_down():
    config = task_config("tiny")
    _, losses = train(config, steps=60, batch_size=16, lr=3e-3, seed=0, show=False)
    assert np.mean(losses[-5:]) < 0.75 * np.mean(losses[:5])


@pytest.fixture(scope="module")
def shipped():
    return load_seq2seq(WEIGHTS)


def test_shipped_weights_are_exact_on_held_out_dates(shipped):
    model, config, meta = shipped
    assert meta["src_alphabet"] == SRC_VOCAB.alphabet and meta["tgt_alphabet"] == TGT_VOCAB.alphabet
    pairs = make_pairs(300, seed=2024, held_out=True)
    assert exact_match(model, config, pairs) == 1.0


def test_shipped_cross_attention_reads_each_field_from_its_source(shipped):
    """The alignment is readable: some head puts most of each field's attention on that written field."""
    model, config, _ = shipped
    shares = {"year": [], "month": [], "day": []}
    for text, _ in make_pairs(10, seed=7, held_out=True):
        run = decode_step_by_step(model, encode_sources([text]), 11, config.bos_id, config.eos_id)
        cross = torch.stack([r.probs[0] for r in run.output.cross]).numpy()  # (L, nh, Tt, Ts)
        for field, values in field_attention(cross, read_fields(text).spans).items():
            shares[field].append(values)
    for field, values in shares.items():
        assert np.mean(values, axis=0).max() > 0.8, field


def test_shipped_weights_on_the_examples(shipped):
    model, config, _ = shipped
    src, _, _ = encode_pairs([(validate("Twenty-sixth of November 2026").text, "")])
    run = decode_step_by_step(model, src, 12, config.bos_id, config.eos_id)
    assert TGT_VOCAB.decode(run.tokens, stop_at=EOS) == "2026-11-26" and run.tokens[-1] == config.eos_id


# --- figures and the page ----------------------------------------------------------------------------


def test_masked_heatmap_draws_the_mask():
    probs = np.tril(np.full((3, 3), 0.5))
    mask = np.tril(np.ones((3, 3), dtype=bool))
    fig = masked_attention_heatmap(probs, mask, list("abc"), list("abc"))
    (weights,) = fig.data  # one trace: masked cells are left out over the core's one mask grey
    z = np.asarray(weights.z, dtype=float)
    assert np.isnan(z[0, 1]) and z[1, 0] == 0.5 and not np.isnan(z[np.tril_indices(3)]).any()
    assert masked_colour(fig.layout) == MASK_GREY and weights.hoverongaps is False
    with pytest.raises(ValueError, match="same shape"):
        masked_attention_heatmap(probs, mask[:2], list("abc"), list("abc"))


def test_row_and_bar_figures_check_shapes():
    rows = head_rows_heatmap(np.full((4, 5), 0.2), list("abcde")).data[0]
    assert np.asarray(rows.z).shape == (4, 5) and rows.texttemplate == "%{z:.2f}"  # rounded on the cells
    with pytest.raises(ValueError):
        head_rows_heatmap(np.zeros(5), list("abcde"))
    fig = next_token_bar(np.array([0.1, 0.9]), ["0", "1"], chosen=1)
    assert list(fig.data[0].marker.color) == ["#1f77b4", "#d62728"]
    with pytest.raises(ValueError):
        next_token_bar(np.array([0.1, 0.9]), ["0"], chosen=0)


@pytest.fixture
def forward_calls(monkeypatch):
    """One entry per encoder pass: every greedy decoding encodes its source once."""
    import models.seq2seq

    return count_calls(monkeypatch, (models.seq2seq.Seq2Seq, "encode"))


def run_page(text: str | None = None):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(PAGE, default_timeout=60)
    if text is not None:  # before the first run: the page decodes only this text
        at.session_state["s2s_text"] = text
    at.run()
    assert not at.exception, at.exception
    return at


def test_page_decodes_the_default_example():
    at = run_page()
    assert not at.error
    assert any("Model output: **`2026-11-26`** · correct" in m.value for m in at.markdown)
    # step: cross row, self row, next token; whole: cross, 3 field alignments, masked self, encoder, and
    # the value norms: α, ‖α f‖, ‖f(x_j)‖, the head mean of α, ‖Σ_h α f‖
    assert len(at.get("plotly_chart")) == 14


def test_page_widgets_change_the_view_without_decoding_again(forward_calls):
    at = run_page("the 3rd of sept 1999")
    assert any("`1999-09-03`" in m.value for m in at.markdown)
    assert len(forward_calls) == 1  # this input's decoding, once
    at.slider(key="s2s_step").set_value(7).run()
    assert any("writes **`9`** (output so far: `1999-09`)" in m.value for m in at.markdown)
    read = figure(at, "s2s_step_self")["data"][0]["x"]  # step 7's row: <bos> 1 9 9 9 - 0
    assert len(read) == 7 and read[5:] == ["5 -", "6 0"]
    at.selectbox(key="s2s_step_layer").set_value(1).run()
    assert "decoder layer 1" in figure(at, "s2s_step_cross")["layout"]["title"]["text"]
    at.selectbox(key="s2s_cross_head").set_value("mean").run()
    at.selectbox(key="s2s_cross_layer").set_value(1).run()
    assert figure(at, "s2s_cross_map")["layout"]["title"]["text"] == "Decoder layer 1, mean over heads"
    at.selectbox(key="s2s_self_head").set_value(3).run()
    masked = figure(at, "s2s_self_map")
    assert masked["layout"]["title"]["text"] == "Decoder layer 0, head 3"
    at.selectbox(key="s2s_enc_layer").set_value(1).run()
    assert figure(at, "s2s_enc_map")["layout"]["title"]["text"] == "Encoder layer 1, head 0"
    assert not at.exception and len(at.get("plotly_chart")) == 14
    at.radio(key="s2s_vn_family").set_value("cross").run()
    at.selectbox(key="s2s_vn_cross_layer").set_value(1).run()
    at.selectbox(key="s2s_vn_cross_head").set_value(2).run()
    at.selectbox(key="s2s_cross_head").set_value(2).run()
    alpha, weighted = z(at, "s2s_alpha_map"), z(at, "s2s_weighted_map")
    np.testing.assert_allclose(alpha, z(at, "s2s_cross_map"), atol=1e-6)  # layer 1, head 2 of the tab
    lengths = z(at, "s2s_value_lengths")[0]  # ‖f(x_j)‖ of each source character, head 2
    np.testing.assert_allclose(weighted, alpha * lengths[None, :], rtol=1e-5, atol=1e-6)
    assert z(at, "s2s_summed_map").shape == alpha.shape and alpha.shape[1] == len("the 3rd of sept 1999")
    assert len(forward_calls) == 1  # no control reruns the model


def test_page_without_a_readable_date_skips_the_alignment():
    at = run_page("november 2026")  # no day: the model still answers, but nothing to align with
    assert not at.error and any("no single valid date" in m.value for m in at.markdown)
    assert len(at.get("plotly_chart")) == 11


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "empty"), ("26/11/2026", "'/'"), ("x" * 100, "more than the 48")],
)
def test_page_explains_bad_input(text, message):
    at = run_page(text)
    assert at.error and message in at.error[0].value and "accepts" in at.error[0].value
    assert not at.get("plotly_chart")
