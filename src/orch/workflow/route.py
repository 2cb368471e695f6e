"""Routing: a worker address (``<slug>``, ``<slug>:<role>``, ``<slug>:<role>.<n>``) to its tmux pane.

The tmux window tags are the ground truth (they survive a lost database); the registry breaks ties.
"""

from __future__ import annotations

import os
import sys
import time

from orch import slug as slugs
from orch.errors import OrchError
from orch.lifecycle import Actor, TaskEvent, TaskState
from orch.mux import Pane, describe_exit
from orch.record import dataclass
from orch.workflow import tasks as T
from orch.workflow.context import Ctx

ROLES = ("coder", "reviewer")


@dataclass(frozen=True)
class Address:
    task: str
    role: str = "coder"
    index: int | None = None

    def __str__(self) -> str:
        text = self.task if self.role == "coder" and self.index is None else f"{self.task}:{self.role}"
        return text if self.index is None else f"{text}.{self.index}"


def parse_address(text: str) -> Address:
    slug, _, rest = text.partition(":")
    role, dot, index = rest.partition(".")
    if not rest and "." in slug and not slugs.is_valid(slug):
        slug, _, index = slug.rpartition(".")
        dot = "."
    why = slugs.problem(slug)
    if why:
        raise OrchError(f"bad worker address {text!r}: {why} (use <task>, <task>:<role> or <task>:<role>.<n>)")
    role = role or "coder"
    if role not in ROLES:
        raise OrchError(f"bad worker address {text!r}: unknown role {role!r} (roles: {', '.join(ROLES)})")
    n = None
    if dot:
        if not index.isdigit():
            raise OrchError(f"bad worker address {text!r}: the pane number after '.' must be a number")
        n = int(index)
    return Address(slug, role, n)


@dataclass(frozen=True)
class Target:
    address: Address
    pane: Pane
    window_panes: tuple[Pane, ...]
    worker_id: str


def resolve(ctx: Ctx, text: str | None, pane_override: str | None = None, allow_dead: bool = False) -> Target:
    """The pane an address (or an explicit ``--pane``) names, among this workspace's panes only."""
    listing = ctx.listing()
    panes = listing.panes
    if pane_override:
        if not (pane_override.startswith("%") and pane_override[1:].isdigit()):
            raise OrchError(f"--pane takes a pane id like %3, not {pane_override!r}")
        for pane in listing.all:
            if pane.pane_id != pane_override:
                continue
            own = {p.pane_id for p in panes}
            if pane.pane_id not in own and (pane.workspace or pane.worker):
                raise OrchError(f"pane {pane_override} belongs to another orch workspace ({pane.task or 'no task'}); "
                                "run the command in that workspace")
            window = tuple(p for p in listing.all if p.window_id == pane.window_id)
            addr = Address(pane.task, pane.role or "coder") if pane.task else Address("pane")
            return _check_alive(Target(addr, pane, window, pane.worker), allow_dead)
        raise OrchError(f"no pane {pane_override} on orch's server ({ctx.mux.describe()})")
    if not text:
        raise OrchError("name a worker: <task> or <task>:<role>")
    addr = parse_address(text)
    candidates = [p for p in panes if p.task == addr.task and (p.role or "coder") == addr.role and p.pane_role != "shell"]
    if not candidates:
        _explain_missing(ctx, addr)
    registered = {w.pane_id: w for w in ctx.store.task_workers(addr.task) if w.role == addr.role and w.state != "lost"}
    candidates.sort(key=lambda p: (p.pane_id in registered, not p.dead, int(p.window_id[1:] or 0)), reverse=True)
    agent = candidates[0]
    window = tuple(sorted((p for p in panes if p.window_id == agent.window_id), key=lambda p: p.pane_index))
    pane = agent
    if addr.index is not None:
        if addr.index >= len(window):
            raise OrchError(f"worker {addr.task}:{addr.role} has {len(window)} pane(s); there is no .{addr.index}")
        pane = window[addr.index]
    return _check_alive(Target(addr, pane, window, agent.worker), allow_dead)


def _explain_missing(ctx: Ctx, addr: Address) -> None:
    who = f"{addr.task}:{addr.role}"
    if os.path.exists(T.task_path(ctx, addr.task)):
        if addr.role == "coder":
            raise OrchError(f"task {addr.task!r} has no coder window: `orch start {addr.task}` starts one")
        raise OrchError(f"task {addr.task!r} has no {addr.role} window yet ({who})")
    if os.path.exists(os.path.join(ctx.cfg.done_path, addr.task + ".md")):
        raise OrchError(f"task {addr.task!r} is closed; it has no workers")
    raise OrchError(f"no task {addr.task!r}: `orch status` lists tasks and their workers")


def _check_alive(target: Target, allow_dead: bool) -> Target:
    if target.pane.dead and not allow_dead:
        shown = describe_exit(target.pane)
        who = str(target.address)
        raise OrchError(
            f"worker {who} has exited ({shown}): `orch capture {who}` shows its last screen, "
            f"`orch start {target.address.task}` starts a new one"
        )
    return target


# -- commands --------------------------------------------------------------------------------------------------


def send(ctx: Ctx, address: str | None, text: str, pane: str | None = None) -> Target:
    """Type ``text`` into a worker's input (explicit user action: goes through even when someone is attached)."""
    if not text.strip():
        raise OrchError("nothing to send: give the text as an argument or on stdin")
    from orch.workflow import deliver
    from orch.workflow.watch import resumed_state

    target = resolve(ctx, address, pane)
    task = target.address.task
    if target.address.role == "coder" and target.pane.task and os.path.exists(T.task_path(ctx, task)):
        current = T.get(ctx, task)
        if current.state == TaskState.NEEDS_INPUT:  # recorded first: the coder may be done before the typing returns
            T.move(ctx, task, resumed_state(current), TaskEvent.ANSWER, Actor.PERSON, status=f"user answered: {text}",
                   question=None, waiting_on=None)
    if target.pane.is_agent:
        profile = deliver.profile_of(ctx, target.pane.agent)
        deliver.mark_working(ctx, target.worker_id, profile, "text sent by the person", Actor.PERSON)
        failed = deliver.type_confirmed(ctx, target.worker_id, target.pane.pane_id, text, profile)
    else:  # a worker's shell pane (`orch exec`'s): a shell reads the keys in order, and says nothing to confirm
        deliver.type_text(ctx, target.pane.pane_id, text, enter_delay=0)
        failed = None
    if failed is not None:
        excerpt = " | ".join(line.strip() for line in failed.splitlines()[-3:] if line.strip())
        raise OrchError(f"{target.address} did not take the text (Enter pressed twice); its screen: {excerpt}")
    ctx.event("send", f"{len(text)} chars typed into {target.pane.pane_id}", task=task, worker=target.worker_id)
    return target


def reply(ctx: Ctx, task: str, text: str) -> Target:
    """Answer the coder's question (the task must be waiting for input)."""
    current = T.get(ctx, task)
    if current.state != TaskState.NEEDS_INPUT:
        raise OrchError(f"task {task!r} is not waiting for input (it is {current.state}); `orch send {task} ...` "
                        "types into its coder all the same")
    return send(ctx, task, text)


def capture(ctx: Ctx, address: str | None, lines: int, pane: str | None = None, colour: bool = False) -> str:
    """The last ``lines`` lines of the pane, without the blank rest of the screen: for an agent that ended, its last
    words, then tmux's ``Pane is dead`` line (not the empty screen between them). ``colour``: with its colours and
    styles (and nothing else a terminal acts on)."""
    target = resolve(ctx, address, pane, allow_dead=True)
    screen = ctx.mux.capture(target.pane.pane_id, lines + 300, styled=colour)
    if colour:
        from orch.terminal import colours_only

        screen = colours_only(screen)
    rows = screen.split("\n")
    if rows and rows[-1].startswith("Pane is dead"):
        last = rows.pop()
        while rows and not rows[-1].strip():
            rows.pop()
        rows.append(last)
    return "\n".join(rows[-lines:])


def attach(ctx: Ctx, address: str | None, pane: str | None = None) -> None:
    """Show the worker's window on this terminal (does not return when it works)."""
    target = resolve(ctx, address, pane, allow_dead=True)
    ctx.mux.select_pane(target.pane.pane_id)
    ctx.mux.attach(target.pane.window_id)


def _shell_pane(ctx: Ctx, target: Target) -> Pane | None:
    for pane in target.window_panes:
        if pane.pane_role == "shell":
            return pane
    return None


def exec_command(ctx: Ctx, address: str | None, argv: list[str], timeout: float, pane: str | None = None) -> int:
    """Run ``argv`` in the shell pane of a worker's window; stream its output; return its exit code."""
    if not argv:
        raise OrchError("nothing to run: orch exec <worker> -- <command...>")
    target = resolve(ctx, address, pane, allow_dead=True)
    runs = ctx.ws.path("runs")
    os.makedirs(runs, exist_ok=True)
    stem = os.path.join(runs, f"exec-{target.address.task}-{time.strftime('%Y%m%dT%H%M%S')}-{os.urandom(3).hex()}")
    out_path, rc_path = stem + ".out", stem + ".rc"
    open(out_path, "wb").close()
    cwd = target.pane.current_path or ctx.ws.root
    runner = [sys.executable, "-m", "orch.runner", out_path, rc_path, f"{timeout:g}", "--", *argv]
    env = {"ORCH_WORKSPACE": ctx.ws.root, "ORCH_TASK": target.address.task}
    if pane is None:
        shell = _shell_pane(ctx, target)
        if shell is None:
            created = ctx.mux.split_window(target.pane.window_id, cwd, env, runner)
            ctx.mux.tag_pane(created.pane_id, {"pane_role": "shell"})
            ctx.mux.select_pane(target.pane.pane_id)
        else:
            ctx.mux.respawn_pane(shell.pane_id, shell.current_path or cwd, env, runner)
    else:
        if target.pane.worker and target.pane.pane_role != "shell":
            raise OrchError(f"--pane {pane} is an agent pane; orch exec never types into an agent (use a shell pane)")
        ctx.mux.respawn_pane(pane, cwd, env, runner)
    ctx.event("exec", " ".join(argv)[:500], task=target.address.task, worker=target.worker_id)
    return _follow(out_path, rc_path, timeout)


def _follow(out_path: str, rc_path: str, timeout: float) -> int:
    """The command's output as it comes (its standard error on ours), then its exit code."""
    from orch.runner import err_path

    deadline = time.monotonic() + (timeout + 30 if timeout > 0 else 1e12)
    delay = 0.01
    open(err_path(out_path), "ab").close()
    with open(out_path, "rb") as out, open(err_path(out_path), "rb") as err:
        streams = ((out, sys.stdout.buffer), (err, sys.stderr.buffer))

        def pump() -> bool:
            moved = False
            for source, sink in streams:
                chunk = source.read()
                if chunk:
                    sink.write(chunk)
                    sink.flush()
                    moved = True
            return moved

        while True:
            if pump():
                delay = 0.01
            if os.path.exists(rc_path):
                pump()
                with open(rc_path, encoding="ascii") as rc:
                    return int(rc.read().strip() or "1")
            if time.monotonic() > deadline:
                raise OrchError("the command's shell pane stopped answering; `orch capture` shows it")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.1)
