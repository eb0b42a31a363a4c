"""The worker side of `models.explain.flow`'s parallel maximum flows: numpy and scipy only (no torch), so a
fresh worker process starts in a fraction of a second.

A worker keeps one graph (set by `start`, the pool's initializer) and answers chunks of sink ids with their
integer maximum flows from the graph's source.
"""

import numpy as np
from scipy.sparse import csr_array
from scipy.sparse.csgraph import maximum_flow

_GRAPH: csr_array | None = None
_SOURCE = 0


def start(data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, size: int, source: int) -> None:
    """Keep the graph (csr capacities, int32) that this worker's flows run on."""
    global _GRAPH, _SOURCE
    _GRAPH = csr_array((data, indices, indptr), shape=(size, size))
    _GRAPH.has_sorted_indices = True
    _SOURCE = source


def flows(sinks: list[int]) -> list[int]:
    """The integer maximum flow from the source to each sink."""
    return [int(maximum_flow(_GRAPH, _SOURCE, sink, method="dinic").flow_value) for sink in sinks]
