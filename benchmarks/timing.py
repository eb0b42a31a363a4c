"""Timing helpers for the benchmark scripts: medians of interleaved runs, so that noise hits all alike."""

import platform
import statistics
import time

import torch


def median_times(functions: dict, repeats: int = 15, warmup: int = 2) -> dict[str, float]:
    """Median seconds per call of each function, the functions run in turn `repeats` times."""
    for fn in functions.values():
        for _ in range(warmup):
            fn()
    samples = {name: [] for name in functions}
    for _ in range(repeats):
        for name, fn in functions.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    return f"{cpu}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"
