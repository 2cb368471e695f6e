"""Getting text into an agent: when it is ready, by bracketed paste, confirmed, and never under a person's hands.

- ``deliver()`` types the first prompt of freshly started agents once each shows it is ready (its start hook or
  its ready pattern), all waited for together.
- ``type_confirmed()`` pastes, presses Enter after the profile's delay, and waits for the agent to take the text
  (a hook after the Enter, or the screen showing it working); unconfirmed, it presses Enter once more, then reports
  ``delivery failed`` with the screen excerpt instead of assuming success.
- ``send_or_queue()`` is for text orch types on its own initiative (fix rounds, reviewer prompts, reminders): when
  a person is attached to that window (`tmux list-clients`), the text waits in the outbox and ``flush_outbox()``
  delivers it after they leave. `orch send` typed by the user is explicit and does not wait.
"""

from __future__ import annotations

import re
import time

from orch import agents, faults
from orch.agents.base import Agent
from orch.agents.profile import AgentProfile
from orch.errors import OrchError
from orch.lifecycle import Actor
from orch.lifecycle import WorkerEvent as V
from orch.lifecycle import WorkerState as W
from orch.mux import MuxError, Pane
from orch.record import dataclass
from orch.store import Worker
from orch.terminal import neutralise
from orch.workflow import tasks as T
from orch.workflow import workers
from orch.workflow.context import Ctx


@dataclass
class Delivery:
    """A prompt waiting to be typed into a freshly started agent."""

    worker: Worker
    profile: AgentProfile
    text: str
    started: float
    first_start_looked: float = 0.0  # when its screen was last read for a first-start setup


def profile_of(ctx: Ctx, agent: str) -> AgentProfile | None:
    try:
        return ctx.cfg.profile(agent) if agent else None
    except OrchError:
        return None


def _tail_matches(screen: str, pattern: str, lines: int = 5) -> bool:
    if not pattern:
        return False
    tail = "\n".join(screen.rstrip("\n").splitlines()[-lines:])
    return re.search(pattern, tail, re.M) is not None


def type_text(ctx: Ctx, pane_id: str, text: str, enter_delay: float = 0.05) -> None:
    """Text into an agent's input: named paste buffer, bracketed paste, then Enter as its own key. The text's terminal
    control characters are neutralised first (``terminal.neutralise``): nothing in it can end the paste early, submit
    it in pieces or act as a key (``^C``), whoever wrote it (you, a reviewer's finding, a validation log)."""
    type_many(ctx, [(pane_id, text, enter_delay)])


def type_many(ctx: Ctx, items: list[tuple[str, str, float]]) -> dict[str, str]:
    """``type_text`` into several panes at once (pane, text, Enter delay): every paste, one wait (the longest
    delay), every Enter. Returns the panes that failed, with why (the others were typed into)."""
    failed: dict[str, str] = {}
    later = []
    for pane_id, text, enter_delay in items:
        data = neutralise(text).encode("utf-8", "surrogateescape")
        try:
            if not enter_delay:  # (a shell: the paste and Enter in one call)
                ctx.mux.paste(pane_id, data, keys=("Enter",))
            else:
                ctx.mux.paste(pane_id, data)
                later.append((pane_id, enter_delay))
        except MuxError as exc:
            if len(items) == 1:
                raise
            failed[pane_id] = str(exc)
    if later:
        time.sleep(max(delay for _, delay in later))
    for pane_id, _ in later:
        try:
            ctx.mux.send_keys(pane_id, "Enter")
        except MuxError as exc:
            if len(items) == 1:
                raise
            failed[pane_id] = str(exc)
    return failed


def _taken(ctx: Ctx, worker_id: str, pane_id: str, profile: AgentProfile, since: float) -> bool:
    """Did the agent take the text typed at ``since``? A hook after it, or the screen showing work."""
    if profile.hooks:
        from orch.workflow import inbox

        inbox.drain(ctx, wait=1)
        row = ctx.store.worker(worker_id) if worker_id else None
        if row is not None and row.hook_at is not None and row.hook_at >= since:
            return True
    if profile.screen_working:
        try:
            return _tail_matches(ctx.mux.capture(pane_id, lines=10), profile.screen_working)
        except MuxError:
            return False
    return False


def can_confirm(profile: AgentProfile) -> bool:
    return profile.hooks or bool(profile.screen_working)


def type_confirmed(ctx: Ctx, worker_id: str, pane_id: str, text: str, profile: AgentProfile | None) -> str | None:
    """Type ``text`` and confirm the agent took it. Returns None when confirmed (or the profile gives no way to
    tell), else the screen excerpt of a failed delivery."""
    since = time.time()
    type_text(ctx, pane_id, text, profile.enter_delay if profile else 0.05)
    faults.point("deliver.typed")
    if profile is None or not can_confirm(profile):
        return None
    return confirm_many(ctx, [(worker_id, pane_id, profile, since)])[pane_id]


def confirm_many(ctx: Ctx, items: list[tuple[str, str, AgentProfile, float]]) -> dict[str, str | None]:
    """Wait for each agent (worker, pane, profile, when its text was typed) to take its text, all together: None
    for a pane whose agent took it, else its screen. An agent that shows nothing within its confirm timeout gets
    Enter once more (the first may have been read as part of the paste), then as long again."""
    now = time.monotonic()
    waiting: dict[str, tuple[str, AgentProfile, float, int, float]] = {
        pane: (worker, profile, since, 0, now + profile.confirm_timeout) for worker, pane, profile, since in items}
    out: dict[str, str | None] = {}
    delay = 0.02
    while waiting:
        for pane in list(waiting):
            worker, profile, since, attempt, deadline = waiting[pane]
            if _taken(ctx, worker, pane, profile, since):
                out[pane] = None
                del waiting[pane]
            elif time.monotonic() >= deadline:
                if attempt == 0:
                    try:
                        ctx.mux.send_keys(pane, "Enter")  # the Enter may have been read as part of the paste
                    except MuxError:
                        out[pane] = "(the pane is gone)"
                        del waiting[pane]
                        continue
                    waiting[pane] = (worker, profile, since, 1, time.monotonic() + profile.confirm_timeout)
                    continue
                try:
                    out[pane] = ctx.mux.capture(pane, lines=12)
                except MuxError:
                    out[pane] = "(the pane is gone)"
                del waiting[pane]
        if waiting:
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)
    return out


# -- first prompts -------------------------------------------------------------------------------------------------


def _ready(ctx: Ctx, d: Delivery, screen: str) -> bool:
    if d.profile.hooks:
        row = ctx.store.worker(d.worker.id)
        if row is not None and row.hook_at is not None:
            return True
    if d.profile.ready_pattern:
        return _tail_matches(screen, d.profile.ready_pattern)
    return bool(screen.strip()) and not d.profile.hooks


FIRST_START_AFTER = 3.0  # seconds after its start before a first-start screen counts (it may still be drawing)


def _first_start(ctx: Ctx, d: Delivery) -> str | None:
    """The agent shows its first-start setup, which no prompt gets past: what to tell the person (or None)."""
    kind = agents.agent(d.profile.kind)
    if type(kind).first_start is Agent.first_start:  # this agent has no first start orch knows
        return None
    now = time.monotonic()
    if now - d.started < FIRST_START_AFTER or now - d.first_start_looked < 1.0:
        return None
    d.first_start_looked = now
    try:
        screen = ctx.mux.capture(d.worker.pane_id, lines=60)
    except MuxError:
        return None
    return kind.first_start(screen)


def deliver(ctx: Ctx, pending: list[Delivery]) -> None:
    """Type each waiting prompt once its agent shows it is ready; all agents are waited for together."""
    from orch.workflow import inbox

    waiting = list(pending)
    delay = 0.02
    while waiting:
        if any(d.profile.hooks for d in waiting):
            inbox.drain(ctx, wait=1)
        still: list[Delivery] = []
        ready: list[Delivery] = []
        try:  # every waiting agent's screen in one call
            screens: dict[str, str] | None = ctx.mux.capture_many([d.worker.pane_id for d in waiting], lines=10)
        except MuxError:
            screens = None
        for d in waiting:
            try:
                screen = screens[d.worker.pane_id] if screens is not None else ctx.mux.capture(d.worker.pane_id,
                                                                                              lines=10)
            except (KeyError, MuxError):
                _undelivered(ctx, d.worker, "its window disappeared", "")
                continue
            if _ready(ctx, d, screen):
                ready.append(d)
            elif (why := _first_start(ctx, d)) is not None:
                _undelivered(ctx, d.worker, why, "")
            elif time.monotonic() - d.started > d.profile.ready_timeout:
                _undelivered(ctx, d.worker, f"the agent did not show it was ready within {d.profile.ready_timeout:g}s", screen)
            else:
                still.append(d)
        if ready:  # typed side by side, and confirmed together
            _type_firsts(ctx, ready)
        waiting = still
        if waiting:
            time.sleep(delay)
            delay = min(delay * 1.5, 0.2)


def pending_prompts(ctx: Ctx, skip: set[str]) -> list[Delivery]:
    """First prompts nobody is typing: workers never prompted (starting, or idle after their start hook), whose start
    was made by a process that stopped before typing (killed, a crash). Passes and commands that start workers hold
    the scan lock, as does the caller, so none is being typed now; ``skip``: the ones this pass started itself."""
    found = []
    for w in ctx.store.live_workers():
        if w.state not in (W.STARTING, W.IDLE) or w.prompted_at is not None or w.id in skip or not w.prompt_file:
            continue
        profile = profile_of(ctx, w.agent)
        if profile is None or profile.prompt != "paste":
            continue
        try:
            with open(w.prompt_file, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            _undelivered(ctx, w, f"its prompt file cannot be read ({exc.strerror or exc})", "")
            continue
        ctx.event("prompt", "its start was interrupted before its prompt was typed: typing it now", task=w.task,
                  worker=w.id)
        found.append(Delivery(w, profile, text, time.monotonic()))
    return found


def mark_working(ctx: Ctx, worker_id: str, profile: AgentProfile | None, why: str, actor: Actor = Actor.PASS) -> None:
    """For an agent whose hooks do not report a prompt being taken (Codex), typing work in is when it starts
    working; its turn-end hook (applied later) makes it idle again."""
    if not worker_id or profile is None or not profile.hooks or profile.prompt_hook:
        return
    row = ctx.store.worker(worker_id)
    if row is not None and row.state in (W.STARTING, W.IDLE, W.WAITING):
        workers.move(ctx, row, W.WORKING, V.PROMPT, actor, why, screen_state="", screen_count=0)


def _type_firsts(ctx: Ctx, ds: list[Delivery]) -> None:
    """First prompts into agents that are ready: every one typed, then all confirmed together (twenty agents
    started at once take about the time of one)."""
    started = time.time()
    for d in ds:
        mark_working(ctx, d.worker.id, d.profile, "prompt typed")
    try:
        failed = type_many(ctx, [(d.worker.pane_id, d.text, d.profile.enter_delay) for d in ds])
    except MuxError as exc:  # (one alone raises)
        failed = {d.worker.pane_id: str(exc) for d in ds}
    faults.point("deliver.typed")
    typed = []
    for d in ds:
        if d.worker.pane_id in failed:
            _undelivered(ctx, d.worker, failed[d.worker.pane_id], "")
        else:
            typed.append(d)
    confirmed = confirm_many(ctx, [(d.worker.id, d.worker.pane_id, d.profile, started) for d in typed
                                   if can_confirm(d.profile)])
    for d in typed:
        screen = confirmed.get(d.worker.pane_id)
        if screen is not None:
            _undelivered(ctx, d.worker, "the agent did not take the prompt (Enter pressed twice)", screen)
            continue
        row = ctx.store.worker(d.worker.id)
        if row is not None and row.state == W.STARTING and not d.profile.hooks:  # it took it; no hook will say so
            workers.move(ctx, row, W.WORKING, V.PROMPT, Actor.PASS, "prompt taken", prompted_at=started)
        else:
            ctx.store.update_worker(d.worker.id, prompted_at=started)
        ctx.event("prompt", f"prompt delivered to {d.worker.pane_id} ({len(d.text)} chars)", task=d.worker.task,
                  worker=d.worker.id)


def _undelivered(ctx: Ctx, worker: Worker, why: str, screen: str) -> None:
    excerpt = " | ".join(line.strip() for line in screen.strip().splitlines()[-4:] if line.strip())
    row = ctx.store.worker(worker.id) or worker
    workers.move(ctx, row, W.WAITING, V.DELIVERY_FAILED, Actor.PASS, why, note=f"delivery failed: {why}")
    ctx.event("prompt", f"delivery failed: {why}; screen: {excerpt}", task=worker.task, worker=worker.id)
    T.record(
        ctx,
        worker.task,
        status=f"delivery failed to the {worker.role}: {why}" + (f"; screen: {excerpt}" if excerpt else ""),
        problem=f"delivery failed to the {worker.role}: {why}",
    )


# -- text typed on orch's own initiative ---------------------------------------------------------------------------


def person_attached(ctx: Ctx, window_id: str) -> bool:
    return any(window == window_id for _, window in ctx.mux.clients())


NOT_A_PROMPT = ("reminder to report", "reminder to give a verdict")


def send_or_queue(ctx: Ctx, pane: Pane, text: str, why: str) -> str:
    """Type ``text`` into a worker unless a person is attached to its window; then queue it. Returns
    "typed", "queued" or "failed"."""
    if person_attached(ctx, pane.window_id):
        ctx.store.queue_text(pane.worker, pane.task, text, why)
        ctx.event("queued", f"{why}: held back, a person is attached to {pane.window_id}", task=pane.task, worker=pane.worker)
        T.record(ctx, pane.task, status=f"{why} for the {pane.role} queued: a person is attached to its window")
        return "queued"
    return type_work(ctx, pane, text, why)


def type_work(ctx: Ctx, pane: Pane, text: str, why: str) -> str:
    """Type and confirm, now; new work (not a reminder) marks the worker as prompted now. Returns "typed" or
    "failed" (reported in the task)."""
    started = time.time()
    profile = profile_of(ctx, pane.agent)
    mark_working(ctx, pane.worker, profile, f"{why} typed")
    failed = type_confirmed(ctx, pane.worker, pane.pane_id, text, profile)
    if failed is not None:
        row = ctx.store.worker(pane.worker)
        if row is not None:
            _undelivered(ctx, row, f"{why} was not taken (Enter pressed twice)", failed)
        return "failed"
    if pane.worker and why not in NOT_A_PROMPT:
        ctx.store.update_worker(pane.worker, prompted_at=started)
    ctx.event("typed", f"{why} typed into {pane.pane_id} ({len(text)} chars)", task=pane.task, worker=pane.worker)
    return "typed"


def flush_outbox(ctx: Ctx, panes: list[Pane]) -> int:
    """Deliver queued texts whose worker's window nobody is attached to any more. Returns how many."""
    queued = ctx.store.queued()
    if not queued:
        return 0
    by_worker = {p.worker: p for p in panes if p.worker and p.pane_role != "shell" and not p.dead}
    watched = {window for _, window in ctx.mux.clients()}
    sent = 0
    for item in queued:
        pane = by_worker.get(item.worker)
        if pane is None or pane.window_id in watched:
            continue
        if type_work(ctx, pane, item.text, item.why) == "typed":
            ctx.store.delivered(item.id)
            T.record(ctx, item.task, status=f"queued {item.why} delivered to the {pane.role}")
            sent += 1
    return sent
