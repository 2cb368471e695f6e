"""Figure 6, the daemon at rest: `orch run --detach` with N idle scripted workers; once it has settled, its CPU time
over a window (utime+stime from /proc/<pid>/stat; the tmux and git processes it started and reaped are counted
apart, from cutime+cstime) and its peak memory (VmHWM from /proc/<pid>/status).

The window runs in the background while the bench goes on in other workspaces (other folders, another tmux
server): nothing there wakes this daemon, and CPU time is the daemon's own, so the figure is the same; the run is
a minute shorter."""

from __future__ import annotations

import threading
import time

from common import Space, cpu_seconds, quiet, status_kb


class RestWindow:
    def __init__(self, space: Space, idle_workers: int, window: float) -> None:
        self.space = space
        self.idle_workers = idle_workers
        self.window = window
        self.samples: dict[str, float] = {}
        self.thread: threading.Thread | None = None

    def start(self) -> RestWindow:
        pid = self.space.start_daemon()
        quiet(pid, window=1.0, limit=30)  # its start-up pass
        self.thread = threading.Thread(target=self._watch, args=(pid,), daemon=True)
        self.thread.start()
        return self

    def _watch(self, pid: int) -> None:
        own0, kids0 = cpu_seconds(pid)
        start = time.perf_counter()
        time.sleep(self.window)
        own1, kids1 = cpu_seconds(pid)
        self.samples = {"own": own1 - own0, "kids": kids1 - kids0, "elapsed": time.perf_counter() - start,
                        "hwm": status_kb(pid, "VmHWM"), "rss": status_kb(pid, "VmRSS")}

    def finish(self) -> list[tuple[str, str, str, str]]:
        assert self.thread is not None
        self.thread.join()
        self.space.stop_daemon()
        s = self.samples
        own = s["own"] / s["elapsed"]
        kids = s["kids"] / s["elapsed"]
        return [
            (f"`orch run` at rest, {self.idle_workers} idle workers: CPU", f"{own * 60:.2f} s/min", "—",
             f"{own:.2%} of a core over {s['elapsed']:.0f} s; {own + kids:.2%} with the tmux/git processes it ran"),
            ("`orch run` at rest: peak memory (VmHWM)", f"{s['hwm'] / 1024:.1f} MB", "—", f"VmRSS {s['rss'] / 1024:.1f} MB"),
        ]
