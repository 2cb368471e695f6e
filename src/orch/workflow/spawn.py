"""Starting workers: worktree, tmux window with orch's tags, registry row, and the prompt."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping

from orch import agents, faults, git, launcher
from orch.agents.base import LaunchRequest
from orch.agents.profile import AgentProfile
from orch.errors import OrchError
from orch.lifecycle import Actor, Move, way_on
from orch.lifecycle import WorkerEvent as V
from orch.lifecycle import WorkerState as W
from orch.mux import MuxError, Pane
from orch.store import Worker
from orch.workflow import prompts, sandboxing, validate, workers
from orch.workflow import tasks as T
from orch.workflow.context import Ctx
from orch.workflow.deliver import Delivery
from orch.workflow.intent import parse as parse_intent

MAX_ARG_PROMPT = 120_000  # Linux refuses a single argument over 128 KiB


def session_name(slug: str) -> str:
    # tmux turns '.' and ':' in session names into '_'; do it ourselves so the name we record is the real one
    return "task-" + slug.replace(".", "_")


def free_session_name(slug: str, root: str, taken: set[str]) -> str:
    """``task-<slug>``; when another workspace on the same server has that name, ``task-<slug>@<repository>``
    (then numbered): a person reading `tmux ls` sees whose it is. Routing never goes by names."""
    name = session_name(slug)
    if name not in taken:
        return name
    repo = "".join(c if c.isalnum() or c in "-_" else "_" for c in os.path.basename(root)) or "repo"
    name = f"{session_name(slug)}@{repo}"
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}-{n}", n + 1
    return candidate


def resolve_base(ctx: Ctx, task: T.Task | None) -> str:
    base = (task.base if task is not None else "") or ctx.cfg.base or git.current_branch(ctx.ws.root)
    if not base:
        raise OrchError("the repository is on a detached HEAD: set `base` in .orch/config.toml or the task's front matter")
    return base


def worker_path(ctx: Ctx) -> str:
    """The PATH workers get: yours, with orch's launcher and this Python first."""
    path = os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")
    for folder in (os.path.dirname(sys.executable), launcher.ensure(ctx.ws.state)):
        if folder not in path.split(os.pathsep):
            path = folder + os.pathsep + path
    return path


def preflight(ctx: Ctx, agent: str, profile: AgentProfile, role: str) -> None:
    """The agent's program is there, before anything is made for it (a worktree, a window): one line otherwise."""
    program = profile.command[0] if profile.command else ""
    if not program:
        raise OrchError(f"agent {agent!r} has no command: set command = [...] under [agents.{agent}] in config.toml")
    if ctx.mux.which(program, worker_path(ctx)) is None:
        how = agents.agent(profile.kind).install
        raise OrchError(f"agent {agent!r} runs {program!r}, which is not on PATH; "
                        + (f"install it ({how}) or " if how else "install it or ")
                        + f"set command = [...] under [agents.{agent}] in .orch/config.toml")


def worker_env(ctx: Ctx, worker: Worker, prompt_file: str, spool: str = "") -> dict[str, str]:
    """The worker's environment. In the sandbox (``spool``): its spool, and no token and no tmux socket (what it
    writes to its spool is its identity; it cannot reach tmux). Without it: the tmux socket; its token, which says
    which worker it is, reaches it through a file (``with_token``), never through tmux."""
    path = worker_path(ctx)
    env = {
        "ORCH_WORKSPACE": ctx.ws.root,
        "ORCH_TASK": worker.task,
        "ORCH_ROLE": worker.role,
        "ORCH_WORKER": worker.id,
        "ORCH_WORKTREE": worker.worktree,
        "ORCH_BRANCH": worker.branch,
        "ORCH_PROMPT_FILE": prompt_file,
        "PATH": path,
    }
    if spool:
        env["ORCH_SPOOL"] = spool
    else:
        env["ORCH_TMUX_SOCKET"] = ctx.cfg.socket
    return env


def with_token(ctx: Ctx, worker: Worker, token: str, argv: list[str]) -> list[str]:
    """``argv`` started with the worker's token in its environment, read from a file of yours alone that is removed
    at once (orch/withtoken.py): not on a command line, not in tmux's environment."""
    folder = ctx.ws.path("tokens")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    path = os.path.join(folder, worker.id.replace(":", "~"))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(token + "\n")
    return [sys.executable, "-m", "orch.withtoken", path, "--", *argv]


def _task_session(panes: list[Pane], slug: str) -> Pane | None:
    """A session of this workspace that already holds a window of the task (``panes``: this workspace's)."""
    for pane in panes:
        if pane.task == slug and pane.session_name.startswith("task-"):
            return pane
    return None


def agent_for(ctx: Ctx, task: T.Task, role: str) -> str:
    if role == "reviewer" and ctx.cfg.reviewer_agent:
        return ctx.cfg.reviewer_agent
    return task.agent or ctx.cfg.default_agent


def start_worker(
    ctx: Ctx,
    task: T.Task,
    role: str = "coder",
    panes: list[Pane] | None = None,
    text: str | None = None,
    round_no: int = 1,
    resume: str = "",
    move: Move | None = None,
    summary: Mapping[str, str | None] | None = None,
) -> Delivery | None:
    """Start one worker for ``task``; returns the prompt still to be typed (paste profiles) or None.

    The coder's prompt (the intent packet) is built here; other roles are given theirs in ``text``. ``resume``: the
    agent session of a lost worker to continue (for the agents that can). ``move``: the task's move that starting
    its coder makes (queued -> coding); when the lifecycle refuses it, the new window is closed again and the start
    fails with the refusal. ``summary``: more summary fields written with the coder's start (and its move).
    """
    cfg = ctx.cfg
    bwrap, confined = sandboxing.decide(ctx)  # with sandbox = "required" and no bubblewrap: nothing is made
    agent = agent_for(ctx, task, role)
    profile = cfg.profile(agent)
    preflight(ctx, agent, profile, role)
    base = resolve_base(ctx, task)
    branch = cfg.branch_prefix + task.slug
    if not git.check_branch_name(ctx.ws.root, branch):
        raise OrchError(f"{branch!r} is not a valid branch name: change branch_prefix in .orch/config.toml")
    worktree = os.path.join(cfg.worktree_path, task.slug)
    how = git.add_worktree(ctx.ws.root, worktree, branch, base)
    if how in (git.CREATED, git.ATTACHED):  # what orch made is what `gc` and `close` may remove, and nothing else
        ctx.store.add_made("worktree", os.path.realpath(worktree), task.slug)
    if how == git.CREATED:
        ctx.store.add_made("branch", branch, task.slug)

    if text is None:
        intent = parse_intent(task.body)
        commands, source = validate.commands_for(ctx, intent)
        text = prompts.coder_prompt(task.slug, intent, worktree, branch, base, commands, source, round_no,
                                    prompts.orch_command(ctx))
    prompt_file = prompts.save(ctx, task.slug, role, text, round_no)
    import hashlib
    import secrets

    token = secrets.token_urlsafe(24)
    now = time.time()
    worker = Worker(
        id=f"{task.slug}:{role}:{secrets.token_hex(3)}",
        task=task.slug,
        role=role,
        agent=agent,
        state="starting",
        state_since=now,
        created_at=now,
        worktree=worktree,
        branch=branch,
        token_hash=hashlib.sha256(token.encode()).hexdigest(),
        prompt_file=prompt_file,
        workspace=ctx.ws.id,
        sandbox="bubblewrap" if bwrap else confined,
    )
    if not profile.command:
        raise OrchError(f"agent {agent!r} has no command: set command = [...] under [agents.{agent}] in config.toml")
    argv = list(profile.command)
    spool = sandboxing.spool_of(ctx, worker.id) if bwrap else ""
    if spool:
        os.makedirs(spool, mode=0o700, exist_ok=True)
    kind = agents.agent(profile.kind)
    req = LaunchRequest(
        profile, role, ctx.ws.state, os.path.join(launcher.ensure(ctx.ws.state), "orch"), worktree,
        git.git_dirs(worktree), {**os.environ, **profile.env}, worker_id=worker.id, resume=resume, spool=spool,
    )
    launch = kind.launch(req)
    worker.agent_session = launch.session
    argv += launch.args
    if role == "reviewer":
        argv += profile.readonly_args
    if profile.prompt == "arg":
        if len(text.encode()) > MAX_ARG_PROMPT:
            raise OrchError(f"the prompt for {task.slug} is too long to pass as an argument; use prompt = \"file\" or \"paste\"")
        argv.append(text)
    env = {**profile.env, **launch.env, **worker_env(ctx, worker, prompt_file, spool)}
    if bwrap:
        argv = sandboxing.confine(ctx, req, kind, argv, bwrap, branch)
    else:
        argv = with_token(ctx, worker, token, argv)

    # the registry row exists before the agent can speak, so its first message is recognised
    ctx.store.add_worker(worker)
    faults.point("spawn.registered")
    mux = ctx.mux
    existing = _task_session(panes if panes is not None else ctx.panes(), task.slug)
    try:
        if existing is not None:
            created = mux.new_window(existing.session_id, role, worktree, env, argv)
            sname = existing.session_name
        else:
            sname = free_session_name(task.slug, ctx.ws.root, mux.session_names())
            created = mux.new_session(sname, role, worktree, env, argv)
            mux.tag_session(created.session_id, {"workspace": ctx.ws.id, "task": task.slug})
        tags = {"workspace": ctx.ws.id, "task": task.slug, "role": role, "worker": worker.id, "agent": agent,
                "token_hash": worker.token_hash}
        mux.tag_window(created.window_id, {**tags, "proof": ctx.proof(created.window_id, tags)})
    except (MuxError, OSError) as exc:
        workers.move(ctx, worker, W.LOST, V.LOST, Actor.PASS, "its window could not be created", ended_at=time.time())
        raise OrchError(f"the {role}'s window could not be made: {exc}") from None

    worker.session_name, worker.session_id = sname, created.session_id
    worker.window_id, worker.pane_id, worker.pane_pid = created.window_id, created.pane_id, created.pane_pid
    ctx.store.update_worker(worker.id, session_name=sname, session_id=created.session_id, window_id=created.window_id,
                            pane_id=created.pane_id, pane_pid=created.pane_pid, tmux_server=created.server)
    if profile.prompt != "paste":  # the prompt is its argument (or its file): it works from the start
        workers.move(ctx, worker, W.WORKING, V.PROMPT, Actor.PASS, f"prompt given as {profile.prompt}")
    ctx.event("spawn", f"{role} started ({agent}) in window {created.window_id}; {how}", task=task.slug, worker=worker.id)
    faults.point("spawn.window")
    if role == "coder":  # the review loop records its reviewers itself
        status = f"coder started: agent {agent}, window {created.window_id} in session {sname}, branch {branch}"
        meta = {"session": sname, "worktree": worktree, "branch": branch}
        fields: dict[str, str | None] = {"agent": f"{agent} (window {created.window_id}, pane {created.pane_id})",
                                         "waiting_for": None, "problem": None, **(summary or {})}
        if move is None:
            T.record(ctx, task.slug, status=status, meta=meta, summary=fields)
        elif not T.move(ctx, task.slug, move.to, move.event, move.actor, status=status, meta=meta, summary=fields):
            mux.kill_window(created.window_id)
            workers.move(ctx, worker, W.LOST, V.LOST, Actor.PASS, "its task moved on while it started",
                         ended_at=time.time())
            task_now = T.get(ctx, task.slug)
            raise OrchError(f"task {task.slug!r} is {task_now.state}: its coder was not started "
                            f"({way_on(task_now.state, task.slug)})")
    if profile.prompt == "paste":
        return Delivery(worker, profile, text, time.monotonic())
    return None
