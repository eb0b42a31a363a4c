"""The embedded long-context model weights/llama-stdlib (scripts/train_llama.py): it loads offline by name,
is a Llama with grouped-query attention, RoPE and a 4,096-token context, predicts held-out standard-library
source better than a unigram model of that very text, and has heads that do what the README reports at
4,096 tokens (models.long_heads), well above the level of a head that spreads its attention evenly."""

import math

import numpy as np
import pytest
import torch

from models.llama_io import TextLlama
from models.registry import describe, kind_of, load_model, names
from scripts.train_llama import (
    MEASURE_LENGTH,
    encode_files,
    held_out_loss,
    held_out_split,
    measure_heads,
    stdlib_sources,
    uniform_scores,
)
from ui.models import get_model


@pytest.fixture(scope="module")
def model() -> TextLlama:
    torch.set_num_threads(1)
    return load_model("llama-stdlib", kind="causal")


@pytest.fixture(scope="module")
def held_out(model) -> torch.Tensor:
    """The held-out files' ids (one standard-library file in 20, never trained on)."""
    _, val_texts = held_out_split(stdlib_sources())
    return encode_files(model.tokenizer, val_texts)


@pytest.fixture(scope="module")
def scores(model, held_out) -> dict[str, np.ndarray]:
    return measure_heads(model.model, held_out, model.config.vocab_size, seed=0)


def test_it_loads_by_name_as_a_grouped_query_rope_llama_with_a_4096_context(model):
    assert "llama-stdlib" in names("causal") and kind_of("llama-stdlib") == "causal"
    assert "Llama" in describe("llama-stdlib")
    assert get_model("llama-stdlib", "cpu", kind="causal").config == model.config
    cfg = model.config
    assert isinstance(model, TextLlama) and model.model_type == "llama" and model.name == "llama-stdlib"
    assert cfg.n_kv_head < cfg.n_head and cfg.n_head % cfg.n_kv_head == 0  # grouped-query attention
    assert model.kv_groups == [[0, 1], [2, 3]]
    assert cfg.max_positions >= 4096 and cfg.rope_theta > 0 and cfg.partial_rotary_factor == 1.0
    assert cfg.sliding_window is None
    assert model.encode("def f(x):\n    return x\n").ids[0] == 0  # every input starts with <s>
    size = sum(p.numel() * p.element_size() for p in model.model.parameters())
    assert size <= 30e6
    assert model.training["seed"] == 0 and model.training["measured_at"] == MEASURE_LENGTH


def test_it_beats_a_unigram_model_of_the_held_out_text_itself(model, held_out):
    tokens = held_out[: 8 * MEASURE_LENGTH].long()  # the 8 windows of 4,096 that held_out_loss reads
    counts = torch.bincount(tokens, minlength=model.config.vocab_size).double()
    p = counts[counts > 0] / len(tokens)
    unigram = float(-(p * p.log()).sum())  # the best any unigram model does on these tokens, in nats
    loss = held_out_loss(model.model, held_out, MEASURE_LENGTH, "cpu", max_windows=8)
    # measured: 2.590 nats a token against 5.7 for the unigram model
    assert unigram > 5.0 and loss < unigram - 1.5, (loss, unigram)
    assert math.isclose(loss, model.training["val_loss_nats_per_token"], abs_tol=1e-3)  # what the README says


def test_its_heads_at_4096_tokens_copy_from_1000_tokens_back_and_look_at_the_previous_token(scores):
    chance = uniform_scores(MEASURE_LENGTH)
    assert {name: values.shape for name, values in scores.items()} == {name: (3, 4) for name in chance}
    # induction on a random block repeated 2,048 tokens later: uniform attention gives 3.4e-4
    assert chance["induction"] == pytest.approx(3.4e-4, rel=0.05)
    # measured (README): layer 2 head 1 at 0.282, 850 times the uniform level; layer 2 head 0 at 0.082
    assert scores["induction"].max() > 0.15 > 400 * chance["induction"]
    assert int(scores["induction"].argmax()) == 2 * 4 + 1
    # previous-token: layer 1 head 0 at 0.921 on held-out text (uniform 0.0019)
    assert scores["previous_token"].max() > 0.8
    assert int(scores["previous_token"].argmax()) == 1 * 4 + 0
    # no attention sink formed: the most any head puts on <s> is 0.037 (uniform 0.0022)
    assert scores["sink"].max() < 0.05
