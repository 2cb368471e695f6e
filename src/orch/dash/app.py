"""`orch dash`: the terminal dashboard (Textual), usable over SSH at 80x24 and by keyboard alone.

Left, the tasks grouped by what they need from the person (the status model's groups, most urgent first), each with
its state, where that state came from and how old it is. Right, the selected task: its worker's live screen, its
diff, its dossier, its status log, its pull request and conflicts. Actions go through the same workflow functions
as the CLI: reply, send, retry, recover, attach (the dashboard steps aside for the tmux window), close and land
(the exact plan first; a head that moved since the review is refused). A task that starts to need the person rings
the terminal's bell and says so in a line.
"""

from __future__ import annotations

import asyncio
import json
import os
import time

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Input, OptionList, Static, TabbedContent, TabPane
from textual.widgets.option_list import Option

from orch.errors import OrchError
from orch.workflow.model import GROUPS, Reader, headline
from orch.workspace import Workspace

NEEDS = ("needs-input", "delivery-failed", "blocked")
SCREEN_EVERY = 0.3  # seconds between two readings of the screen shown, while its worker works
SCREEN_IDLE = 1.5  # the same while it is idle or waiting (its screen seldom moves)


class Dash(App):
    """The dashboard of one workspace."""

    TITLE = "orch dash"
    CSS = """
    #tasks { width: 44%; min-width: 30; }
    #right { width: 1fr; }
    #ask { dock: bottom; display: none; }
    #ask.shown { display: block; }
    #said { height: 1; color: $warning; }
    """
    BINDINGS = [
        Binding("r", "ask('reply')", "reply"), Binding("s", "ask('send')", "send"),
        Binding("t", "retry", "retry"), Binding("v", "recover", "recover"), Binding("a", "attach", "attach"),
        Binding("c", "close_task", "close"), Binding("l", "land", "land"), Binding("q", "quit", "quit"),
        Binding("1", "pane('screen')", "screen", show=False), Binding("2", "pane('diff')", "diff", show=False),
        Binding("3", "pane('dossier')", "dossier", show=False), Binding("4", "pane('log')", "log", show=False),
        Binding("5", "pane('checks')", "PR & conflicts", show=False),
        Binding("escape", "cancel", "cancel", show=False),
    ]

    def __init__(self, ws: Workspace) -> None:
        super().__init__()
        self.ws = ws
        self.reader = Reader(ws)
        self.model: dict = {}
        self.selected: str | None = None
        self.asking = ""
        self.armed = ""  # an action that waits for its key again (close, land)
        self.needing: set[str] = set()
        self._screen_text = ""
        self._shown: dict[str, str] = {}

    # -- layout and data -------------------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield OptionList(id="tasks")
            with Vertical(id="right"):
                with TabbedContent(id="panes", initial="screen"):
                    for name in ("screen", "diff", "dossier", "log", "checks"):
                        with TabPane(name, id=name):
                            yield Static("", id=f"{name}-text", markup=False)
                yield Static("", id="said", markup=False)
        yield Input(id="ask")
        yield Footer()

    async def on_mount(self) -> None:
        self.query_one("#tasks", OptionList).focus()
        self.run_worker(self._watch_model(), exclusive=False)
        self.run_worker(self._watch_screen(), exclusive=False)
        self.set_interval(1.0, self._ages)

    async def _watch_model(self) -> None:
        from textual.css.query import NoMatches

        from orch.workflow.model import follow

        def changed(text: str) -> None:
            self.model = json.loads(text)
            try:
                self._show_tasks()
            except NoMatches:  # a model read as the app ends: its screen is gone already
                pass

        await follow(self.reader, changed)

    def _show_tasks(self) -> None:
        options = self.query_one("#tasks", OptionList)
        now = time.time()
        tasks = self.model.get("tasks", [])
        keep = self.selected
        options.clear_options()
        for name, title in GROUPS:
            members = [t for t in tasks if t["group"] == name]
            if not members:
                continue
            options.add_option(Option(f"-- {title} ({len(members)}) --", id=f"group:{name}", disabled=True))
            for t in members:
                self._shown[t["slug"]] = self._line(t, now)
                options.add_option(Option(self._shown[t["slug"]], id=t["slug"]))
        if keep is not None:
            try:
                options.highlighted = options.get_option_index(keep)
            except Exception:  # noqa: BLE001 - (the task went away)
                self.selected = None
        if self.selected is None and tasks:
            self.selected = tasks[0]["slug"]
            options.highlighted = options.get_option_index(self.selected)
        self._notify_needs(tasks)
        self._show_task()

    def _line(self, t: dict, now: float) -> str:
        return f"{t['slug'][:22]:<22} {headline(t, now)}"

    def _ages(self) -> None:
        """The ages move on (only the lines whose words changed are drawn again)."""
        options = self.query_one("#tasks", OptionList)
        now = time.time()
        for t in self.model.get("tasks", []):
            line = self._line(t, now)
            if self._shown.get(t["slug"]) == line:
                continue
            try:
                options.replace_option_prompt(t["slug"], line)
                self._shown[t["slug"]] = line
            except Exception:  # noqa: BLE001 - (rebuilt meanwhile)
                pass

    def _notify_needs(self, tasks: list[dict]) -> None:
        now = {t["slug"] for t in tasks if t["group"] in NEEDS}
        fresh = sorted(now - self.needing)
        self.needing = now
        if fresh:
            self.bell()
            self.notify(f"needs you: {', '.join(fresh)}", timeout=8)

    def current(self) -> dict | None:
        return next((t for t in self.model.get("tasks", []) if t["slug"] == self.selected), None)

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id and not event.option.id.startswith("group:") and event.option.id != self.selected:
            self.selected = event.option.id
            self._screen_text = ""
            self._show_task()

    def _show_task(self) -> None:
        t = self.current()
        if t is None:
            return
        e = t["evidence"]
        log = self.query_one("#log-text", Static)
        if not self.armed.startswith("land:"):  # (the plan of a landing stays until it is done or cancelled)
            log.update("\n".join([f"{t['slug']}: {t['state']} ({headline(t, time.time())})",
                                  f"next: {t['next'] or '-'}", *t["summary"], "", t["last_status"] or ""]))
        checks = []
        if e.get("pull_request"):
            p = e["pull_request"]
            checks.append(f"PR #{p['number']} {p['state'].lower()} {p['url']}: checks {p['checks']}, "
                          f"{p['threads_open']} open thread(s), review {p['review_decision'] or '-'}")
        if e.get("conflicts"):
            c = e["conflicts"]
            checks += [f"conflicts with the base: {', '.join(c['with_base'])}"] if c["with_base"] else []
            checks += [f"conflicts with {o}: {', '.join(ps)}" for o, ps in c["with"].items()]
        self.query_one("#checks-text", Static).update("\n".join(checks) or "no pull request, no conflicts")
        self.run_worker(self._load_files(t["slug"]), exclusive=True, group="files")

    async def _load_files(self, slug: str) -> None:
        from rich.text import Text

        t = self.current()
        rounds = int((t or {}).get("evidence", {}).get("round") or 1) if t else 1

        def read() -> tuple[str, str]:
            from orch.workflow.context import Ctx
            from orch.workflow.diff import show

            ctx = Ctx(self.ws)
            try:
                try:
                    diff = show(ctx, slug, color=True)
                    if rounds > 1:  # and how the branch changed since the round before
                        diff += f"\n--- since round {rounds - 1} (git range-diff) ---\n"
                        diff += show(ctx, slug, since=rounds - 1, color=True)
                except OrchError as exc:
                    diff = f"({exc})"
                path = ctx.ws.path("dossiers", f"{slug}.md")
                dossier = open(path, encoding="utf-8").read() if os.path.exists(path) else "(no dossier yet)"
                return diff or "(no change against the base yet)", dossier
            finally:
                ctx.close()

        diff, dossier = await asyncio.to_thread(read)
        if slug == self.selected:
            self.query_one("#diff-text", Static).update(Text.from_ansi(diff))
            self.query_one("#dossier-text", Static).update(dossier)

    async def _watch_screen(self) -> None:
        from rich.text import Text

        while True:
            slug = self.selected
            if slug is not None and self.query_one("#panes", TabbedContent).active == "screen":
                text = await asyncio.to_thread(self._capture, slug, self._pane_of(slug))
                if text != self._screen_text and slug == self.selected:
                    self._screen_text = text
                    self.query_one("#screen-text", Static).update(Text.from_ansi(text))
            t = self.current()
            busy = t is not None and any(w["state"] in ("working", "starting") for w in t["workers"])
            await asyncio.sleep(SCREEN_EVERY if busy else SCREEN_IDLE)

    def _pane_of(self, slug: str) -> str:
        """The pane of the task's coder, as the model says (no lookup of its own)."""
        t = next((t for t in self.model.get("tasks", []) if t["slug"] == slug), None)
        coder = next((w for w in (t or {}).get("workers", []) if w["role"] == "coder" and w.get("pane_id")), None)
        return coder["pane_id"] if coder else ""

    def _capture(self, slug: str, pane_id: str) -> str:
        from orch.mux import MuxError

        try:
            if not pane_id:  # no window here: a task on a host has its screen read there (many hosts)
                hosted = self._hosted_screen(slug)
                return hosted if hosted is not None else f"({slug} has no worker window)"
            return self._mux().capture(pane_id, max(self.size.height - 4, 10), styled=True)
        except (MuxError, OrchError) as exc:
            return f"({exc})"

    def _hosted_screen(self, slug: str) -> str | None:
        from orch.workflow import remote
        from orch.workflow.context import Ctx

        ctx = Ctx(self.ws)
        try:
            return remote.screen(ctx, slug, max(self.size.height - 4, 10))
        finally:
            ctx.close()

    def _mux(self):  # noqa: ANN202 - the workspace's tmux server, made once
        if not hasattr(self, "_tmux"):
            from orch.config import load
            from orch.mux.tmux import Tmux

            self._tmux = Tmux(os.environ.get("ORCH_TMUX_SOCKET") or load(self.ws).tmux.socket)
        return self._tmux

    # -- actions (the CLI's workflow functions) --------------------------------------------------------------------

    def say(self, text: str) -> None:
        self.query_one("#said", Static).update(text)

    def action_pane(self, name: str) -> None:
        self.query_one("#panes", TabbedContent).active = name

    def action_ask(self, what: str) -> None:
        if self.selected is None:
            return
        self.asking = what
        box = self.query_one("#ask", Input)
        box.placeholder = f"{what} to {self.selected} (Enter sends, Escape cancels)"
        box.value = ""
        box.add_class("shown")
        box.focus()

    def action_cancel(self) -> None:
        self.asking = self.armed = ""
        self.query_one("#ask", Input).remove_class("shown")
        self.query_one("#tasks", OptionList).focus()
        self.say("")

    async def on_input_submitted(self, event: Input.Submitted) -> None:
        what, slug, text = self.asking, self.selected, event.value
        self.action_cancel()
        if not slug or not text.strip():
            return

        def act(ctx) -> str:  # noqa: ANN001
            from orch.workflow import route

            if ctx.cfg.cluster.address:  # a task on a host: its host's orch types it (many hosts)
                from orch.workflow import remote

                said = remote.on_host(ctx, slug, [what, slug, "--", text])
                if said is not None:
                    return f"{what}: {said}"
            target = (route.reply if what == "reply" else route.send)(ctx, slug, text)
            return f"{what}: typed into {target.address}"

        await self._do(act)

    async def _do(self, act) -> None:  # noqa: ANN001 - a function of a Ctx, run in a thread
        def run() -> str:
            from orch.workflow.context import Ctx

            ctx = Ctx(self.ws)
            try:
                return act(ctx)
            except OrchError as exc:
                return f"refused: {exc}"
            finally:
                ctx.close()

        self.say(await asyncio.to_thread(run))

    async def action_retry(self) -> None:
        slug = self.selected
        if slug:
            from orch.workflow.restart import retry

            def act(ctx) -> str:  # noqa: ANN001
                if ctx.cfg.cluster.address:  # a task in its host's hands: retried there (many hosts)
                    from orch.workflow import remote

                    said = remote.on_host(ctx, slug, ["retry", slug], running=True)
                    if said is not None:
                        return f"retried {slug}: {said}"
                return f"retried {slug}: {retry(ctx, slug).state}"

            await self._do(act)

    async def action_recover(self) -> None:
        slug = self.selected
        if slug:
            from orch.workflow.recover import recover

            await self._do(lambda ctx: "; ".join(recover(ctx, slug)) or f"{slug}: nothing to recover")

    async def action_close_task(self) -> None:
        slug = self.selected
        if not slug:
            return
        if self.armed != f"close:{slug}":
            self.armed = f"close:{slug}"
            self.say(f"close {slug}: its windows end, its worktree goes; press c again to close it, Escape not to")
            return
        self.armed = ""
        from orch.workflow.close import close

        await self._do(lambda ctx: f"closed {close(ctx, slug).slug}")

    async def action_land(self) -> None:
        slug = self.selected
        if not slug:
            return
        from orch.workflow import land

        if self.armed != f"land:{slug}":
            plan = await asyncio.to_thread(self._plan, slug)
            self.query_one("#log-text", Static).update("\n".join(plan))
            self.action_pane("log")
            if plan and plan[0].startswith("train "):
                self.armed = f"land:{slug}"
                self.say(f"land {slug}: the plan is in the log pane; press l again to land it, Escape not to")
            else:
                self.say(plan[0] if plan else "")
            return
        self.armed = ""
        await self._do(lambda ctx: " | ".join(land.land(ctx, [slug])[:2]))

    def _plan(self, slug: str) -> list[str]:
        from orch.workflow import land
        from orch.workflow.context import Ctx

        ctx = Ctx(self.ws)
        try:
            return land.land(ctx, [slug], dry_run=True)
        except OrchError as exc:
            return [f"refused: {exc}"]
        finally:
            ctx.close()

    def action_attach(self) -> None:
        t = self.current()
        if t is None:
            return
        coder = next((w for w in t["workers"] if w["role"] == "coder" and w.get("window_id")), None)
        if coder is None:
            self.say(f"{t['slug']} has no window to attach to")
            return
        with self.suspend():  # the dashboard steps aside; detaching (C-b d) comes back here
            try:
                self._mux().attach(coder["window_id"], wait=True)
            except OrchError as exc:
                self.say(str(exc))
