"""Many users at once: browser sessions drive every page with their own inputs, against one server.

    .venv/bin/python -m benchmarks.bench_load                      # 1 session twice, then 8 for 120 s
    .venv/bin/python -m benchmarks.bench_load --sessions 4 --seconds 60
    .venv/bin/python -m benchmarks.bench_load --think 0            # back to back, no reading time

The app runs on 127.0.0.1 (benchmarks.load_server: every script run is timed inside the server) and
Debian's chromium drives it, one browser per session. Three phases on one fresh server: one session
visits every page once from cold (models load), once more warm with another input, then N sessions
(8 by default) go round the pages concurrently, each starting on another page and each with its own
inputs, until the time is up (a visit under way finishes; none starts after; at most two rounds each).
A visit clicks the page in the navigation and waits for it to be idle, then gives the page its input
(a sentence with the session's own word, a date, a seed, a size) and waits again. Idle: the last
`script_finished` of the server has arrived, no rerun is pending, the running indicator is hidden and
nothing has arrived for half a second. After every step the session reads what it sees for a while (think
time, every phase): a pause drawn uniformly from 0.5x to 1.5x of `--think` (4 s by default: 2-6 s) by a
random generator seeded with the session's number, so every run pauses alike (never past the phase's
end). Real users read a view for seconds before the next click; with `--think 0` the sessions click back
to back, and on 2 cores 8 reruns then queue behind each other, so the wall time per run measures the
queue more than the server's work.

Reported: errors (exception boxes, the app's unexpected-error fallback, error messages), per page and
step the time to idle (median, max) per phase, per script run (timed inside the server) its wall seconds
and its script thread's CPU seconds, per page the script thread's CPU per visit, the server process's CPU
per visit (/proc) split into script threads, the main thread (the event loop: websockets, serialising
messages) and the other threads (torch's workers), its resident memory before and after each phase and
its peak, and cross-talk: every page each session sees is searched for the other sessions' words (and the
session's own word must show on the pages that print tokens). Then the N-session phase against the warm
single session: the script thread's CPU per run is the server's own work for a run, the measure the target
"time per rerun within 2x one session's" compares; the wall time per run adds the waiting for a core (the
browsers share the machine's cores) and for Python's lock, which the sessions of one process share. The
process's CPU per visit is also compared with what the N-session phase's steps cost in the single phase
(the phases visit other mixes of pages: a time-bounded phase ends anywhere in its rounds). Last, a
session starts a long DETR run and closes its tab: the run should stop at once (ui.sessions), which the
server's record of that run shows.

The machine is shared (2 cores, and the browsers draw on the same cores as the server), so the times
are those of this machine at that moment: compare phases of one run, not runs. Users' browsers run on
their own machines; `--browser-nice 19` gives the server the cores first, to see its own time per run
when the browsers do not compete with it (the browsers' steps then take longer).
"""

import argparse
import json
import os
import random
import re
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.bench_views import Wire, cpu_seconds, peak_rss
from benchmarks.load_report import report
from tests.app_server import running_app
from tests.conftest import CHROMIUM, CHROMIUM_FLAGS

WORDS = ["volcano", "penguin", "lantern", "cactus", "trumpet", "meadow", "harbor", "squirrel", "tractor"]
WORDS += ["dolphin"]  # one MiniLM wordpiece each, in no page's own text; the last two: the single session
VISIT_TIMEOUT = 240  # seconds a step may take before it counts as a hang
FIND_TIMEOUT = 120  # seconds to click or fill a control: 8 browsers drawing on 2 cores answer slowly
QUIET = 0.5  # seconds without a frame from the server before a page counts as idle
TOKEN_PAGES = {"Text attention", "Step by step", "Rollout, flow and value norms", "Compare"}  # print words


def fill(page, label: str, value: str, submit: str = "Enter") -> None:
    field = page.get_by_label(label, exact=True).first
    field.fill(value)
    field.press(submit)


def sentence(k: int, r: int = 0) -> str:
    return f"The {WORDS[k]} crossed the road because the {WORDS[k]} was tired." + " Again." * r


# nav title -> the input session k gives the page in its round r (None: the defaults only). Each round's
# input differs: a widget keeps its value across visits, and the same value again would start no rerun.
PAGES = {
    "Text attention": lambda page, k, r: fill(page, "Text (any language)", sentence(k, r), "Control+Enter"),
    "Step by step": lambda page, k, r: fill(page, "Text", sentence(k, r), "Control+Enter"),
    "Causal decoder": lambda page, k, r: fill(page, "Your text (for sections 2, 3, 5 and 6)", sentence(k, r)),
    "Encoder–decoder": lambda page, k, r: fill(
        page, "A date written in English", f"{k + 1} March {1990 + k + 20 * r}"
    ),
    "Rollout, flow and value norms": lambda page, k, r: fill(page, "Text", sentence(k, r), "Control+Enter"),
    "Relevance and head importance": lambda page, k, r: fill(page, "Text", sentence(k, r)),
    "Positional encodings": lambda page, k, r: fill(page, "positions N", str(48 + 8 * k + 4 * r)),
    "Receptive fields": None,
    "DETR": lambda page, k, r: fill(page, "Scene seed", str(100 + k + 50 * r)),
    "Compare": lambda page, k, r: fill(page, "Text B", sentence(k, r), "Control+Enter"),
}


def session_id_of(wire: Wire) -> str | None:
    return getattr(wire, "session_id", None)


class SessionWire(Wire):
    """bench_views' record of the websocket, which also keeps the server's id of the session."""

    def _record(self, direction: str, payload) -> None:
        super()._record(direction, payload)
        if direction == "received" and not hasattr(self, "session_id"):
            from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

            msg = ForwardMsg()
            try:
                msg.ParseFromString(payload if isinstance(payload, bytes) else payload.encode())
            except Exception:  # not a protobuf frame
                return
            if msg.WhichOneof("type") == "new_session":
                self.session_id = msg.new_session.initialize.session_id


def wait_idle(page, wire: Wire, mark: int, timeout: float = VISIT_TIMEOUT) -> float:
    """perf_counter of the last script_finished after `mark`, once the page is idle (see the docstring)."""
    deadline = time.perf_counter() + timeout
    status = page.get_by_test_id("stStatusWidget")
    while time.perf_counter() < deadline:
        page.wait_for_timeout(100)
        with wire.lock:
            events = wire.events[mark:]
        finished = [e[0] for e in events if e[1] == "received" and e[3] == "script_finished"]
        requested = [e[0] for e in events if e[1] == "sent" and e[3] == "rerun_script"]
        last_received = max((e[0] for e in events if e[1] == "received"), default=0.0)
        if (
            finished
            and (not requested or finished[-1] > requested[-1])
            and time.perf_counter() - last_received >= QUIET
            and not status.is_visible()
        ):
            return finished[-1]
    raise TimeoutError(f"not idle after {timeout:.0f} s")


def problems(page) -> list[str]:
    """What the page shows that a user should not see: exception boxes, the fallback, error messages."""
    found = [f"exception: {t[:200]}" for t in page.get_by_test_id("stException").all_inner_texts()]
    found += [f"error: {t[:200]}" for t in page.get_by_test_id("stAlertContentError").all_inner_texts()]
    return found


def words_shown(page) -> set[str]:
    html = page.content()
    return {w for w in WORDS if re.search(rf"\b{w}\b", html, re.IGNORECASE)}


class Session(threading.Thread):
    """One browser: visits pages in order from `first` until `deadline` or `max_visits`, recording each,
    and pausing `think` seconds on average (0.5x to 1.5x, seeded by k) after each step."""

    verbose = False  # print each step as it ends
    think = 4.0  # mean seconds a user reads a view before the next click

    def __init__(
        self, k: int, url: str, order: list[str], deadline: float, max_visits: int, phase: str, pid: int
    ):
        super().__init__(name=f"session {k}")
        self.k, self.url, self.order, self.deadline, self.max_visits = k, url, order, deadline, max_visits
        self.phase, self.pid = phase, pid
        self.steps = []  # (page, "open" | "input", start, end, server CPU at start, at end)
        self.errors, self.foreign, self.own_missing = [], [], []
        self.session_id = None
        self.pauses = random.Random(k)

    def step(self, page, wire, title: str, what: str, act) -> None:
        mark, start, cpu = wire.mark(), time.perf_counter(), cpu_seconds(self.pid)
        try:
            act()
            end = wait_idle(page, wire, mark)
        except Exception as err:  # a hang, or a control the browser did not let us use in time
            self.errors.append(f"{title} ({what}): {type(err).__name__}: {str(err).splitlines()[0][:200]}")
            if self.verbose:
                print(f"{self.phase}, session {self.k}: {self.errors[-1]}", flush=True)
            self.read(page)
            return
        self.steps.append((title, what, start, end, cpu, cpu_seconds(self.pid)))
        if self.verbose:
            print(f"{self.phase}, session {self.k}: {title} {what} {end - start:.1f} s", flush=True)
        self.errors += [f"{title} ({what}) {p}" for p in problems(page)]
        seen = words_shown(page)
        self.foreign += [f"{title}: {w}" for w in sorted(seen - {WORDS[self.k]})]
        if what == "input" and title in TOKEN_PAGES and WORDS[self.k] not in seen:
            self.own_missing.append(title)
        self.read(page)

    def read(self, page) -> None:
        """The user's think time; none past the deadline. The page keeps receiving frames meanwhile."""
        pause = self.pauses.uniform(0.5, 1.5) * self.think
        pause = min(pause, self.deadline - time.perf_counter())
        if pause > 0:
            page.wait_for_timeout(pause * 1000)

    def run(self) -> None:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            page.set_default_timeout(FIND_TIMEOUT * 1000)
            page.set_default_navigation_timeout(VISIT_TIMEOUT * 1000)
            wire = SessionWire(page, 0)
            self.step(page, wire, "(app)", "open", lambda: page.goto(self.url))
            self.session_id = session_id_of(wire)
            nav = page.get_by_test_id("stSidebarNav")
            for visit in range(self.max_visits):
                if time.perf_counter() > self.deadline:
                    break
                title = self.order[visit % len(self.order)]
                self.step(page, wire, title, "open", lambda t=title: nav.get_by_text(t, exact=True).click())
                if PAGES[title] is not None:
                    r = visit // len(self.order)
                    self.step(page, wire, title, "input", lambda t=title, r=r: PAGES[t](page, self.k, r))
            browser.close()


def lower_the_browsers(nice: int, server_pid: int, stop: threading.Event) -> None:
    """Every half second, set every process under this one but the server to `nice` (chromium sets its
    own processes' priorities as it starts them and when a page is shown, so once is not enough)."""
    me = os.getpid()
    while not stop.wait(0.5):
        parents = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                head, rest = stat.read_text().rsplit(")", 1)
                parents[int(head.split(" (")[0])] = int(rest.split()[1])  # pid (comm) state ppid
            except (OSError, IndexError, ValueError):  # the process has gone
                continue
        for pid in parents:
            ancestor = pid
            while ancestor not in (0, 1, me, server_pid) and ancestor in parents:
                ancestor = parents[ancestor]
            if ancestor == me and pid != server_pid:
                try:
                    os.setpriority(os.PRIO_PROCESS, pid, nice)
                except OSError:  # gone, or not ours to change
                    pass


def run_phase(url: str, pid: int, phase: str, ks: list[int], seconds: float, rounds: int) -> dict:
    titles = list(PAGES)
    rss_before, cpu_before, t0 = rss(pid), cpu_seconds(pid), time.perf_counter()
    main_before, load_before = main_thread_cpu(pid), os.getloadavg()[0]
    sessions = [
        Session(k, url, titles[i:] + titles[:i], t0 + seconds, rounds * len(titles), phase, pid)
        for i, k in enumerate(ks)
    ]
    for s in sessions:
        s.start()
    for s in sessions:
        s.join()
    visits = sum(1 for s in sessions for step in s.steps if step[1] == "open" and step[0] != "(app)")
    return {
        "phase": phase,
        "sessions": sessions,
        "start": t0,
        "end": time.perf_counter(),
        "cpu": cpu_seconds(pid) - cpu_before,
        "main cpu": main_thread_cpu(pid) - main_before,
        "visits": visits,
        "rss": (rss_before, rss(pid)),
        "load": (load_before, os.getloadavg()[0]),
    }


def main_thread_cpu(pid: int) -> float:
    """User + system CPU time of the server's main thread (its event loop) so far, from /proc."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def gone_session(url: str, log: Path) -> str:
    """A session starts DETR-R50 (random weights) on a 1024-pixel scene and closes its tab after 0.5 s."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(VISIT_TIMEOUT * 1000)
        wire = SessionWire(page, 0)
        mark = wire.mark()
        page.goto(url)
        wait_idle(page, wire, mark)
        mark = wire.mark()
        page.get_by_test_id("stSidebarNav").get_by_text("DETR", exact=True).click()
        wait_idle(page, wire, mark)
        mark = wire.mark()
        page.get_by_test_id("stSidebar").get_by_text("Untrained DETR-R50 (random weights)").click()
        wait_idle(page, wire, mark)
        fill(page, "Scene size (pixels)", "1024")
        filled = time.perf_counter()
        time.sleep(0.5)  # DETR-R50 at 1,024 pixels takes about 1.5 s on an idle core: close it mid-run
        closed = time.perf_counter()
        context.close()
        browser.close()
    time.sleep(5.0)
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    runs = [r for r in rows if r["session"] == session_id_of(wire) and r["start"] + r["wall"] > filled]
    mine = [r for r in runs if r["start"] + r["wall"] > closed]
    if not mine:
        if runs:  # the 1024-pixel run ended before the tab closed
            ended = max(r["start"] + r["wall"] for r in runs)
            return f"its run ended {closed - ended:.2f} s before the tab closed: nothing left to stop"
        return "the closed session's run did not end within 5 s of closing its tab"
    last = mine[-1]
    ended = last["start"] + last["wall"] - closed
    return f"{'stopped' if last['stopped'] else 'finished'} {ended:.2f} s after its tab closed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=8, help="concurrent sessions (at most 8)")
    parser.add_argument("--seconds", type=float, default=120, help="how long the concurrent phase runs")
    parser.add_argument("--rounds", type=int, default=2, help="at most this many rounds of the pages each")
    parser.add_argument("--verbose", action="store_true", help="print each step as it ends")
    parser.add_argument(
        "--think", type=float, default=Session.think, help="mean seconds a user reads after a step (0: none)"
    )
    parser.add_argument(
        "--browser-nice", type=int, default=0, help="run the browsers at this niceness (19: the server first)"
    )
    args = parser.parse_args()
    Session.verbose, Session.think = args.verbose, args.think
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the server and browsers on a kill
    n = min(args.sessions, len(WORDS) - 2)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "runs.jsonl"
        env = dict(os.environ, ATTN_RUN_LOG=str(log))
        server_log = Path(tmp) / "server.log"
        with running_app(server_log, env=env, launcher="benchmarks.load_server") as (url, server):
            stop = threading.Event()
            if args.browser_nice:
                threading.Thread(
                    target=lower_the_browsers, args=(args.browser_nice, server.pid, stop), daemon=True
                ).start()
            rss_start = rss(server.pid)
            phases = [
                run_phase(url, server.pid, "one session, cold", [len(WORDS) - 2], 1e9, 1),
                run_phase(url, server.pid, "one session, warm, new input", [len(WORDS) - 1], 1e9, 1),
                run_phase(url, server.pid, f"{n} sessions", list(range(n)), args.seconds, args.rounds),
            ]
            gone = gone_session(url, log)
            peak = peak_rss(server.pid)
            stop.set()
            settings = (
                f"think time {args.think:g} s on average after each step (0.5x to 1.5x, seeded per session); "
                f"browsers at nice {args.browser_nice}; {n} sessions for {args.seconds:g} s, at most "
                f"{args.rounds} rounds"
            )
            report(phases, log, rss_start, peak, gone, settings)


if __name__ == "__main__":
    main()
