"""Many hosts: the plain records that travel between the workspace and its hosts, and the placement decision.

A host is a machine that runs workers (`orch host`): its own clone of the repository, tmux server, sandbox and
inbox, and the same orch that runs on one machine. The workspace's daemon places each task on a host; a Temporal
workflow per task holds the placement and its run (``fleet/workflows.py``); the host sends the task's record back
as snapshots the workspace applies once each (``workflow/fleet.py``). Everything here is pure and standard-library
only: the records are plain dicts on the wire, these functions read and build them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from orch.record import dataclass

# a task's states in which its host is done with it: ready (the workspace takes its branch and dossier), or closed
# there. Blocked and needs-input are not: the host keeps its workers for the person's answer or retry.
FINAL = ("ready", "done")
# what the workspace and its hosts say to each other (the workflows, the reports, the routed commands): raised when
# one orch cannot work with another's; a task is placed only on hosts that speak the workspace's
PROTOCOL = 2


@dataclass(frozen=True)
class Host:
    """A host as its last heartbeat described it (``seen``: when, by the registry's clock)."""

    name: str
    labels: tuple[str, ...] = ()
    max_workers: int = 4
    seen: float = 0.0
    ssh: str = ""  # how a person reaches it (user@machine), for `orch attach`
    clone: str = ""  # its clone of the repository, where its own orch runs
    socket: str = ""  # its tmux server (tmux -L)
    running: int = 0  # its live workers, as it counted them
    version: str = ""  # the orch it runs
    protocol: int = 0  # what its orch speaks (PROTOCOL; 0: an orch from before there was one)

    def live(self, now: float, dead_after: float) -> bool:
        return now - self.seen <= dead_after

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "labels": list(self.labels), "max_workers": self.max_workers, "seen": self.seen,
                "ssh": self.ssh, "clone": self.clone, "socket": self.socket, "running": self.running,
                "version": self.version, "protocol": self.protocol}

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> Host:
        labels = d.get("labels") or ()
        return cls(name=str(d["name"]), labels=tuple(str(x) for x in labels) if isinstance(labels, list | tuple) else (),
                   max_workers=int(d.get("max_workers", 4) or 0),  # type: ignore[call-overload]
                   seen=float(d.get("seen", 0.0) or 0.0),  # type: ignore[arg-type]
                   ssh=str(d.get("ssh", "")), clone=str(d.get("clone", "")), socket=str(d.get("socket", "")),
                   running=int(d.get("running", 0) or 0),  # type: ignore[call-overload]
                   version=str(d.get("version", "")),
                   protocol=int(d.get("protocol", 0) or 0))  # type: ignore[call-overload]


@dataclass(frozen=True)
class Want:
    """What a task asks of its host: one by name (front matter ``host:``), labels (``needs: [gpu]``), and hosts it
    must not go to again (those it was lost on)."""

    slug: str
    host: str = ""
    needs: tuple[str, ...] = ()
    avoid: tuple[str, ...] = ()
    protocol: int = 0  # what the workspace's orch speaks: only hosts that speak it too (0: any)
    prefer: str = ""  # the host that has its copy (a round after it was ready): that one while it is live

    def as_dict(self) -> dict[str, object]:
        return {"slug": self.slug, "host": self.host, "needs": list(self.needs), "avoid": list(self.avoid),
                "protocol": self.protocol, "prefer": self.prefer}

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> Want:
        def names(key: str) -> tuple[str, ...]:
            v = d.get(key) or ()
            return tuple(str(x) for x in v) if isinstance(v, list | tuple) else ()

        return cls(slug=str(d["slug"]), host=str(d.get("host", "") or ""), needs=names("needs"), avoid=names("avoid"),
                   protocol=int(d.get("protocol", 0) or 0),  # type: ignore[call-overload]
                   prefer=str(d.get("prefer", "") or ""))


def load(hosts: Iterable[Host], claims: Mapping[str, str]) -> dict[str, int]:
    """Tasks placed on each host (its claims: the registry's count, ahead of the host's own beat)."""
    counts = {h.name: 0 for h in hosts}
    for host in claims.values():
        if host in counts:
            counts[host] += 1
    return counts


def place(want: Want, hosts: Iterable[Host], claims: Mapping[str, str], now: float,
          dead_after: float) -> tuple[str, str]:
    """The host for a task, and "" with the reason it waits. A task keeps a live host it holds already; else a
    live host that speaks the workspace's protocol, has every label it needs (the one it names, if it names one),
    is not to be avoided and has a free place; of those the one with the fewest labels it does not need, then the
    most free places, then by name."""
    hosts = list(hosts)
    held = claims.get(want.slug)
    by_name = {h.name: h for h in hosts}
    if held and held in by_name and by_name[held].live(now, dead_after) and held not in want.avoid:
        return held, ""
    mine = by_name.get(want.prefer)  # its copy is there, its coder with it: no new place taken
    if mine is not None and mine.live(now, dead_after) and mine.name not in want.avoid and speaks(mine, want):
        return mine.name, ""
    counts = load(hosts, {s: h for s, h in claims.items() if s != want.slug})
    if want.host:
        h = by_name.get(want.host)
        if h is None:
            return "", f"host {want.host} has never joined the cluster"
        if not h.live(now, dead_after):
            return "", f"host {want.host} is not live (last heartbeat {now - h.seen:.0f} s ago)"
        if not speaks(h, want):
            return "", f"host {want.host} runs another orch ({h.version or 'an old one'}): upgrade it"
        if want.host in want.avoid:
            return "", f"host {want.host} lost this task before"
        if counts[h.name] >= h.max_workers:
            return "", f"host {want.host} is full ({counts[h.name]}/{h.max_workers})"
        return h.name, ""
    live = [h for h in hosts if h.live(now, dead_after)]
    if not live:
        return "", "no host is live" if hosts else "no host has joined the cluster (start `orch host` on one)"
    fit = [h for h in live if set(want.needs) <= set(h.labels)]
    if not fit:
        return "", f"no live host has the labels {', '.join(want.needs)}"
    fit = [h for h in fit if speaks(h, want)]
    if not fit:
        return "", "the live hosts that fit run another orch than the workspace: upgrade them"
    fit = [h for h in fit if h.name not in want.avoid]
    if not fit:
        return "", "the only hosts that fit lost this task before"
    free = [h for h in fit if counts[h.name] < h.max_workers]
    if not free:
        return "", "every host that fits is full"
    # hosts with labels the task does not need are kept for the tasks that do (a plain task does not take the GPU
    # machine's place while another has room); then the most free places; then the name
    best = min(free, key=lambda h: (len(set(h.labels) - set(want.needs)), -(h.max_workers - counts[h.name]), h.name))
    return best.name, ""


def speaks(host: Host, want: Want) -> bool:
    """Whether a host's orch can run the workspace's task (the same protocol)."""
    return not want.protocol or host.protocol == want.protocol


def snapshot_newer(old: Mapping[str, object] | None, new: Mapping[str, object]) -> bool:
    """Is ``new`` a later report of the task than ``old``? Reports are ordered by (run, seq): a run is one
    placement, its seq counts the host's reports. An older or equal one is a repeat: applied already."""
    if old is None:
        return True
    return (int(new.get("run", 0)), int(new.get("seq", 0))) > (int(old.get("run", 0)), int(old.get("seq", 0)))  # type: ignore[call-overload]


# the workspace's tables that are about this machine, not a host's: a host's own orch never has them
_WORKSPACE_ONLY = ("cluster", "forge", "land", "tmux")


def host_config(text: str, base: str, socket: str = "") -> str:
    """The workspace's config.toml as a host's clone takes it: the tables of the workspace alone left out (a host
    is not a cluster of its own, opens no pull request, lands nothing), and ``base`` (the remote's base branch) set.
    Line by line: TOML's tables start at a line ``[name]`` and run to the next; top-level keys come first."""
    out: list[str] = []
    in_table = skipping = False
    for line in text.splitlines():
        bare = line.strip()
        if bare.startswith("["):
            in_table = True
            skipping = bare.strip("[]").strip().split(".")[0].strip('"') in _WORKSPACE_ONLY
        elif not in_table and "=" in bare and not bare.startswith("#"):
            key = bare.split("=", 1)[0].strip()
            if key == "base" or key.split(".")[0].strip('"') in _WORKSPACE_ONLY:
                continue  # the workspace's base is a branch of its repository: the host's is the remote's
        if not skipping:
            out.append(line)
    head = [f'base = "{base}"'] if base else []
    tail = ["", "[tmux]", f'socket = "{socket}"'] if socket else []  # the host's own server
    return "\n".join(head + out + tail) + "\n"


def round_note(text: str) -> str:
    """What a coder reads below the task's text when a round its workspace sent reaches a host without the task's
    copy (the host that had it is gone): the round's request."""
    return f"\n\n---\nNote from orch: the workspace sent this round's request for the branch:\n\n{text.strip()}\n"


def resume_note(lost_on: str, log: str) -> str:
    """What a coder placed again after its host was lost reads below the task's text."""
    where = f" on host {lost_on}" if lost_on else ""
    commits = log.strip() or "(no commits yet)"
    return (f"\n\n---\nNote from orch: this task was started before{where}, which was lost. Its branch already "
            f"holds the work pushed from there:\n\n```\n{commits}\n```\n\nGo on from that work: check what is done, "
            "finish the rest, commit, and report as usual.\n")
