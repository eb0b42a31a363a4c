"""bench_load's report: what each phase saw, and the N-session phase against the warm single session.

A phase is bench_load.run_phase's dict: its sessions (each with its steps: page, "open" | "input", start,
end, and the server's CPU at both), the server process's CPU over the phase and its main thread's, its
visits and resident memory. The log is load_server's: one JSON line per script run.
"""

import json
import os
import statistics
from collections import Counter
from pathlib import Path

from benchmarks.timing import machine


def server_runs(log: Path, phase: dict) -> list[dict]:
    """The server's script runs of this phase's sessions, each with the page its session was on and the
    step ("open", "input"; "" between steps)."""
    by_session = {s.session_id: s for s in phase["sessions"]}
    runs = []
    for line in log.read_text().splitlines() if log.exists() else []:
        row = json.loads(line)
        session = by_session.get(row["session"])
        if session is None:
            continue
        row["page"], row["step"] = next(
            ((t, w) for t, w, start, end, *_ in session.steps if start - 0.05 <= row["start"] <= end + 0.05),
            ("(between steps)", ""),
        )
        runs.append(row)
    return runs


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=10)[int(q * 10) - 1] if len(values) > 1 else values[0]


def visits_by_page(phase: dict) -> Counter:
    """Visits per page; "(app)" counts each session's opening of the app."""
    return Counter(title for s in phase["sessions"] for title, what, *_ in s.steps if what == "open")


def script_cpu_per_visit(runs: list[dict], visits: Counter, step: str | None = None) -> dict[str, float]:
    """Per page, the script threads' CPU seconds of its runs (those of `step` only, if given) over its
    visits."""
    cpu = Counter()
    for r in runs:
        if step is None or r["step"] == step:
            cpu[r["page"]] += r["cpu"]
    return {page: cpu[page] / n for page, n in visits.items()}


def step_cpu(phase: dict) -> dict[tuple[str, str], float]:
    """Mean server-process CPU seconds per (page, step): meaningful with one session only, when nothing
    else runs on the server during a step."""
    cpus = {}
    for s in phase["sessions"]:
        for title, what, _, _, cpu0, cpu1 in s.steps:
            cpus.setdefault((title, what), []).append(cpu1 - cpu0)
    return {key: statistics.mean(values) for key, values in cpus.items()}


def phase_report(phase: dict, log: Path) -> dict:
    """Prints one phase; returns its runs and per-page figures for the comparison."""
    sessions = phase["sessions"]
    load = phase["load"]
    print(
        f"\n== {phase['phase']}: {len(sessions)} session(s), {phase['end'] - phase['start']:.0f} s; "
        f"machine load average (1 min) {load[0]:.2f} at the start, {load[1]:.2f} at the end"
    )
    errors = [e for s in sessions for e in s.errors]
    foreign = [f"session {s.k}: {f}" for s in sessions for f in s.foreign]
    missing = [f"session {s.k}: {m}" for s in sessions for m in s.own_missing]
    print(f"errors: {len(errors)}" + "".join(f"\n  {e}" for e in errors))
    print(f"cross-talk (another session's word seen): {len(foreign)}")
    print("".join(f"  {f}\n" for f in foreign), end="")
    if missing:
        print("own word not shown: " + "; ".join(missing))
    print(f"{'page':<32} {'step':<6} {'n':>3} {'median s':>9} {'max s':>7}")
    steps = {}
    for s in sessions:
        for title, what, start, end, *_ in s.steps:
            steps.setdefault((title, what), []).append(end - start)
    for (title, what), times in steps.items():
        print(f"{title:<32} {what:<6} {len(times):>3} {statistics.median(times):>9.2f} {max(times):>7.2f}")
    runs = server_runs(log, phase)
    visits = visits_by_page(phase)
    per_visit, opening = script_cpu_per_visit(runs, visits), script_cpu_per_visit(runs, visits, "open")
    script_cpu = sum(r["cpu"] for r in runs)
    if runs:
        walls, cpus = [r["wall"] for r in runs], [r["cpu"] for r in runs]
        print(
            f"server script runs: {len(runs)}, wall median {statistics.median(walls) * 1000:.0f} ms "
            f"(90th percentile {percentile(walls, 0.9) * 1000:.0f} ms), script-thread CPU median "
            f"{statistics.median(cpus) * 1000:.0f} ms, mean {statistics.mean(cpus) * 1000:.0f} ms; "
            f"stopped early: {sum(r['stopped'] for r in runs)}"
        )
        walls_by_page = {}
        for r in runs:
            walls_by_page.setdefault(r["page"], []).append(r["wall"])
        print(
            f"  {'page':<32} {'visits':>6} {'runs':>5} {'wall/run ms':>12} {'script CPU/visit s':>19} "
            f"{'of which opening':>16}"
        )
        for page, page_walls in walls_by_page.items():
            print(
                f"  {page:<32} {visits.get(page, 0):>6} {len(page_walls):>5} "
                f"{statistics.median(page_walls) * 1000:>12.0f} {per_visit.get(page, float('nan')):>19.3f} "
                f"{opening.get(page, float('nan')):>16.3f}"
            )
    n = max(phase["visits"], 1)
    other = phase["cpu"] - script_cpu - phase["main cpu"]
    rss0, rss1 = phase["rss"][0] / 2**20, phase["rss"][1] / 2**20
    print(
        f"server CPU: {phase['cpu']:.1f} s over {phase['visits']} visits = {phase['cpu'] / n:.2f} s a visit "
        f"(script threads {script_cpu / n:.2f}, main thread {phase['main cpu'] / n:.2f}, other threads "
        f"{other / n:.2f}); resident memory {rss0:.0f} -> {rss1:.0f} MiB"
    )
    if len(sessions) == 1:
        in_steps = sum(cpu1 - cpu0 for s in sessions for *_, cpu0, cpu1 in s.steps)
        between = phase["cpu"] - in_steps
        print(f"  of which during steps {in_steps:.1f} s, between them (think time) {between:.1f} s")
    return {"runs": runs, "per visit": per_visit, "opening": opening, "visits": visits}


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def comparison(one: dict, one_figures: dict, many: dict, many_figures: dict) -> None:
    """The N-session phase against one session: per run, per visit and per page."""
    print(f"\n== {many['phase']} against {one['phase']}")
    runs1, runs_n = one_figures["runs"], many_figures["runs"]
    if not runs1 or not runs_n:
        print("no script runs to compare")
        return
    for name, stat in (("median", statistics.median), ("mean", statistics.mean)):
        c1, cn = stat([r["cpu"] for r in runs1]), stat([r["cpu"] for r in runs_n])
        w1, wn = stat([r["wall"] for r in runs1]), stat([r["wall"] for r in runs_n])
        print(
            f"per script run, {name}: the server's own time (script thread's CPU; the target's measure, "
            f"within 2x) {cn * 1000:.0f} vs {c1 * 1000:.0f} ms = {ratio(cn, c1)}; server wall (adds the "
            f"waits for a core and for Python's lock) {wn * 1000:.0f} vs {w1 * 1000:.0f} ms = {ratio(wn, w1)}"
        )
    v1, vn = max(one["visits"], 1), max(many["visits"], 1)
    costs = step_cpu(one)
    alone = sum(costs.get((t, w), 0.0) for s in many["sessions"] for t, w, *_ in s.steps)
    print(
        f"server CPU per visit: {many['cpu'] / vn:.2f} vs {one['cpu'] / v1:.2f} s = "
        f"{ratio(many['cpu'] / vn, one['cpu'] / v1)}; the same steps cost one session alone "
        f"{alone / vn:.2f} s per visit (steps only, no think time): {ratio(many['cpu'], alone)} of that"
    )
    header = f"{'script CPU/visit s: one':>24} {'N':>7} {'ratio':>6} {'opening: one':>13} {'N':>7}"
    print(f"  {'page':<32} {header}")
    for page in many_figures["visits"]:
        c1, cn = one_figures["per visit"].get(page, 0.0), many_figures["per visit"].get(page, 0.0)
        o1, on = one_figures["opening"].get(page, 0.0), many_figures["opening"].get(page, 0.0)
        print(f"  {page:<32} {c1:>24.3f} {cn:>7.3f} {ratio(cn, c1):>6} {o1:>13.3f} {on:>7.3f}")


def report(phases: list[dict], log: Path, rss_start: int, peak: int, gone: str, settings: str) -> None:
    """Every phase, then the last (N sessions) against the second (one session, warm, new input)."""
    print(f"machine: {machine()}, {os.cpu_count()} cores")
    print(settings)
    print(f"server memory: {rss_start / 2**20:.0f} MiB resident after start, peak {peak / 2**20:.0f} MiB")
    figures = [phase_report(phase, log) for phase in phases]
    comparison(phases[1], figures[1], phases[-1], figures[-1])
    print(f"\na session that closes its tab during a DETR-R50 run: {gone}")
