"""`streamlit run app.py` on 127.0.0.1 for browser tests and benchmarks; stopped when the block ends."""

import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(
    log_path: Path,
    env: dict | None = None,
    timeout: float = 60,
    root: Path = ROOT,
    launcher: str = "streamlit",
):
    """Yields (url, server process) once /_stcore/health answers; the server's output goes to log_path.
    `root` is the checkout whose app.py runs (another one, for a before/after benchmark); `launcher` is
    the module run as `python -m launcher run app.py` (benchmarks.load_server times every script run)."""
    port = free_port()
    command = [
        sys.executable, "-m", launcher, "run", str(Path(root) / "app.py"),
        "--server.address", "127.0.0.1", "--server.port", str(port), "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
    ]  # fmt: skip
    log = open(log_path, "wb")  # a file, not a pipe: a full pipe would stall the server
    server = subprocess.Popen(command, cwd=root, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"streamlit did not start: {log_path.read_text()[-2000:]}") from None
                time.sleep(0.5)
        yield url, server
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
