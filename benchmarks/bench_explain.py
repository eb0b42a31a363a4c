"""Rollout and attention flow on MiniLM at 128 and 512 wordpieces, CPU, against one forward in the same
process.

    python -m benchmarks.bench_explain [--threads 1] [--lengths 128 512] [--workers N]

Prints the forward (fast path with q, k, v kept: what the page runs), rollout of every output token
(the head means from q and k, ½(A + I), the product of the six layers; target ≤ 1 s) and attention flow
from one output token to all 512 input tokens (512 exact maximum flows; target ≤ 5 s), each also as a
ratio to the forward. Flow runs twice: in this process, and over `--workers` worker processes (default:
every core this process may use, as the page does). It prints which cut certified each flow (`OutputFlows`:
the simple bound, the small graph's minimum cut, or the whole graph) and the small graphs' size, and
against it the baseline: scipy's Dinic on each input's whole graph (`flow_graph`), timed on SAMPLE inputs,
whose flows must equal ours.
"""

import argparse
import resource
import time
from collections import Counter

import numpy as np
import torch
from scipy.sparse.csgraph import maximum_flow

from benchmarks.timing import machine, median_times
from models.attention import LAZY
from models.bert import load_bert
from models.explain.flow import SCALE, OutputFlows, attention_flow, capacities, default_workers, flow_graph
from models.explain.rollout import layer_graph
from models.readout import readout

SAMPLE = 16  # inputs whose flows the baseline (Dinic on the whole graph) times and checks
PARAGRAPH = (
    "Attention rollout and attention flow follow what a token can draw from the tokens below it, "
    "through every layer and the residual connection, while a raw attention map shows one layer only. "
)


def main(lengths=(128, 512), workers: int | None = None) -> None:
    workers = workers or default_workers()
    model = load_bert()
    print(f"machine: {machine()}")
    for n_tokens in lengths:
        measure(model, n_tokens, workers)


def measure(model, n_tokens: int, workers: int) -> None:
    """Time and print everything at one length."""
    ids = model.encode(PARAGRAPH * 40).ids[:n_tokens]
    assert len(ids) == n_tokens, f"the text gives {len(ids)} wordpieces, fewer than {n_tokens}"
    families = readout(encoder=model.run(ids, capture=LAZY).attentions)
    output = n_tokens // 2
    graph = layer_graph(families)
    t = median_times(
        {
            "forward": lambda ids=ids: model.run(ids, capture=LAZY),
            "rollout": lambda families=families: layer_graph(families).rollout(),
        },
        repeats=7,
    )
    cpu = {"forward": cpu_seconds(lambda: model.run(ids, capture=LAZY)),
           "rollout": cpu_seconds(lambda: layer_graph(families).rollout())}  # fmt: skip
    # one flow is n_tokens maximum flows, long enough to time once
    start, before, certified = time.perf_counter(), cpu_now(), Counter()
    plain = attention_flow(graph.transitions, output, certified=certified)
    t["flow"], cpu["flow"] = time.perf_counter() - start, cpu_now() - before
    start, before = time.perf_counter(), cpu_now()
    flows = attention_flow(graph.transitions, output, workers=workers)
    t["pool"], cpu["pool"] = time.perf_counter() - start, cpu_now() - before  # the workers' CPU too
    assert np.array_equal(flows, plain)
    caps = capacities(graph.transitions)
    whole, source, sinks = flow_graph(caps, output)
    sample = np.linspace(0, n_tokens - 1, SAMPLE).astype(int)
    before = cpu_now()
    baseline = [maximum_flow(whole, source, int(sinks[j]), method="dinic").flow_value for j in sample]
    cpu["whole"] = (cpu_now() - before) / SAMPLE * n_tokens
    assert np.array_equal(np.asarray(baseline) / SCALE, plain[sample])
    candidate = OutputFlows(caps, output).candidate(output).nnz
    print(f"{n_tokens} tokens, {len(graph.transitions)} layers: {whole.nnz:,} edges in the whole graph, "
          f"{candidate:,} in an input's small graph before any cut adds to it")  # fmt: skip
    ours, theirs = cpu["flow"] / n_tokens * 1e3, cpu["whole"] / n_tokens * 1e3
    print(
        f"  certified by {dict(certified)}; one maximum flow: {ours:.1f} ms of CPU; baseline "
        f"{theirs:.1f} ms on the whole graph ({cpu['whole']:.1f} s per output token, {theirs / ours:.1f}x)"
    )
    print(f"  {'':34s} {'wall':>10s} {'CPU':>10s}")
    print(f"  {'forward (LAZY)':34s} {t['forward'] * 1e3:8.1f} ms {cpu['forward'] * 1e3:8.1f} ms")
    for name, what, target in (
        ("rollout", "rollout, every output token", "1 s"),
        ("flow", "flow, one output token", "5 s"),
        ("pool", f"flow, {workers} worker processes", "5 s"),
    ):
        ratio = t[name] / t["forward"]
        print(f"  {what:34s} {t[name] * 1e3:8.1f} ms {cpu[name] * 1e3:8.1f} ms = {ratio:6.2f}x the "
              f"forward's wall (target <= {target})")  # fmt: skip


def cpu_now() -> float:
    """CPU seconds of this process and of its children that have ended (the pool's workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def cpu_seconds(fn) -> float:
    """CPU seconds of one call: unlike the wall time, what other jobs on the shared cores do not change."""
    before = cpu_now()
    fn()
    return cpu_now() - before


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (scipy's max flow uses one)")
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--workers", type=int, default=None, help="flow's processes (default: all cores)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    main(args.lengths, args.workers)
