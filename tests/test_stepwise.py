"""Every stage of the step-by-step attention against the module's own captured record and output."""

import threading

import pytest
import torch

from models.bert import load_bert
from models.gpt import PRESETS, build_gpt
from models.stepwise import attention_stages, capture_call, capture_calls, record_differences

ATOL = 1e-4
RTOL = 1e-5  # MiniLM scores reach ~40; float32 matmuls in another order differ by ~2e-5 there


def check_stages(module, call):
    stages = attention_stages(module, call)
    record = call.record
    for name in ("q", "k", "v", "scores", "probs"):
        torch.testing.assert_close(
            getattr(stages, name), getattr(record, name), atol=ATOL, rtol=RTOL, msg=name
        )
    assert stages.scale == pytest.approx(record.scale)
    torch.testing.assert_close(stages.scaled, record.scaled, atol=ATOL, rtol=RTOL)
    masked_ref = record.masked.expand_as(stages.masked)
    assert torch.equal(torch.isneginf(stages.masked), torch.isneginf(masked_ref))
    finite = torch.isfinite(masked_ref)
    torch.testing.assert_close(stages.masked[finite], masked_ref[finite], atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(stages.heads, record.out, atol=ATOL, rtol=RTOL)
    nh, t_q, dh = stages.heads.shape
    torch.testing.assert_close(stages.concat[:, dh : 2 * dh], record.out[1], atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(stages.output, call.output, atol=ATOL, rtol=RTOL)
    # columns as tokens: the same numbers, transposed (S5)
    torch.testing.assert_close(stages.scores_columns, stages.scores.transpose(1, 2), atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(stages.probs_columns, stages.probs.transpose(1, 2), atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(stages.heads_columns, stages.heads.transpose(1, 2), atol=ATOL, rtol=RTOL)
    assert max(record_differences(stages, call).values()) < 1e-4
    # Q really is X W_q (+ b) restricted to the head's columns
    torch.testing.assert_close(
        stages.q[0], (call.query @ stages.w_q + module.q_proj.bias)[:, :dh], atol=ATOL, rtol=RTOL
    )
    return stages


def test_every_stage_of_a_causal_layer():
    torch.manual_seed(0)
    model = build_gpt(PRESETS["gpt-nano"]).eval()
    ids = torch.randint(0, 97, (1, 17))
    layer = model.blocks[1].attention
    call = capture_call(layer, lambda: model(ids, capture=True))
    stages = check_stages(layer, call)
    upper = torch.ones(17, 17, dtype=torch.bool).triu(1)
    assert (stages.probs[:, upper] == 0).all() and torch.isneginf(stages.masked[:, upper]).all()
    assert (stages.probs_columns[:, upper.T] == 0).all()
    # the fast path (no capture) sees the same inputs and gives the same output
    fast = capture_call(layer, lambda: model(ids))
    assert fast.record is None
    torch.testing.assert_close(fast.output, call.output, atol=ATOL, rtol=RTOL)


def test_every_stage_of_an_encoder_layer_with_padding():
    bert = load_bert()
    enc = bert.encode("The cat sat on the mat.")
    n = len(enc.ids)
    ids = torch.tensor([enc.ids + [0, 0], enc.ids + [0, 0]])
    attention_mask = torch.tensor([[1] * n + [0, 0]] * 2)
    layer = bert.model.layers[2].attention
    call = capture_call(layer, lambda: bert.model(ids, attention_mask=attention_mask, capture=True))
    stages = check_stages(layer, call)
    assert stages.x.shape == (n + 2, bert.config.hidden_size)
    assert (stages.probs[..., n:] == 0).all()  # padding keys receive nothing
    assert stages.mask[..., :n].all()


def test_capture_call_needs_the_module_to_run():
    model = build_gpt(PRESETS["gpt-nano"])
    with pytest.raises(RuntimeError, match="not called"):
        capture_call(model.blocks[0].attention, lambda: None)


def test_one_forward_captures_every_layer():
    torch.manual_seed(0)
    model = build_gpt(PRESETS["gpt-nano"]).eval()
    ids = torch.randint(0, 97, (1, 9))
    calls = capture_calls([block.attention for block in model.blocks], lambda: model(ids, capture=True))
    assert len(calls) == len(model.blocks)
    for block, call in zip(model.blocks, calls, strict=True):
        alone = capture_call(block.attention, lambda: model(ids, capture=True))
        torch.testing.assert_close(call.query, alone.query)
        torch.testing.assert_close(call.output, alone.output)
        assert max(record_differences(attention_stages(block.attention, call), call).values()) < 1e-4
    assert calls[0].query is calls[0].key  # self-attention: X is counted once in nbytes
    d = model.blocks[0].attention.n_heads * calls[0].record.q.shape[-1]
    assert calls[0].nbytes >= 9 * d * 4 * 2  # X and the output at least
    with pytest.raises(RuntimeError, match=r"\[1\] were not called"):
        capture_calls(
            [model.blocks[0].attention, model.blocks[1].attention],
            lambda: model.blocks[0].attention(torch.zeros(1, 3, d)),
        )


def test_another_threads_forward_is_not_captured():
    """Sessions share one model: a forward on another thread while the hooks are on is not recorded."""
    torch.manual_seed(0)
    model = build_gpt(PRESETS["gpt-nano"]).eval()
    mine, theirs = torch.randint(0, 97, (1, 9)), torch.randint(0, 97, (1, 5))

    def run():
        model(mine, capture=True)
        other = threading.Thread(target=model, args=(theirs,))  # after ours: the last call would win
        other.start()
        other.join()

    calls = capture_calls([block.attention for block in model.blocks], run)
    alone = capture_calls([block.attention for block in model.blocks], lambda: model(mine, capture=True))
    for call, reference in zip(calls, alone, strict=True):
        assert call.query.shape[0] == 9
        torch.testing.assert_close(call.output, reference.output)
    assert not any(block.attention._forward_hooks for block in model.blocks)  # no hook left on
