"""The worker side of `models.explain.flow`'s parallel maximum flows: numpy and scipy only.

A worker keeps one output token's `OutputFlows` (set by `start`, the pool's initializer; a forked worker
inherits it) and answers chunks of input tokens with their integer maximum flows and how they were certified.
"""

_FLOWS = None


def start(flows) -> None:
    """Keep the output token's flows (`models.explain.flow.OutputFlows`) that this worker answers from."""
    global _FLOWS
    _FLOWS = flows


def flows(inputs: list[int]) -> tuple[list[int], dict[str, int]]:
    """The integer maximum flow from the output token to each of these input tokens, and how many were
    certified each way (`OutputFlows.certified`, counted over this chunk)."""
    before = _FLOWS.certified.copy()
    found = [_FLOWS.flow(j) for j in inputs]
    return found, dict(_FLOWS.certified - before)
