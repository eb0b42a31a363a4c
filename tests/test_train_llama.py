"""Training smoke test for scripts/train_llama: a few steps on a tiny config lower the loss, a resumed run
ends exactly where an uninterrupted one does, and the batches hold what they promise."""

from dataclasses import replace

import pytest
import torch

from models.llama import PRESETS
from models.llama_io import load_llama, save_llama
from scripts.train_llama import (
    IGNORE,
    encode_files,
    get_batch,
    held_out_loss,
    stdlib_sources,
    train,
    train_tokenizer,
)

TEXTS = ["def add(a, b):\n    return a + b\n" * 30, "class Point:\n    x: int = 0\n    y: int = 0\n" * 30]
CONFIG = replace(PRESETS["llama-nano"], vocab_size=300)
PHASES = [(32, 4, 30), (64, 2, 10)]


def data() -> tuple:
    tokenizer = train_tokenizer(TEXTS, CONFIG.vocab_size)
    return tokenizer, encode_files(tokenizer, TEXTS)


def test_a_few_steps_lower_the_loss_and_the_result_loads(tmp_path):
    torch.set_num_threads(1)
    tokenizer, ids = data()
    assert tokenizer.get_vocab_size() <= CONFIG.vocab_size and tokenizer.token_to_id("<s>") == 0
    model, losses = train(CONFIG, ids, PHASES, lr=3e-3, device="cpu", p_copy=0.0, show_progress=False)
    assert len(losses) == 40
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5
    save_llama(model, CONFIG, tmp_path, tokenizer, extra={"training": {"steps": 40}})
    loaded = load_llama(tmp_path)
    assert loaded.encode("def add").ids[0] == 0  # the tokenizer starts every input with <s>
    assert held_out_loss(loaded.model, ids, 64, "cpu") == held_out_loss(model, ids, 64, "cpu")


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path):
    torch.set_num_threads(1)
    _, ids = data()
    straight, losses = train(CONFIG, ids, PHASES, 3e-3, "cpu", p_copy=0.5, show_progress=False)
    checkpoint = tmp_path / "resume.pt"
    train(
        CONFIG,
        ids,
        PHASES,
        3e-3,
        "cpu",
        p_copy=0.5,
        checkpoint=checkpoint,
        stop_after=23,
        show_progress=False,
    )
    assert torch.load(checkpoint, weights_only=True)["step"] == 23
    resumed, resumed_losses = train(
        CONFIG, ids, PHASES, 3e-3, "cpu", p_copy=0.5, checkpoint=checkpoint, show_progress=False
    )
    assert resumed_losses == losses
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


def test_batches_start_with_bos_shift_by_one_and_copy_a_block_far_apart():
    text = torch.arange(1, 5001, dtype=torch.int32) % 250 + 5  # no id repeats within 250 tokens
    x, y = get_batch(text, batch=8, t=200, vocab=300, p_copy=1.0, g=torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (8, 200)
    assert (x[:, 0] == 0).all() and torch.equal(x[:, 1:], y[:, :-1])
    for row in torch.cat([x, y[:, -1:]], dim=1):
        # a copied block of n >= 16 ids shows up as the same 16-gram at two positions
        grams = {tuple(row[i : i + 16].tolist()): i for i in range(1, len(row) - 15)}
        assert len(grams) < len(row) - 15


def test_sources_are_gathered_in_sorted_order_without_tests(tmp_path):
    (tmp_path / "b.py").write_text("B = 2\n")
    (tmp_path / "a.py").write_text("A = 1\n")
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "c.py").write_text("C = 3\n")
    (tmp_path / "latin.py").write_bytes(b"# \xe9\n")
    assert stdlib_sources(tmp_path) == [("a.py", "A = 1\n"), ("b.py", "B = 2\n")]


def test_head_measures_refuse_a_probe_shorter_than_the_long_gap(monkeypatch):
    import scripts.train_llama as script
    from models.llama import build_llama

    model = build_llama(CONFIG).eval()
    monkeypatch.setattr(script, "MEASURE_LENGTH", 128)
    monkeypatch.setattr(script, "LONG_GAP", 100)
    with pytest.raises(ValueError, match="64 tokens later, under 100"):
        script.measure_heads(model, torch.arange(5, 300), CONFIG.vocab_size)
    monkeypatch.setattr(script, "LONG_GAP", 64)
    scores = script.measure_heads(model, torch.arange(5, 300), CONFIG.vocab_size)
    assert {name: values.shape for name, values in scores.items()} == {
        name: (CONFIG.n_layer, CONFIG.n_head) for name in ("sink", "previous_token", "induction")
    }


def test_tiled_rows_repeat_one_random_block_and_ignore_its_first_copy():
    text = torch.arange(1, 5001, dtype=torch.int32) % 250 + 5
    x, y = get_batch(text, 16, 512, 300, 0.0, torch.Generator().manual_seed(0), p_tiled=1.0)
    assert (x[:, 0] == 0).all()
    periods = set()
    for row, target in zip(x, y):
        ignored = int((target == IGNORE).sum())
        period = ignored - 1  # the first copy's targets and the next one (the copy's first id)
        assert (
            16 <= period <= 256 and (target[:ignored] == IGNORE).all() and (target[ignored:] != IGNORE).all()
        )
        ids = torch.cat([row[1:], target[-1:]])  # the window after <s>
        assert torch.equal(ids[period:], ids[: len(ids) - period])  # one block repeated
        periods.add(period)
    assert len(periods) > 8  # the period varies from row to row


def test_uniform_attention_levels_match_the_scores_of_a_uniform_map():
    from models.head_scores import induction_score, previous_token_score
    from scripts.train_llama import uniform_scores

    t = 64
    uniform = torch.tril(torch.ones(t, t, dtype=torch.float64))
    uniform /= uniform.sum(-1, keepdim=True)
    levels = uniform_scores(t)
    assert levels["sink"] == pytest.approx(float(uniform[:, 0].mean()))
    assert levels["previous_token"] == pytest.approx(float(previous_token_score(uniform)))
    assert levels["induction"] == pytest.approx(float(induction_score(uniform[1:, 1:], t // 2)))
