"""Attention flow: scipy's integer max flow on the layered graph equals a second solver (networkx, on the
same graph built independently with real capacities) and hand-computed values."""

from collections import Counter

import networkx as nx
import numpy as np
import pytest
import torch
from scipy.sparse.csgraph import maximum_flow

from models.bert import load_bert
from models.explain import flow
from models.explain.capture import capture_text
from models.explain.flow import CHUNK, SCALE, OutputFlows, attention_flow, capacities, flow_graph
from models.explain.rollout import layer_graph, with_residual


def networkx_flow(transitions: list[np.ndarray], output: int) -> np.ndarray:
    """Max flow from node (K, output) to every (0, j), on float capacities, with networkx."""
    graph = nx.DiGraph()
    k_top = len(transitions)
    for k, matrix in enumerate(transitions, start=1):  # step k: node (k, i) -> (k - 1, j)
        for i, j in zip(*np.nonzero(matrix), strict=True):
            graph.add_edge((k, i), (k - 1, j), capacity=float(matrix[i, j]))
    n = transitions[0].shape[0]
    return np.array(
        [nx.maximum_flow_value(graph, (k_top, output), (0, j)) if (0, j) in graph else 0.0 for j in range(n)]
    )


def stochastic(rng, n: int, causal: bool = False) -> np.ndarray:
    m = rng.random((n, n)) ** 3  # uneven rows, like attention
    if causal:
        m = np.tril(m)
    return m / m.sum(1, keepdims=True)


def test_two_layers_by_hand():
    # two disjoint paths into each input: the flow is the sum of their bottlenecks
    lower = torch.tensor([[0.7, 0.3], [0.2, 0.8]], dtype=torch.float64)
    upper = torch.tensor([[0.6, 0.4], [0.5, 0.5]], dtype=torch.float64)
    flows = attention_flow([lower, upper], output=0)
    np.testing.assert_allclose(flows, [min(0.6, 0.7) + min(0.4, 0.2), min(0.6, 0.3) + min(0.4, 0.8)])
    np.testing.assert_allclose(attention_flow([lower], output=1), [0.2, 0.8])  # one layer: the row itself


@pytest.mark.parametrize("causal", [False, True])
def test_random_layered_graphs_match_networkx(causal):
    rng = np.random.default_rng(0)
    n, k = 7, 4
    steps = [stochastic(rng, n, causal) for _ in range(k)]
    for output in (0, 3, n - 1):
        ours = attention_flow([torch.from_numpy(m) for m in steps], output)
        expected = networkx_flow(steps, output)
        # rounding moves each of the at most k·n² edges by 1/(2·SCALE)
        np.testing.assert_allclose(ours, expected, atol=k * n * n / (2 * SCALE))
        assert (ours <= 1 + n / (2 * SCALE)).all()  # at most the output's row, whose n capacities round
        if causal:
            assert (ours[output + 1 :] == 0).all()  # later tokens are unreachable


def test_the_graph_keeps_only_what_the_output_reaches():
    causal = [np.tril(np.ones((5, 5))) / np.arange(1, 6)[:, None]] * 3
    graph, source, sinks = flow_graph(capacities([torch.from_numpy(m) for m in causal]), output=2)
    assert source == 0 and (sinks[3:] == -1).all() and (sinks[:3] > 0).all()
    assert graph.shape[0] == 1 + 3 * 3  # the output, then tokens 0..2 at each of the 3 lower levels
    with pytest.raises(IndexError, match="outside"):
        flow_graph(capacities([torch.from_numpy(causal[0])]), output=5)


def test_minilm_flow_matches_networkx():
    captured = capture_text(load_bert(), "Attention flow on a short sentence.")
    graph = layer_graph(captured.families)
    steps = [t.numpy() for t in graph.transitions]
    output = 3
    expected = networkx_flow(steps, output)
    ours = attention_flow(graph.transitions, output)
    n = graph.n_nodes
    np.testing.assert_allclose(ours, expected, atol=len(steps) * n * n / (2 * SCALE))
    assert expected.max() > 0.5  # a real flow, not a graph that carries nothing


def plain_flow(transitions, output: int) -> np.ndarray:
    """The plain path: `flow_graph` (every input token a node at the bottom) and one scipy Dinic per input
    token, in this process."""
    graph, source, sinks = flow_graph(capacities(transitions), output)
    return np.array([maximum_flow(graph, source, int(t)).flow_value if t >= 0 else 0 for t in sinks]) / SCALE


def test_the_fast_path_equals_the_plain_path():
    """`attention_flow` (small certified graphs, in this process or over worker processes) against the
    plain path, on a random 3-layer BERT, a random causal graph and one step: equal
    to the last integer unit; the workers report chunk by chunk."""
    from tests.test_explain_ablation import tiny_bert

    model = tiny_bert(torch.float64)
    ids = list(np.random.default_rng(3).integers(1, 40, size=30))
    with torch.no_grad():
        out = model(torch.tensor([ids]), capture=True)
    steps = [with_residual(r.probs[0].mean(0)) for r in out.attentions]
    causal = [torch.from_numpy(stochastic(np.random.default_rng(4), 30, causal=True)) for _ in range(4)]
    for transitions, output, reachable in ((steps, 7, 30), (causal, 20, 21), (causal[:1], 12, 13)):
        plain = plain_flow(transitions, output)
        np.testing.assert_array_equal(attention_flow(transitions, output), plain)
        seen: list[int] = []
        certified = Counter()
        pooled = attention_flow(
            transitions, output, workers=2, progress=lambda done, _, seen=seen: seen.append(done),
            certified=certified,
        )  # fmt: skip
        np.testing.assert_array_equal(pooled, plain)
        assert sum(certified.values()) == reachable  # each input's certificate, counted by the workers
        assert plain.max() > 0.2 and seen[-1] == 30 and seen == sorted(seen)
        assert len(seen) == -(-reachable // CHUNK)  # chunk by chunk from the workers, not one by one here
        assert (plain[reachable:] == 0).all() and (plain[:reachable] > 0).all()


def test_small_graphs_certify_every_flow_or_grow(monkeypatch):
    """With each node's 2 strongest edges kept, the candidate graphs of a causal graph of 40 tokens through
    5 steps lack most of what the flows need: every flow still equals the plain path's, those below both
    simple cuts certified by the candidate's minimum cut after `kept` grew; with no rounds, the whole graph
    decides. (A causal graph: the early tokens' few edges make flows that neither simple cut bounds.)"""
    rng = np.random.default_rng(6)
    transitions = [torch.from_numpy(stochastic(rng, 40, causal=True)) for _ in range(5)]
    caps = capacities(transitions)
    plain = (plain_flow(transitions, 30) * SCALE).round().astype(np.int64)
    flows = OutputFlows(caps, 30, keep=2)
    kept = sum(int(m.sum()) for m in flows.kept.values())
    ours = np.array([flows.flow(j) for j in range(40)])
    np.testing.assert_array_equal(ours, plain)
    below = [j for j in range(40) if plain[j] < flows.bound(j)]  # no simple cut certifies these
    assert below and flows.certified["cut"] > 0
    assert flows.certified["cut"] + flows.certified["whole"] >= len(below)
    assert sum(int(m.sum()) for m in flows.kept.values()) > kept  # cuts showed edges the candidates lacked
    monkeypatch.setattr(flow, "ROUNDS", 0)
    whole = OutputFlows(caps, 30, keep=2)
    np.testing.assert_array_equal([whole.flow(j) for j in range(40)], plain)
    assert whole.certified == Counter(whole=31, bound=9)  # tokens after the output: no edge into them
