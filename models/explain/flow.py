"""Attention flow (Abnar & Zuidema 2020): the maximum flow from an output token down to each input token.

The layered graph of `models.explain.rollout`: node (k, i) is token i after k of the K steps, and node
(k, i) has an edge down to (k - 1, j) whose capacity is Â_k[i, j], the residual-mixed attention of step k
(rows sum to 1). Rollout multiplies the capacities along every path and adds the paths; flow instead asks
how much can pass from the output token (K, o) to the input token (0, j) at once, every edge carrying at
most its capacity. Flow values lie in [0, 1].

`scipy.sparse.csgraph.maximum_flow` (Dinic's algorithm) takes integer capacities only: each capacity is
scaled by `scale` and rounded. Every edge is then off by at most 1 / (2·scale), and edges below that
vanish; the flow through a minimum cut of E edges moves by at most E / (2·scale) (at the default 2^24
that is 3e-8 per edge). Only the nodes the output token can reach are built (a causal decoder's token o
reaches tokens 0..o only).

The cost is one maximum flow per input token through up to K·N² edges: for MiniLM at 512 wordpieces,
1.3 M edges and 80 to 150 ms per input token on one core of our shared 2-core VM: 40 to 90 s per output
token (`benchmarks/bench_explain.py`; the target was 5 s). On that benchmark's input (output token
256), the flow to 27 of 28 sampled input tokens j equalled min(1, Σ_i Â_1[i, j]): the minimum cut was j's
own edges into the first layer or the output's edges out of the last.
"""

from collections.abc import Callable, Sequence

import numpy as np
import torch
from scipy.sparse import csr_array
from scipy.sparse.csgraph import maximum_flow

SCALE = 2**24  # integer capacity units per unit of attention; flows stay far below int32's 2^31


def capacities(transitions: Sequence[torch.Tensor], scale: int = SCALE) -> list[np.ndarray]:
    """The K steps' capacities as integer matrices (N, N): round(scale · Â_k)."""
    return [np.rint(np.asarray(t.double().cpu() if torch.is_tensor(t) else t) * scale).astype(np.int64)
            for t in transitions]  # fmt: skip


def flow_graph(caps: Sequence[np.ndarray], output: int) -> tuple[csr_array, int, np.ndarray]:
    """The layered graph from output token `output` at the top: (csr capacities, source id, the node ids of
    the N input tokens at the bottom, -1 where the output cannot reach an input)."""
    n = caps[0].shape[0]
    if not 0 <= output < n:
        raise IndexError(f"output token {output} is outside 0..{n - 1}")
    reach = np.zeros(n, dtype=bool)
    reach[output] = True
    ids = np.full(n, -1)
    ids[output] = 0
    rows, cols, data, next_id = [], [], [], 1
    for cap in reversed(caps):  # from the top step down
        upper_ids = ids
        sub = cap[reach]  # (reachable above, N)
        below = (sub > 0).any(0)
        ids = np.full(n, -1)
        ids[below] = next_id + np.arange(below.sum())
        next_id += int(below.sum())
        r, c = np.nonzero(sub)
        rows.append(upper_ids[np.flatnonzero(reach)[r]])
        cols.append(ids[c])
        data.append(sub[r, c])
        reach = below
    rows, cols, data = np.concatenate(rows), np.concatenate(cols), np.concatenate(data)
    if data.size and data.max() >= 2**31:
        raise ValueError(f"capacities up to {data.max()} do not fit scipy's int32; lower the scale")
    graph = csr_array((data.astype(np.int32), (rows, cols)), shape=(next_id, next_id))
    graph.sort_indices()
    return graph, 0, ids


def attention_flow(
    transitions: Sequence[torch.Tensor],
    output: int,
    scale: int = SCALE,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """(N,) float64: the maximum flow from output token `output` after the last step to each input token
    before the first, in units of attention (0 where the output cannot reach the input). One maximum flow
    per input token; `progress(done, total)` is called after each."""
    graph, source, sinks = flow_graph(capacities(transitions, scale), output)
    flows = np.zeros(len(sinks))
    for j, sink in enumerate(sinks):
        if sink >= 0:
            flows[j] = maximum_flow(graph, source, int(sink), method="dinic").flow_value / scale
        if progress is not None:
            progress(j + 1, len(sinks))
    return flows
