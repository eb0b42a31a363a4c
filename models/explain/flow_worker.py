"""The worker side of `models.explain.flow`'s parallel maximum flows: numpy and scipy only.

A worker keeps one output token's `OutputFlows` (set by `start`, the pool's initializer; a forked worker
inherits it) and answers chunks of input tokens with their integer maximum flows.
"""

_FLOWS = None


def start(flows) -> None:
    """Keep the output token's flows (`models.explain.flow.OutputFlows`) that this worker answers from."""
    global _FLOWS
    _FLOWS = flows


def flows(inputs: list[int]) -> list[int]:
    """The integer maximum flow from the output token to each of these input tokens."""
    return [_FLOWS.flow(j) for j in inputs]
