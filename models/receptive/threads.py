"""Run the lab's computations on one CPU thread.

They are thousands of operations on tiny tensors (a 64 x 32 sequence, a 3 x 3 kernel), where a
second intra-op thread buys nothing and, on a busy machine, costs a scheduler wait at every
operation: the page's default computation measured 10x slower with two threads than with one while
other processes shared the two cores. torch's thread count is global to the process, so the switch
is made under a lock and undone afterwards; concurrent lab computations take turns.
"""

import functools
import threading

import torch

_LOCK = threading.RLock()  # re-entrant: a decorated function may call another


def one_cpu_thread(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with _LOCK:
            before = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                return fn(*args, **kwargs)
            finally:
                torch.set_num_threads(before)

    return wrapper
