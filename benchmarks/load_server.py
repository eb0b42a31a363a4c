"""`streamlit run` with every script run timed inside the server, for bench_load.

    ATTN_RUN_LOG=/tmp/runs.jsonl python -m benchmarks.load_server run app.py --server.port ...

Each full rerun or fragment rerun appends one JSON line: the session, when it started (perf_counter),
its wall seconds, the CPU seconds of the script thread (time.thread_time: torch's own worker threads are
not in it; bench_load reads the whole process's CPU from /proc for that) and whether it was stopped
early. The times are taken where ScriptRunner starts each run of its loop (`_install_event_loop`) and
where it finishes it (`_on_script_finished`): private methods of Streamlit 1.67, patched here only.
"""

import json
import os
import sys
import threading
import time

from streamlit.runtime.scriptrunner.script_runner import ScriptRunner
from streamlit.web.cli import main

_lock = threading.Lock()


def patch(log_path: str) -> None:
    start_run, finish_run = ScriptRunner._install_event_loop, ScriptRunner._on_script_finished

    def started(self):
        self._bench_start = (time.perf_counter(), time.thread_time())
        return start_run(self)

    def finished(self, ctx, event, premature_stop, run_descriptor):
        wall0, cpu0 = getattr(self, "_bench_start", (None, None))
        if wall0 is not None:
            row = {
                "session": self._session_id,
                "start": wall0,
                "wall": time.perf_counter() - wall0,
                "cpu": time.thread_time() - cpu0,
                "stopped": bool(premature_stop),
                "fragment": bool(getattr(ctx, "current_fragment_id", None)),
            }
            with _lock, open(log_path, "a") as log:
                log.write(json.dumps(row) + "\n")
        return finish_run(self, ctx, event, premature_stop, run_descriptor)

    ScriptRunner._install_event_loop = started
    ScriptRunner._on_script_finished = finished


if __name__ == "__main__":
    patch(os.environ["ATTN_RUN_LOG"])
    sys.argv[0] = "streamlit"
    main(prog_name="streamlit")
