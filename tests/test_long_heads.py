"""models.long_heads: per-head scores read one map at a time equal those of a captured forward."""

from dataclasses import replace

import pytest
import torch

from models.attention import LAZY
from models.head_scores import induction_score, previous_token_score
from models.llama import PRESETS, build_llama
from models.long_heads import long_head_scores, repeated_block
from models.maps import AttentionMaps
from models.readout import readout


def test_repeated_block_starts_with_bos_and_repeats_after_the_period():
    ids, period = repeated_block(4096, 1, 300, bos=0, seed=0)
    assert ids.shape == (4096,) and ids[0] == 0 and period == 2048
    assert torch.equal(ids[1 + period :], ids[1 : 4096 - period]) and (ids[1:] >= 1).all()
    assert torch.equal(repeated_block(4096, 1, 300, bos=0, seed=0)[0], ids)
    with pytest.raises(ValueError, match="length >= 4"):
        repeated_block(3, 1, 300, bos=0)


def test_scores_equal_those_of_the_captured_probabilities():
    torch.manual_seed(0)
    config = replace(PRESETS["llama-nano"], vocab_size=300)
    model = build_llama(config).eval()
    text = [0, *range(5, 132)]
    probe, period = repeated_block(128, 1, 300, bos=0, seed=1)

    def maps(ids):
        return AttentionMaps(
            readout(decoder_self=model(torch.tensor([ids]), capture=LAZY).attentions)["decoder_self"]
        )

    scores = long_head_scores(maps(text), maps(probe.tolist()), period)
    with torch.no_grad():
        on_text = model(torch.tensor([text]), capture=True).attentions
        on_probe = model(probe[None], capture=True).attentions
    for layer in range(config.n_layer):
        probs = on_text[layer].probs[0]  # (H, T, T)
        torch.testing.assert_close(torch.tensor(scores["sink"][layer]).float(), probs[..., 0].mean(-1))
        expected = previous_token_score(probs)
        torch.testing.assert_close(torch.tensor(scores["previous_token"][layer]).float(), expected)
        expected = induction_score(on_probe[layer].probs[0, :, 1:, 1:], period)
        torch.testing.assert_close(torch.tensor(scores["induction"][layer]).float(), expected)
