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
1.05 M edges in an input token's one-sink graph (`SinkGraphs`) and 41 to 46 ms of CPU per maximum flow
(62 ms on `flow_graph`'s 1.31 M edges): 21 s of CPU per output token (`benchmarks/bench_explain.py`; the
target was 5 s). `workers` spreads the flows over processes (scipy's Dinic holds the GIL, so threads
would not help): 5 s at 512 wordpieces takes about 5 free cores. On that benchmark's input (output token
256) the flow to 502 of the 512 input tokens j equals min(row, column), the capacity of the output's own
edges or of j's own edges into the first layer, but a certificate of that is a flow, and no cheaper one
was found: Dinic's flows use 8 to 10 thousand of the 1.3 M edges, most of them small (97% lie outside
each node's 16 strongest edges in the lower layers), and a maximum flow over each node's 8 to 16
strongest edges in and out falls short by 0.1 to 0.3, so an exact search over a pruned graph that adds
the edges a cut shows missing (tried) needs two or three rounds and grows to 0.5 M edges, no faster than
the plain flow. What the page can make fast is fewer flows: the inputs with the most rollout first
(`inputs`).
"""

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context

import numpy as np
import torch
from scipy.sparse import csr_array
from scipy.sparse.csgraph import maximum_flow

from models.explain import flow_worker

SCALE = 2**24  # integer capacity units per unit of attention; flows stay far below int32's 2^31
CHUNK = 8  # sinks per task of the process pool: small enough for a smooth progress bar


def default_workers() -> int:
    """The CPU cores this process may use (the pool's size when a caller asks for every core)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


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


@dataclass
class SinkGraphs:
    """One output token's flow graphs with a single sink, one per input token, sharing their arrays.

    The nodes are the output (the source, 0), the tokens it reaches at each level above the inputs, and one
    sink (the last node). Every edge above the first step is shared; the first step gives each level-1
    node one edge into the sink, whose capacity is that node's capacity into input token j: input j's
    graph is the shared arrays with `bottom[:, j]` as those edges' capacities. The other N - 1 input
    tokens, dead ends that `flow_graph` keeps as nodes, are left out: a fifth fewer edges (N² of K·N²) and
    about a third less time per maximum flow for MiniLM at 512 wordpieces, for the same flows.
    """

    indptr: np.ndarray  # (nodes + 1,) int32
    indices: np.ndarray  # (edges,) int32; the level-1 nodes' edges, one each, come last
    upper: np.ndarray  # (edges - level-1 nodes,) int32: the capacities of the shared edges
    bottom: np.ndarray  # (level-1 nodes, N) int32: each level-1 node's capacity into each input token

    @property
    def sink(self) -> int:
        return len(self.indptr) - 2

    @property
    def reaches(self) -> np.ndarray:
        """(N,) bool: the input tokens the output reaches (some level-1 node has an edge into them)."""
        return (self.bottom > 0).any(0)

    def graph(self, j: int) -> csr_array:
        """Input token j's graph (csr capacities, int32): source 0, sink `self.sink`."""
        size = len(self.indptr) - 1
        graph = csr_array((np.concatenate([self.upper, self.bottom[:, j]]), self.indices, self.indptr),
                          shape=(size, size))  # fmt: skip
        graph.has_sorted_indices = True  # each row's targets ascend (the builder sorted them)
        return graph


def sink_graphs(caps: Sequence[np.ndarray], output: int) -> SinkGraphs:
    """The graphs of `SinkGraphs` for output token `output` and the K steps' integer capacities."""
    n = caps[0].shape[0]
    if not 0 <= output < n:
        raise IndexError(f"output token {output} is outside 0..{n - 1}")
    tokens, ids = np.array([output]), np.array([0])  # the level below the last step: the output alone
    rows, cols, data, next_id = [], [], [], 1
    for cap in reversed(caps[1:]):  # every step but the first, from the top down
        sub = cap[tokens]  # (nodes at this level, N)
        below = np.flatnonzero((sub > 0).any(0))
        below_ids = next_id + np.arange(below.size)
        next_id += below.size
        r, c = np.nonzero(sub[:, below])
        rows.append(ids[r])
        cols.append(below_ids[c])
        data.append(sub[:, below][r, c])
        tokens, ids = below, below_ids
    sink, level1 = next_id, tokens.size  # the level-1 nodes are the ids just below the sink
    shared = csr_array(
        (np.concatenate([*data, np.zeros(0, np.int64)]),
         (np.concatenate([*rows, np.zeros(0, np.int64)]), np.concatenate([*cols, np.zeros(0, np.int64)]))),
        shape=(sink + 1, sink + 1),
    )  # fmt: skip
    shared.sort_indices()
    bottom = caps[0][tokens]
    if max(shared.data.max(initial=0), bottom.max(initial=0)) >= 2**31:
        raise ValueError("capacities do not fit scipy's int32; lower the scale")
    start = shared.indptr[sink - level1]  # == shared.nnz: the level-1 rows are empty in `shared`
    indptr = np.concatenate(
        [shared.indptr[: sink - level1 + 1], start + np.arange(1, level1 + 1), [start + level1]]
    )
    indices = np.concatenate([shared.indices, np.full(level1, sink)])
    return SinkGraphs(indptr.astype(np.int32), indices.astype(np.int32), shared.data.astype(np.int32),
                      np.ascontiguousarray(bottom, dtype=np.int32))  # fmt: skip


def attention_flow(
    transitions: Sequence[torch.Tensor],
    output: int,
    scale: int = SCALE,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
    inputs: Sequence[int] | None = None,
) -> np.ndarray:
    """(N,) float64: the maximum flow from output token `output` after the last step to each input token
    before the first, in units of attention (0 where the output cannot reach the input). One maximum flow
    per input token, in this process or, with `workers` > 1, spread over that many worker processes (the
    same integer flows: each is one deterministic Dinic run on the same graph). With `inputs`, only those
    input tokens' flows run, in that order, and the others are NaN. `progress(done, total)` is called as
    they finish (total: the inputs asked for)."""
    graphs = sink_graphs(capacities(transitions, scale), output)
    values = np.zeros(graphs.bottom.shape[1])
    wanted = list(range(len(values))) if inputs is None else [int(j) for j in inputs]
    if inputs is not None:
        values[:] = np.nan
        values[wanted] = 0
    reaches = graphs.reaches
    todo = [j for j in wanted if reaches[j]]
    done = len(wanted) - len(todo)  # unreachable inputs: flow 0, nothing to run
    if progress is not None and not todo:
        progress(done, len(wanted))

    def finished(chunk: list[int], flows: list[int]) -> None:
        nonlocal done
        values[chunk] = np.asarray(flows) / scale
        done += len(chunk)
        if progress is not None:
            progress(done, len(wanted))

    if workers > 1 and len(todo) > CHUNK:
        left = set(todo)
        try:
            for chunk, flows in _in_pool(graphs, todo, workers):
                finished(chunk, flows)
                left.difference_update(chunk)
        except (OSError, RuntimeError, BrokenProcessPool):  # no worker processes here: go on in this one
            pass
        todo = [j for j in todo if j in left]
    for j in todo:
        finished([j], [maximum_flow(graphs.graph(j), 0, graphs.sink, method="dinic").flow_value])
    return values


def _in_pool(graphs: SinkGraphs, todo: list[int], workers: int):
    """Yield (input tokens, their integer flows) chunk by chunk as worker processes finish them.

    The workers are forked: they inherit the graphs without a copy through a pipe and import nothing
    (a forkserver or spawned worker re-imports the main module, the Streamlit CLI or a script with torch:
    seconds before the first flow). A forked child of a threaded server runs only scipy's Dinic on arrays
    it owns and leaves through os._exit."""
    context = get_context("fork")
    with ProcessPoolExecutor(workers, context, initializer=flow_worker.start, initargs=(graphs,)) as pool:
        chunks = [todo[i : i + CHUNK] for i in range(0, len(todo), CHUNK)]
        tasks = {pool.submit(flow_worker.flows, chunk): chunk for chunk in chunks}
        for task in as_completed(tasks):
            yield tasks[task], task.result()
