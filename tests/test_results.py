"""The per-process result store: bounded in bytes, one computation per key, one object for all callers."""

import threading
import time

import numpy as np

from ui.results import ResultCache, digest, size_of


def test_results_are_shared_and_evicted_by_bytes():
    cache = ResultCache(budget=3 * 8000)
    calls = []

    def array(i):
        def compute():
            calls.append(i)
            return np.zeros(1000)  # 8,000 bytes

        return compute

    first = cache.get("a", array("a"))
    assert cache.get("a", array("a")) is first and calls == ["a"]  # no copy, no second computation
    for key in "bcd":
        cache.get(key, array(key))
    assert cache.nbytes == 3 * 8000 and len(cache) == 3
    assert cache.peek("a") is None and cache.peek("d") is not None  # the least recently used went first
    cache.get("huge", lambda: np.zeros(10_000))  # larger than the budget: kept alone
    assert len(cache) == 1 and cache.peek("huge") is not None


def test_one_computation_per_key_under_concurrent_sessions():
    cache = ResultCache(budget=2**20)
    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.2)
        return np.ones(10)

    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get("k", slow))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and all(r is results[0] for r in results)


def test_digest_and_sizes():
    assert digest("m", "text") == digest("m", "text") != digest("m", "text ")
    assert digest("a", "bc") != digest("ab", "c")  # parts are separated
    assert size_of({"x": np.zeros(4), "y": (np.zeros(2), np.zeros(2, np.float32))}) == 32 + 16 + 8
