"""Figure 10, the dashboards with 50 tasks (45 held, 5 with idle coders) and the daemon running:
  - `orch web` with one page connected (a server-sent-events client here): the time from a change (a new task
    file) to the event that carries it, its CPU at rest (30 s, one client connected) and its memory;
  - `orch dash` in a terminal (a pane of this figure's tmux server): the time from a new task file to its line on
    the screen (read with capture-pane every 20 ms), its CPU at rest and its memory.
The goals: a refresh within 1 s of the change, at most 2% of a core at rest, under 120 MB."""

from __future__ import annotations

import http.client
import statistics
import subprocess
import threading
import time
import urllib.parse

from common import ORCH, Space, cpu_seconds, quiet, status_kb

HELD = "---\nhold: true\n---\na task kept queued for the bench\n"
TRIALS = 8
REST = 30.0


def _web(space: Space) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([ORCH, "web", "--port", "0"], cwd=space.repo, env=space.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip().removeprefix("orch web: ")
    if not url.startswith("http://"):
        raise SystemExit(f"bench (dash): orch web did not start: {url} {proc.stderr.read() if proc.stderr else ''}")
    return proc, url


class Events:
    """A server-sent-events client: each model's text, with the time it arrived."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        self.conn.request("GET", f"/events?{parts.query}")
        self.response = self.conn.getresponse()
        self.seen: list[tuple[float, str]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for raw in self.response:
            line = raw.decode("utf-8", "replace")
            if line.startswith("data: "):
                self.seen.append((time.perf_counter(), line[6:]))

    def wait_for(self, needle: str, after: float, timeout: float = 30.0) -> float:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            for at, text in list(self.seen):
                if at >= after and needle in text:
                    return at
            time.sleep(0.005)
        raise SystemExit(f"bench (dash): no event with {needle} within {timeout} s")


def _rest(pid: int, rest: float) -> tuple[float, int]:
    quiet(pid, window=1.0, limit=30)
    own0, _ = cpu_seconds(pid)
    start = time.perf_counter()
    time.sleep(rest)
    own1, _ = cpu_seconds(pid)
    return (own1 - own0) / (time.perf_counter() - start), status_kb(pid, "VmHWM")


def dashboards(space: Space, rest: float = REST) -> list[tuple[str, str, str, str]]:
    for i in range(45):
        space.write_task(f"held{i:02d}", HELD)
    space.spawn([f"live{i}" for i in range(5)], timeout=60)
    space.start_daemon()
    time.sleep(2.0)  # (its first passes)
    rows = []
    web, url = _web(space)
    try:
        events = Events(url)
        events.wait_for('"held00"', 0.0)
        lags = []
        for n in range(TRIALS):
            start = time.perf_counter()
            space.write_task(f"new{n}", HELD)
            lags.append(events.wait_for(f'"new{n}"', start) - start)
        cpu, hwm = _rest(web.pid, rest)
        rows += [
            ("`orch web`, 50 tasks: a new task file to the page's event", f"{statistics.median(lags) * 1000:.0f} ms",
             f"{min(lags) * 1000:.0f}–{max(lags) * 1000:.0f}", "goal: within 1 s (the daemon's pass, its model, the push)"),
            ("`orch web` at rest, one page connected: CPU", f"{cpu:.2%}", "—", f"of a core over {rest:.0f} s (goal 2%)"),
            ("`orch web`: peak memory (VmHWM)", f"{hwm / 1024:.1f} MB", "—", "goal: under 120 MB"),
        ]
    finally:
        web.terminate()
        web.wait(10)
    pane = space.tmux("new-session", "-d", "-s", "dash-bench", "-P", "-F", "#{pane_id} #{pane_pid}", "-x", "100", "-y",
                      "40",
                      "env", f"ORCH_TMUX_SOCKET={space.socket}", ORCH, "-C", str(space.repo), "dash", check=True)
    pane_id, pid = pane.stdout.decode().split()
    dash_pid = int(pid)  # (env execs the dashboard: the pane's process is orch dash itself)

    def screen() -> str:
        return space.tmux("capture-pane", "-p", "-t", pane_id).stdout.decode("utf-8", "replace")

    deadline = time.perf_counter() + 60
    while "held00" not in screen() and "new0" not in screen():
        if time.perf_counter() > deadline:
            raise SystemExit(f"bench (dash): orch dash showed no task: {screen()[-500:]}")
        time.sleep(0.1)
    lags = []
    for n in range(TRIALS):
        slug = f"a{n}"  # (sorted first in its group: on the first screen)
        start = time.perf_counter()
        space.write_task(slug, HELD)
        while f"{slug} " not in screen():
            if time.perf_counter() - start > 30:
                raise SystemExit(f"bench (dash): {slug} never showed: {screen()[-800:]}")
            time.sleep(0.02)
        lags.append(time.perf_counter() - start)
    cpu, hwm = _rest(dash_pid, rest)
    space.tmux("kill-pane", "-t", pane_id)
    rows += [
        ("`orch dash`, 50 tasks: a new task file to its line on the screen", f"{statistics.median(lags) * 1000:.0f} ms",
         f"{min(lags) * 1000:.0f}–{max(lags) * 1000:.0f}", "goal: within 1 s"),
        ("`orch dash` at rest: CPU", f"{cpu:.2%}", "—", f"of a core over {rest:.0f} s (goal 2%)"),
        ("`orch dash`: peak memory (VmHWM)", f"{hwm / 1024:.1f} MB", "—", "goal: under 120 MB"),
    ]
    space.stop_daemon()
    return rows

