"""The worker side of `models.explain.flow`'s parallel maximum flows: numpy and scipy only.

A worker keeps one output token's `SinkGraphs` (set by `start`, the pool's initializer; a forked worker
inherits them) and answers chunks of input tokens with their integer maximum flows.
"""

from scipy.sparse.csgraph import maximum_flow

_GRAPHS = None


def start(graphs) -> None:
    """Keep the graphs (`models.explain.flow.SinkGraphs`) that this worker's flows run on."""
    global _GRAPHS
    _GRAPHS = graphs


def flows(inputs: list[int]) -> list[int]:
    """The integer maximum flow from the output token to each of these input tokens."""
    return [int(maximum_flow(_GRAPHS.graph(j), 0, _GRAPHS.sink, method="dinic").flow_value) for j in inputs]
