"""Rollout and attention flow on MiniLM at 128 and 512 wordpieces, CPU, against one forward in the same
process.

    python -m benchmarks.bench_explain [--threads 1] [--lengths 128 512] [--workers N]

Prints the forward (fast path with q, k, v kept: what the page runs), rollout of every output token
(the head means from q and k, ½(A + I), the product of the six layers; target ≤ 1 s) and attention flow
from one output token to all 512 input tokens (512 maximum flows; target ≤ 5 s), each also as a ratio
to the forward. Flow runs twice: in this process, and over `--workers` worker processes (default: every
core this process may use), with the CPU seconds of one maximum flow and how many inputs' flows equal
the simple bound min(the output's row, the input's first-layer column): the cut that binds in practice;
then for the 32 inputs with the most rollout only, in this process (what the page computes first).
"""

import argparse
import time

import numpy as np
import torch

from benchmarks.timing import machine, median_times
from models.attention import LAZY
from models.bert import load_bert
from models.explain.flow import SCALE, attention_flow, capacities, default_workers, flow_graph
from models.explain.rollout import layer_graph
from models.readout import readout

FIRST = 32  # the rollout page's first flows: the inputs with the most rollout (app_pages/rollout_flow.py)
PARAGRAPH = (
    "Attention rollout and attention flow follow what a token can draw from the tokens below it, "
    "through every layer and the residual connection, while a raw attention map shows one layer only. "
)


def main(lengths=(128, 512), workers: int | None = None) -> None:
    workers = workers or default_workers()
    model = load_bert()
    print(f"machine: {machine()}")
    for n_tokens in lengths:
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
        # one flow is n_tokens maximum flows, long enough to time once
        cpu = time.process_time()
        t |= median_times({"flow": lambda g=graph, o=output: attention_flow(g.transitions, o)}, 1, 0)
        cpu = time.process_time() - cpu
        start = time.perf_counter()
        flows = attention_flow(graph.transitions, output, workers=workers)
        t["pool"] = time.perf_counter() - start
        rolled = graph.rollout()[output].numpy()
        first = np.argsort(-rolled, kind="stable")[:FIRST]  # what the page computes first
        t |= median_times(
            {"first": lambda g=graph, o=output, js=first: attention_flow(g.transitions, o, inputs=js)}, 3, 0
        )
        caps = capacities(graph.transitions)
        edges = flow_graph(caps, output)[0].nnz
        bound = np.minimum(caps[-1][output].sum(), caps[0].sum(0)) / SCALE  # the output's row, j's column
        layers = len(graph.transitions)
        print(f"{n_tokens} tokens, {layers} layers, the flow graph of one output token: {edges:,} edges")
        print(
            f"  one maximum flow: {cpu / n_tokens * 1e3:.1f} ms of CPU; the flow equals min(row, column) "
            f"for {(flows == bound).sum()} of {n_tokens} input tokens"
        )
        print(f"  forward (LAZY)                 {t['forward'] * 1e3:8.1f} ms")
        for name, what, target in (
            ("rollout", "rollout, every output token", "1 s"),
            ("flow", "flow, one output token", "5 s"),
            ("pool", f"flow, {workers} worker processes", "5 s"),
            ("first", f"flow to the {FIRST} most rolled-out", "5 s"),
        ):
            ratio = t[name] / t["forward"]
            print(f"  {what:30s} {t[name] * 1e3:8.1f} ms = {ratio:6.2f}x the forward (target <= {target})")


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
