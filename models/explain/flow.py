"""Attention flow (Abnar & Zuidema 2020): the maximum flow from an output token down to each input token.

The layered graph of `models.explain.rollout`: node (k, i) is token i after k of the K steps, and node
(k, i) has an edge down to (k - 1, j) whose capacity is Â_k[i, j], the residual-mixed attention of step k
(rows sum to 1). Rollout multiplies the capacities along every path and adds the paths; flow instead asks
how much can pass from the output token (K, o) to the input token (0, j) at once, every edge carrying at
most its capacity. Flow values lie in [0, 1].

`scipy.sparse.csgraph.maximum_flow` (Dinic's algorithm) takes integer capacities only: each capacity is
scaled by `scale` and rounded. Every edge is then off by at most 1 / (2·scale), and edges below that
vanish; the flow through a minimum cut of E edges moves by at most E / (2·scale) (at the default 2^24
that is 3e-8 per edge). Only the nodes the output token can reach are used (a causal decoder's token o
reaches tokens 0..o only).

Every flow is exact, and most run on a small graph (`OutputFlows`): for MiniLM at 512 wordpieces an input
token's whole graph has over a million edges and Dinic on it costs 41 to 64 ms of CPU, two thirds of that
scipy copying the graph, while a maximum flow uses only 8 to 10 thousand edges. On small graphs of 48 to 91
thousand edges a flow costs about 5 ms, and one output token's 512 flows 2.4 to 2.6 s of CPU
(`benchmarks/bench_explain.py`). `workers` spreads the flows over processes (scipy's Dinic holds the GIL,
so threads would not help).
"""

import os
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context

import numpy as np
import torch
from scipy.sparse import csr_array
from scipy.sparse.csgraph import breadth_first_order, maximum_flow

from models.explain import flow_worker

SCALE = 2**24  # integer capacity units per unit of attention; flows stay far below int32's 2^31
CHUNK = 8  # inputs per task of the process pool: small enough for a smooth progress bar
KEEP = 16  # each node's strongest edges out and in, which every input's small graph keeps
ROUNDS = 3  # small graphs grown from a cut before an input's whole graph decides


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


class OutputFlows:
    """One output token's exact integer maximum flow to each input token, most found on a small graph.

    A flow through a subgraph (the same capacities, fewer edges) is a flow of the whole graph, so it is at
    most the maximum; the capacity of any cut of the whole graph is at least the maximum. Input token j's
    flow first runs on its candidate graph: each node's KEEP strongest edges out and in (`kept`), every
    edge out of and into token j at each level, the output's row and each level-1 node's edge into j.
    Its value is the maximum when it equals a cut's capacity in the whole graph: first the two cuts every
    such graph has (`bound`: the output's own edges, or the edges into j), else the candidate's minimum
    cut, the nodes its residual graph reaches from the output, whose capacity in the whole graph adds the
    edges across it that the candidate lacks. While some lack, they join `kept` (for j and every later
    input: the flows to different inputs need much the same edges) and the flow runs again; after ROUNDS,
    j's whole graph decides. `certified` counts which of the three settled each flow.

    Nodes: 0 is the output (level K); token t at level s (1 ≤ s < K) is 1 + (K - 1 - s)·N + t; the last
    node is the sink, input token j. Step s's capacities (`caps[s - 1]`) join level s to level s - 1.
    """

    def __init__(self, caps: Sequence[np.ndarray], output: int, keep: int = KEEP):
        n = caps[0].shape[0]
        if not 0 <= output < n:
            raise IndexError(f"output token {output} is outside 0..{n - 1}")
        self.caps, self.output, self.n, self.steps = list(caps), output, n, len(caps)
        # per level from the inputs (0) to the output (K): the tokens the output reaches
        self.reach = [np.zeros(n, dtype=bool) for _ in range(self.steps + 1)]
        self.reach[-1][output] = True
        for s in range(self.steps, 0, -1):
            self.reach[s - 1] = (self.caps[s - 1][self.reach[s]] > 0).any(0)
        middle = range(2, self.steps)  # the steps between the output's row and the edges into the inputs
        self.kept = {s: strongest(self.caps[s - 1], keep) & self.reach[s][:, None] for s in middle}
        self.certified: Counter[str] = Counter()
        self._kept_edges = None  # (rows, cols, capacities) of `kept` and the output's row, as graph edges
        self._whole = None  # flow_graph's whole graph, built if a flow needs it

    @property
    def sink(self) -> int:
        return 1 + (self.steps - 1) * self.n

    def node(self, level: int, tokens: np.ndarray) -> np.ndarray:
        return 1 + (self.steps - 1 - level) * self.n + tokens

    def bound(self, j: int) -> int:
        """The smaller of the two cuts every graph has: the output's own edges, or the edges into j."""
        return int(min(self.caps[-1][self.output].sum(), self.caps[0][self.reach[1], j].sum()))

    def flow(self, j: int) -> int:
        """The integer maximum flow from the output token to input token j."""
        bound = self.bound(j)
        if bound == 0 or self.steps == 1:  # one step: the output's edge into j is the whole graph
            self.certified["bound"] += 1
            return bound
        for _ in range(ROUNDS):
            graph = self.candidate(j)
            result = maximum_flow(graph, 0, self.sink, method="dinic")
            value = int(result.flow_value)
            if value == bound:
                self.certified["bound"] += 1
                return value
            cut, lacking = self.cut(source_side(graph, result.flow), j)
            if cut == value:
                self.certified["cut"] += 1
                return value
            for s, edges in lacking.items():
                self.kept[s] |= edges
            self._kept_edges = None
        self.certified["whole"] += 1
        if self._whole is None:
            self._whole = flow_graph(self.caps, self.output)
        graph, source, sinks = self._whole
        return int(maximum_flow(graph, source, int(sinks[j]), method="dinic").flow_value)

    def candidate(self, j: int) -> csr_array:
        """Input token j's candidate graph (csr capacities, int32): source 0, sink `self.sink`."""
        if self._kept_edges is None:
            top = np.flatnonzero(self.caps[-1][self.output])
            edges = [(np.zeros_like(top), self.node(self.steps - 1, top), self.caps[-1][self.output, top])]
            for s, kept in self.kept.items():
                r, c = np.nonzero(kept)
                edges.append((self.node(s, r), self.node(s - 1, c), self.caps[s - 1][r, c]))
            self._kept_edges = [np.concatenate(part) for part in zip(*edges, strict=True)]
        edges = [self._kept_edges]
        for s, kept in self.kept.items():  # j's own edges at each level that `kept` lacks
            caps = self.caps[s - 1]
            into = np.flatnonzero(self.reach[s] & (caps[:, j] > 0) & ~kept[:, j])
            edges.append((self.node(s, into), self.node(s - 1, np.full_like(into, j)), caps[into, j]))
            if self.reach[s][j]:
                out = np.flatnonzero((caps[j] > 0) & ~kept[j])
                out = out[out != j]  # (j, j) is an edge into j, above
                edges.append((self.node(s, np.full_like(out, j)), self.node(s - 1, out), caps[j, out]))
        level1 = np.flatnonzero(self.reach[1] & (self.caps[0][:, j] > 0))
        edges.append((self.node(1, level1), np.full_like(level1, self.sink), self.caps[0][level1, j]))
        rows, cols, data = (np.concatenate(part) for part in zip(*edges, strict=True))
        size = self.sink + 1
        graph = csr_array((data.astype(np.int32), (rows, cols)), shape=(size, size))
        graph.sort_indices()
        return graph

    def cut(self, side: np.ndarray, j: int) -> tuple[int, dict[int, np.ndarray]]:
        """The capacity in the whole graph of the cut between `side` (bool per node, the output's side) and
        the rest, and per middle step the edges across it that j's candidate graph lacks."""
        tokens = np.arange(self.n)
        above = side[self.node(self.steps - 1, tokens)]
        total = int(self.caps[-1][self.output][~above].sum())
        lacking = {}
        for s in range(self.steps - 1, 1, -1):
            below = side[self.node(s - 1, tokens)]
            across = self.caps[s - 1] * (above[:, None] & ~below[None, :])
            total += int(across.sum())
            lacking[s] = (across > 0) & ~self.kept[s]
            lacking[s][:, j] = lacking[s][j] = False  # the candidate has all of j's edges
            above = below
        return total + int(self.caps[0][above, j].sum()), lacking


def strongest(caps: np.ndarray, keep: int) -> np.ndarray:
    """(N, N) bool: the edges among each row's `keep` largest or each column's `keep` largest."""
    mask = caps > 0
    if keep >= caps.shape[0]:
        return mask
    chosen = np.zeros_like(mask)
    np.put_along_axis(chosen, np.argpartition(-caps, keep, axis=1)[:, :keep], True, axis=1)
    np.put_along_axis(chosen, np.argpartition(-caps, keep, axis=0)[:keep], True, axis=0)
    return chosen & mask


def source_side(graph: csr_array, flow) -> np.ndarray:
    """(nodes,) bool: the nodes that `flow`'s residual graph reaches from node 0, the source's side of a
    minimum cut. scipy's flow holds -f on each edge's reverse: capacity - flow is the residual both ways."""
    residual = csr_array(graph - flow)
    residual.data = (residual.data > 0).astype(np.int8)
    residual.eliminate_zeros()
    side = np.zeros(graph.shape[0], dtype=bool)
    side[breadth_first_order(residual, 0, directed=True, return_predecessors=False)] = True
    return side


def attention_flow(
    transitions: Sequence[torch.Tensor],
    output: int,
    scale: int = SCALE,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
    certified: Counter | None = None,
) -> np.ndarray:
    """(N,) float64: the maximum flow from output token `output` after the last step to each input token
    before the first, in units of attention (0 where the output cannot reach the input). One exact maximum
    flow per input token (`OutputFlows`), in this process or, with `workers` > 1, spread over that many
    worker processes (the same integer flows). `progress(done, N)` is called as they finish; `certified`,
    where given, gains how each reachable input's flow was certified (`OutputFlows.certified`)."""
    flows = OutputFlows(capacities(transitions, scale), output)
    certified = Counter() if certified is None else certified
    values = np.zeros(flows.n)
    todo = list(np.flatnonzero(flows.reach[0]))
    done = flows.n - len(todo)  # unreachable inputs: flow 0, nothing to run
    if progress is not None and not todo:
        progress(done, flows.n)

    def finished(chunk: list[int], found: list[int]) -> None:
        nonlocal done
        values[chunk] = np.asarray(found) / scale
        done += len(chunk)
        if progress is not None:
            progress(done, flows.n)

    if workers > 1 and len(todo) > CHUNK:
        left = set(todo)
        try:
            for chunk, found, how in _in_pool(flows, todo, workers):
                finished(chunk, found)
                certified.update(how)
                left.difference_update(chunk)
        except (OSError, RuntimeError, BrokenProcessPool):  # no worker processes here: go on in this one
            pass
        todo = [j for j in todo if j in left]
    for j in todo:
        finished([j], [flows.flow(j)])
    certified.update(flows.certified)
    return values


def _in_pool(flows: OutputFlows, todo: list[int], workers: int):
    """Yield (input tokens, their integer flows, how they were certified) chunk by chunk as worker processes
    finish them.

    The workers are forked: they inherit the capacities without a copy through a pipe and import nothing
    (a forkserver or spawned worker re-imports the main module, the Streamlit CLI or a script with torch:
    seconds before the first flow). A forked child of a threaded server runs only numpy and scipy on arrays
    it owns and leaves through os._exit."""
    context = get_context("fork")
    with ProcessPoolExecutor(workers, context, initializer=flow_worker.start, initargs=(flows,)) as pool:
        chunks = [todo[i : i + CHUNK] for i in range(0, len(todo), CHUNK)]
        tasks = {pool.submit(flow_worker.flows, chunk): chunk for chunk in chunks}
        for task in as_completed(tasks):
            yield tasks[task], *task.result()
