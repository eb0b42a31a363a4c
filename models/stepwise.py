"""One attention, recomputed stage by stage in plain torch from what its module received.

`capture_calls` runs a model once with a hook on each of its `MultiHeadAttention` modules and keeps what
each received (the X that the layer attends over, the mask) and returned; `capture_call` does it for one.
`attention_stages` then recomputes, for every head, Q = X W_q + b_q, K, V, QKᵀ, the scaling by
1/√d_head, the mask (after scaling, before the softmax, S13), the softmax, A·V, the concatenation of the
heads and W_o, and the same attention written with columns as tokens (A = KᵀQ, output V·A, S5).
A test compares every stage with the module's own record.
"""

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from models.attention import AttentionRecord, MultiHeadAttention


@dataclass
class AttentionCall:
    """What one MultiHeadAttention received and returned, for the first item of the batch."""

    query: Tensor  # (Tq, d) X on the query side: the layer's input after any pre-norm
    key: Tensor  # (Tk, d)
    value: Tensor  # (Tk, d)
    mask: Tensor | None  # bool broadcastable to (nh, Tq, Tk); True = may attend
    output: Tensor  # (Tq, d) the module's output, after W_o
    record: AttentionRecord | None  # the module's own record when the model ran with capture=True

    @property
    def nbytes(self) -> int:
        """Bytes of the tensors held (the query, key and value of a self-attention are one tensor)."""
        tensors = [self.query, self.key, self.value, self.mask, self.output]
        if self.record is not None:
            tensors += [self.record.q, self.record.k, self.record.v, self.record.probs, self.record.out]
        unique = {id(t): t for t in tensors if t is not None}
        return sum(t.element_size() * t.nelement() for t in unique.values())


def capture_calls(modules: list[MultiHeadAttention], run: Callable[[], object]) -> list[AttentionCall]:
    """Call `run()` (which must call each module once) and return what each module saw, batch item 0.

    The modules may be shared by threads (the app's sessions share one model): the hooks keep only the
    calls made on this thread, so another session's forward through the same module is never recorded."""
    seen: list[dict] = [{} for _ in modules]
    owner = threading.get_ident()

    def hook_for(store: dict):
        def hook(_module, args, kwargs, output):
            if threading.get_ident() != owner:
                return
            names = ("query", "key", "value", "mask", "capture")
            store.update(dict(zip(names, args, strict=False)) | kwargs, output=output)

        return hook

    handles = [
        m.register_forward_hook(hook_for(s), with_kwargs=True) for m, s in zip(modules, seen, strict=True)
    ]
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()
    missing = [i for i, s in enumerate(seen) if not s]
    if missing:
        raise RuntimeError(
            f"attention module(s) {missing} were not called; pass a run() that calls the model"
        )
    return [_call_of(s) for s in seen]


def capture_call(module: MultiHeadAttention, run: Callable[[], object]) -> AttentionCall:
    """Call `run()` (which must call `module` once) and return what the module saw, batch item 0."""
    return capture_calls([module], run)[0]


def _call_of(seen: dict) -> AttentionCall:
    query = seen["query"][0].detach()
    key = query if seen.get("key") is None else seen["key"][0].detach()  # self-attention: one X
    value = key if seen.get("value") is None else seen["value"][0].detach()
    mask = seen.get("mask")
    if mask is not None and mask.dim() == 4:
        mask = mask[0]  # (B, nh|1, Tq|1, Tk) -> (nh|1, Tq|1, Tk)
    out, record = seen["output"]
    record = None if record is None else record.detach().item(0)
    return AttentionCall(query, key, value, mask, out[0].detach(), record)


@dataclass
class AttentionStages:
    """Every stage of one multi-head attention, nh heads, d = nh * d_head channels."""

    x: Tensor  # (Tq, d) X, tokens as rows, channels as columns
    w_q: Tensor  # (d, d) so that Q = X W_q + b_q; head h owns columns h*dh:(h+1)*dh
    w_k: Tensor  # (d, d)
    w_v: Tensor  # (d, d)
    q: Tensor  # (nh, Tq, dh)
    k: Tensor  # (nh, Tk, dh)
    v: Tensor  # (nh, Tk, dh)
    scores: Tensor  # (nh, Tq, Tk) QKᵀ
    scale: float  # 1 / sqrt(dh)
    scaled: Tensor  # (nh, Tq, Tk) QKᵀ / sqrt(dh)
    mask: Tensor  # (nh, Tq, Tk) bool, True = may attend (all True when the model uses no mask)
    masked: Tensor  # (nh, Tq, Tk) scaled scores with -inf where masked
    probs: Tensor  # (nh, Tq, Tk) A = softmax over keys; rows sum to 1
    heads: Tensor  # (nh, Tq, dh) A·V
    concat: Tensor  # (Tq, d) the heads side by side: [A_0 V_0 | A_1 V_1 | ...]
    w_o: Tensor  # (d, d) so that output = concat W_o + b_o
    output: Tensor  # (Tq, d)
    # the same attention with columns as tokens (S5): Q_c = Qᵀ (dh, Tq), K_c = Kᵀ, V_c = Vᵀ
    scores_columns: Tensor  # (nh, Tk, Tq) K_cᵀ Q_c; column j holds query j's scores
    probs_columns: Tensor  # (nh, Tk, Tq) softmax down each column
    heads_columns: Tensor  # (nh, dh, Tq) V_c · A

    @property
    def d_head(self) -> int:
        return self.q.shape[-1]


def _project(x: Tensor, linear: torch.nn.Linear, n_heads: int) -> tuple[Tensor, Tensor]:
    w = linear.weight.detach().T  # (d_in, d): X W, the row-vector convention
    y = x @ w if linear.bias is None else x @ w + linear.bias  # (T, d)
    return w, y.view(y.shape[0], n_heads, -1).transpose(0, 1)  # (nh, T, dh)


@torch.no_grad()
def attention_stages(module: MultiHeadAttention, call: AttentionCall) -> AttentionStages:
    """Recompute the attention of `call` step by step from its inputs and the module's weights."""
    nh = module.n_heads
    w_q, q = _project(call.query, module.q_proj, nh)
    w_k, k = _project(call.key, module.k_proj, nh)
    w_v, v = _project(call.value, module.v_proj, nh)
    t_q, t_k = q.shape[1], k.shape[1]
    scores = q @ k.transpose(1, 2)  # (nh, Tq, Tk)
    scale = 1.0 / math.sqrt(q.shape[-1])
    scaled = scores * scale
    mask = torch.ones(nh, t_q, t_k, dtype=torch.bool, device=scores.device)
    if call.mask is not None:
        mask = mask & call.mask.to(scores.device)
    masked = torch.where(mask, scaled, torch.full_like(scaled, float("-inf")))
    probs = torch.softmax(masked, dim=-1)
    heads = probs @ v  # (nh, Tq, dh)
    concat = heads.transpose(0, 1).reshape(t_q, -1)  # (Tq, nh * dh)
    w_o = module.out_proj.weight.detach().T
    output = concat @ w_o if module.out_proj.bias is None else concat @ w_o + module.out_proj.bias
    q_c, k_c, v_c = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (nh, dh, T): columns are tokens
    scores_columns = k_c.transpose(1, 2) @ q_c  # (nh, Tk, Tq)
    masked_columns = torch.where(mask.transpose(1, 2), scores_columns * scale, float("-inf"))
    probs_columns = torch.softmax(masked_columns, dim=1)  # each column (query) sums to 1
    return AttentionStages(
        x=call.query,
        w_q=w_q,
        w_k=w_k,
        w_v=w_v,
        q=q,
        k=k,
        v=v,
        scores=scores,
        scale=scale,
        scaled=scaled,
        mask=mask,
        masked=masked,
        probs=probs,
        heads=heads,
        concat=concat,
        w_o=w_o,
        output=output,
        scores_columns=scores_columns,
        probs_columns=probs_columns,
        heads_columns=v_c @ probs_columns,  # (nh, dh, Tq)
    )


@torch.no_grad()
def record_differences(stages: AttentionStages, call: AttentionCall) -> dict[str, float]:
    """Largest |recomputed - model's own| per stage (masked entries compared as both -inf)."""
    record = call.record
    if record is None:
        raise ValueError("the call was captured without capture=True, so there is no record to compare with")

    def gap(ours: Tensor, theirs: Tensor) -> float:
        theirs = theirs.expand_as(ours)
        both_masked = torch.isneginf(ours) & torch.isneginf(theirs)
        diff = (ours - theirs).abs().masked_fill(both_masked, 0.0)
        return float(diff.max()) if diff.numel() else 0.0

    return {
        "Q": gap(stages.q, record.q),
        "K": gap(stages.k, record.k),
        "V": gap(stages.v, record.v),
        "QKᵀ": gap(stages.scores, record.scores),
        "QKᵀ/√d_head": gap(stages.scaled, record.scaled),
        "masked": gap(stages.masked, record.masked),
        "softmax": gap(stages.probs, record.probs),
        "A·V": gap(stages.heads, record.out),
        "output (W_o)": gap(stages.output, call.output),
        "V·A vs (A·V)ᵀ": gap(stages.heads_columns, stages.heads.transpose(1, 2)),
    }
