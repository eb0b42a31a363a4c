"""Heavy results kept once per process, shared by sessions, bounded in bytes.

`st.cache_data` pickles its values and hands every rerun a fresh copy (at 4,096 tokens, hundreds of MB a
click); `st.cache_resource` bounds only the number of entries. `computed(key, compute)` keeps each result
once, in memory, returns the same object to every caller (nothing may mutate it), and evicts the least
recently used results when their `nbytes` add up to more than the budget (`ATTN_RESULT_BYTES`, 4 GiB by
default). Two sessions asking for the same key at once compute it once.
"""

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable

import streamlit as st

from ui.sessions import stop_if_gone

DEFAULT_BUDGET = 4 * 2**30


def digest(*parts) -> str:
    """A stable key for a model and an input: sha256 of the parts' reprs (text, ids, options)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(repr(part).encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()


def size_of(value) -> int:
    """Bytes a result holds: its `nbytes`, or the sum over a tuple, list or dict of them."""
    if hasattr(value, "nbytes"):
        return int(value.nbytes)
    if isinstance(value, dict):
        return sum(size_of(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(size_of(v) for v in value)
    return 0


class ResultCache:
    """A least-recently-used map bounded by the bytes of its values; thread-safe."""

    def __init__(self, budget: int):
        self.budget = budget
        self._values: OrderedDict[str, tuple[object, int]] = OrderedDict()
        self._lock = threading.Lock()
        self._computing: dict[str, threading.Lock] = {}

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(size for _, size in self._values.values())

    def __len__(self) -> int:
        return len(self._values)

    def clear(self) -> None:
        with self._lock:
            self._values.clear()

    def peek(self, key: str):
        """The value for `key` if it is kept, else None."""
        with self._lock:
            if key in self._values:
                self._values.move_to_end(key)
                return self._values[key][0]
        return None

    def get(self, key: str, compute: Callable[[], object]):
        with self._lock:
            if key in self._values:
                self._values.move_to_end(key)
                return self._values[key][0]
            key_lock = self._computing.setdefault(key, threading.Lock())
        with key_lock:  # one computation per key; the others wait for it
            with self._lock:
                if key in self._values:
                    return self._values[key][0]
            value = compute()
            size = size_of(value)
            with self._lock:
                self._values[key] = (value, size)
                self._computing.pop(key, None)
                while len(self._values) > 1 and sum(s for _, s in self._values.values()) > self.budget:
                    self._values.popitem(last=False)
        return value


@st.cache_resource
def result_cache() -> ResultCache:
    return ResultCache(int(os.environ.get("ATTN_RESULT_BYTES", DEFAULT_BUDGET)))


def computed(key: str, compute: Callable[[], object], spinner: str | None = None):
    """The result for `key`, computed once per process (shown with `spinner` while it runs)."""
    cache = result_cache()
    kept = cache.peek(key)
    if kept is None:
        stop_if_gone()  # a session that has gone away starts nothing (ui.sessions)
    if kept is not None or spinner is None:
        return kept if kept is not None else cache.get(key, compute)
    with st.spinner(spinner):
        return cache.get(key, compute)
