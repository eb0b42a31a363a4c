"""What one click costs: server time and bytes sent to the browser, per interaction, in a real browser.

    .venv/bin/python -m benchmarks.bench_views                       # text page at 512 and 4,096 tokens
    .venv/bin/python -m benchmarks.bench_views --before /tmp/old    # and the same at 512 on another checkout

The app runs on 127.0.0.1 and Debian's chromium drives it. Every message on the app's websocket is read:
an interaction starts when the browser sends its rerun request and ends when the server's
`script_finished` arrives (the server's time, plus a loopback hop, and waits for the cores the browser
shares); its bytes are every frame the server sent in between, and its CPU the server process's user and
system time over it (/proc), which the browser's drawing does not inflate. The baseline is our fast
forward (fused attention, nothing kept) of the same input, timed in this process while the server is
idle, so the ratio survives a slower machine. Peak memory is the server's VmHWM from /proc.

On the text page's value-norm tab it also times opening the tab (one layer's sum over heads) and a head
switch there.

Targets (issue 11): a head or layer switch <= 100 ms at 512 tokens and <= 300 ms at 4,096; the first view
of a new input <= 1.2 x fast forward + 100 ms; <= 0.5 MB a click at 512 tokens, <= 2 MB at 4,096; the
server's peak memory at 4,096 tokens <= 2 GB for one session. 4,096 tokens use a random BERT with 4,096
positions (MiniLM's shape) written by scripts.make_long_bert.
"""

import argparse
import os
import re
import statistics
import tempfile
import threading
import time
from pathlib import Path

import torch
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from benchmarks.timing import machine, median_times
from models.bert import load_bert
from scripts.make_long_bert import make_long_bert
from tests.app_server import running_app
from tests.conftest import CHROMIUM, CHROMIUM_FLAGS, pick_option

HEADS = "Heads"  # the text page's first tab (app_pages/text_attention.py)
TEXT_512 = "The animal didn't cross the street because it was too tired, so it rested. " * 30


class Wire:
    """Every websocket frame of the page, with when it passed and what it was."""

    def __init__(self, page, server_pid: int):
        self.server_pid = server_pid
        self.events = []  # (time, "sent" | "received", bytes, message type)
        self.lock = threading.Lock()
        self.finished = threading.Event()
        page.on("websocket", self._attach)

    def _attach(self, ws):
        ws.on("framesent", lambda payload: self._record("sent", payload))
        ws.on("framereceived", lambda payload: self._record("received", payload))

    def _record(self, direction: str, payload) -> None:
        data = payload if isinstance(payload, bytes) else payload.encode()
        msg = BackMsg() if direction == "sent" else ForwardMsg()
        try:
            msg.ParseFromString(data)
            kind = msg.WhichOneof("type")
        except Exception:  # not a protobuf frame
            kind = None
        with self.lock:
            self.events.append((time.perf_counter(), direction, len(data), kind))

    def mark(self) -> int:
        with self.lock:
            return len(self.events)

    def interaction(self, start: int, page, timeout: float = 300) -> tuple[float, int]:
        """(seconds from the first rerun request after `start` to the script_finished that follows it,
        bytes received in between). Waits for them."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            page.wait_for_timeout(50)
            with self.lock:
                events = self.events[start:]
            sent = [i for i, e in enumerate(events) if e[1] == "sent" and e[3] == "rerun_script"]
            if not sent:
                continue
            after = events[sent[0] :]
            done = [i for i, e in enumerate(after) if e[1] == "received" and e[3] == "script_finished"]
            if done:
                window = after[: done[0] + 1]
                received = sum(e[2] for e in window if e[1] == "received")
                return window[-1][0] - window[0][0], received
        raise TimeoutError("no script_finished after the interaction")


def settle(page) -> None:
    page.wait_for_timeout(400)
    page.get_by_test_id("stStatusWidget").wait_for(state="hidden")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (every thread), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(page, wire: Wire, action, repeats: int = 1) -> tuple[float, int, float]:
    """Median (seconds, bytes, server CPU seconds) of `repeats` runs of action(i)."""
    results = []
    for i in range(repeats):
        settle(page)
        start, cpu = wire.mark(), cpu_seconds(wire.server_pid)
        action(i)
        seconds, sent = wire.interaction(start, page)
        results.append((seconds, sent, cpu_seconds(wire.server_pid) - cpu))
    return tuple(statistics.median(r[k] for r in results) for k in range(3))


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def enter_text(page, text: str) -> None:
    area = page.get_by_label("Text (any language)")
    area.fill(text)
    area.press("Control+Enter")


def text_page(page, wire: Wire, label: str, text: str, n_tokens: int, baseline: float, rows: list) -> None:
    """New input, head switches, a layer switch and a zoom move on the text page."""
    result = measure(page, wire, lambda i: enter_text(page, text))
    page.get_by_text(f"{n_tokens} wordpieces").wait_for()
    budget = 1.2 * baseline + 0.1
    rows.append((label, "new input (first view)", *result, f"target {budget * 1000:.0f} ms"))
    heads = [3, 7, 1, 10, 5]
    result = measure(page, wire, lambda i: pick_option(page, "Head", f"head {heads[i]}"), repeats=len(heads))
    rows.append((label, "head switch", *result, ""))
    layer = [re.compile(rf"^(layer )?{i}$") for i in (1, 2, 3)]  # "layer 1"; "1" on the page before
    result = measure(page, wire, lambda i: pick_option(page, "Layer", layer[i]), repeats=3)
    rows.append((label, "layer switch", *result, ""))
    if n_tokens * n_tokens > 256 * 256 and page.get_by_label("First query").count():

        def zoom(i):
            field = page.get_by_label("First query")
            field.fill(str(64 * (i + 1)))
            field.press("Enter")

        rows.append((label, "zoom window move", *measure(page, wire, zoom, repeats=3), ""))
    value_tab = page.get_by_role("tab", name="Value-weighted norms")
    if value_tab.count():  # the value norms of one head and of its layer (a checkout before them has none)
        rows.append((label, "value tab, first open", *measure(page, wire, lambda i: value_tab.click()), ""))
        result = measure(page, wire, lambda i: pick_option(page, "Head", f"head {heads[i]}"), repeats=3)
        rows.append((label, "value tab, head switch", *result, ""))
        page.get_by_role("tab", name=HEADS).click()  # the next input opens on the head view again
        settle(page)


def open_page(browser, url: str, server_pid: int):
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.set_default_timeout(300_000)
    wire = Wire(page, server_pid)
    page.goto(url)
    page.get_by_text(re.compile("Layer 0, head 0")).first.wait_for()
    settle(page)
    return page, wire


def fast_forward_seconds(model, ids: list[int]) -> float:
    return median_times({"fast": lambda: model.run(ids, capture=False)}, repeats=5, warmup=1)["fast"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long", type=int, default=4096, help="tokens of the long input")
    parser.add_argument(
        "--before", metavar="CHECKOUT", help="also measure the text page at 512 tokens on another checkout"
    )
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        long_dir = make_long_bert(Path(tmp) / "long-bert", positions=args.long)
        minilm, long_model = load_bert(), load_bert(long_dir)
        ids_512 = minilm.encode(TEXT_512).ids
        long_text = " ".join(f"w{i % 89} and" for i in range(args.long))
        ids_long = long_model.encode(long_text).ids
        assert len(ids_long) == args.long, f"{len(ids_long)} tokens"
        with torch.no_grad():
            base_512 = fast_forward_seconds(minilm, ids_512)
            base_long = fast_forward_seconds(long_model, ids_long)
        del long_model
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            if args.before:
                with running_app(Path(tmp) / "before.log", root=Path(args.before)) as (url, old):
                    page, wire = open_page(browser, url, old.pid)
                    label = f"before: MiniLM, {len(ids_512)} tokens"
                    text_page(page, wire, label, TEXT_512, len(ids_512), base_512, rows)
            with running_app(Path(tmp) / "server.log") as (url, server):
                page, wire = open_page(browser, url, server.pid)
                rss_start = peak_rss(server.pid)
                label = f"MiniLM, {len(ids_512)} tokens"
                text_page(page, wire, label, TEXT_512, len(ids_512), base_512, rows)
                page.get_by_test_id("stSidebar").get_by_text("A BERT-family model by name or path").click()
                field = page.get_by_label("Hugging Face name or local path")
                field.fill(str(long_dir))
                field.press("Enter")
                settle(page)
                label = f"random BERT, {args.long} tokens"
                text_page(page, wire, label, long_text, args.long, base_long, rows)
                rss_peak = peak_rss(server.pid)
            browser.close()
    print(f"machine: {machine()}")
    print(
        f"fast forward: {base_512 * 1000:.0f} ms at {len(ids_512)} tokens, {base_long * 1000:.0f} ms at",
        args.long,
    )
    print(f"{'input':<28} {'interaction':<24} {'wall ms':>8} {'CPU ms':>7} {'sent KB':>8}  note")
    for label, what, seconds, sent, cpu, note in rows:
        print(f"{label:<28} {what:<24} {seconds * 1000:>8.0f} {cpu * 1000:>7.0f} {sent / 1024:>8.0f}  {note}")
    print(f"server peak memory: {rss_start / 2**20:.0f} MiB after the default page,", end=" ")
    print(f"{rss_peak / 2**20:.0f} MiB after {args.long} tokens")


if __name__ == "__main__":
    main()
