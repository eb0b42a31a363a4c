"""Previous-token and induction scores on hand-made attention patterns."""

import pytest
import torch

from models.head_scores import (
    induction_score,
    induction_share,
    induction_targets,
    period_targets,
    previous_token_score,
    repeated_random_tokens,
)


def one_hot_rows(targets: list[int]) -> torch.Tensor:
    """(T, T) attention where query i puts all its weight on key targets[i]."""
    return torch.nn.functional.one_hot(torch.tensor(targets), len(targets)).float()


def test_previous_token_head():
    probs = one_hot_rows([0, 0, 1, 2, 3, 4, 5, 6])  # query i -> key i - 1
    assert previous_token_score(probs).item() == 1.0
    assert induction_score(probs, period=4).item() == 0.0


def test_induction_head():
    period = 4  # tokens a b c d a b c d: query 4 (second a) -> key 1 (b), query 7 (second d) -> key 4
    probs = one_hot_rows([0, 0, 0, 0, 1, 2, 3, 4])
    assert induction_score(probs, period).item() == 1.0
    assert previous_token_score(probs).item() == pytest.approx(1 / 7)  # only query 1 hits key 0


def test_uniform_causal_attention():
    t = 6
    probs = torch.ones(t, t).tril()
    probs = probs / probs.sum(-1, keepdim=True)  # query i spreads 1 / (i + 1) over keys 0..i
    expected_prev = sum(1 / (i + 1) for i in range(1, t)) / (t - 1)
    assert previous_token_score(probs).item() == pytest.approx(expected_prev)
    expected_induction = sum(1 / (i + 1) for i in range(3, t)) / 3
    assert induction_score(probs, period=3).item() == pytest.approx(expected_induction)


def test_scores_keep_leading_dimensions():
    probs = torch.rand(2, 3, 5, 10, 10)
    assert previous_token_score(probs).shape == (2, 3, 5)
    assert induction_score(probs, 5).shape == (2, 3, 5)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="period"):
        induction_score(torch.rand(4, 4), period=4)
    with pytest.raises(ValueError, match="square"):
        previous_token_score(torch.rand(3, 4))


def test_repeated_random_tokens_repeat():
    ids = repeated_random_tokens(3, 7, low=1, high=97, seed=1)
    assert ids.shape == (3, 14)
    assert torch.equal(ids[:, :7], ids[:, 7:])
    assert ids.min() >= 1 and ids.max() < 97


def test_induction_targets_point_after_the_previous_occurrence_of_the_pair():
    ids = [5, 6, 7, 5, 6, 8]  # at 4 the pair (5, 6) came before at 0-1: look at 2, what followed
    assert induction_targets(ids) == [None, None, None, None, 2, None]
    probs = torch.zeros(6, 6)
    probs[4, 2] = 0.75
    assert induction_share(probs, induction_targets(ids)).item() == 0.75
    assert torch.isnan(induction_share(probs, [None] * 6))


def test_period_targets_match_the_induction_score():
    probs = one_hot_rows([0, 0, 0, 0, 1, 2, 3, 4])
    targets = period_targets(8, 4)
    assert targets == [None] * 4 + [1, 2, 3, 4]
    assert induction_share(probs, targets).item() == induction_score(probs, 4).item() == 1.0
