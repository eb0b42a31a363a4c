"""Training smoke test: a few dozen steps of the real training loop on a tiny config lower the loss."""

import torch

from models.gpt import PRESETS, build_gpt
from models.gpt_io import ALPHABET, CharTokenizer
from scripts.train_gpt import bits_per_character, get_batch, stdlib_docstrings, train

TEXT = "Return the number of items in the container. " * 40


def test_a_few_dozen_steps_lower_the_loss():
    torch.set_num_threads(1)
    data = torch.tensor(CharTokenizer(ALPHABET).encode(TEXT).ids, dtype=torch.uint8)
    config = PRESETS["gpt-nano"]
    before = bits_per_character(build_gpt(config).eval(), data, 64, "cpu")
    model, losses = train(
        config, data, steps=40, batch=8, lr=3e-3, device="cpu", p_repeat=0.0, p_tiled=0.0, show_progress=False
    )
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5
    assert bits_per_character(model, data, 64, "cpu") < before


def test_batches_hold_a_repeated_segment_and_shift_by_one():
    data = torch.zeros(1000, dtype=torch.uint8)  # all unknown, so a written-in segment stands out
    g = torch.Generator().manual_seed(0)
    x, y = get_batch(data, batch=4, t=200, vocab=97, p_repeat=1.0, g=g)
    assert x.shape == y.shape == (4, 200)
    assert torch.equal(x[:, 1:], y[:, :-1])
    for row in x:
        written = row[row > 0]
        half = len(written) // 2  # the segment appears exactly twice (random ids are never 0)
        assert len(written) % 2 == 0 and torch.equal(written[:half], written[half:])


def test_docstrings_are_gathered_in_a_deterministic_order(tmp_path):
    (tmp_path / "b.py").write_text('"""Module b."""\ndef f():\n    """Function f."""\n')
    (tmp_path / "a.py").write_text('"""Module a."""\n')
    (tmp_path / "broken.py").write_text("def (:\n")
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "c.py").write_text('"""Skipped."""\n')
    assert stdlib_docstrings(tmp_path) == ["Module a.", "Module b.", "Function f."]


def test_tiled_rows_repeat_one_random_block():
    data = torch.zeros(1000, dtype=torch.uint8)
    x, y = get_batch(
        data, batch=3, t=100, vocab=97, p_repeat=0.0, g=torch.Generator().manual_seed(0), p_tiled=1.0
    )
    for row in torch.cat([x, y[:, -1:]], dim=1):
        period = next(n for n in range(8, 50) if torch.equal(row[n:], row[:-n]))
        assert (row > 0).all() and period < 50
