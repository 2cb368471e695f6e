"""Every command of `orch`, as data: its name, group, help, arguments and the function that runs it.

The help (`orch --help`, `orch CMD --help`), the parser of a command's arguments (built for that command alone,
when it runs) and the shell completion are all read from this table. A command's function lives in the module
named by ``run`` and is imported only when the command runs: a person's command loads what it uses, nothing more.
"""

from __future__ import annotations


class Arg:
    """A positional argument (``Arg("task", ...)``) or an option (``Arg("--slug", "-s", ...)``).

    ``takes``: ``str``, ``int``, ``float``, ``flag`` (an option without a value), ``words`` (any number of words;
    after ``--`` words that start with ``-`` too)."""

    __slots__ = ("default", "dest", "help", "takes", "least", "metavar", "names", "required")

    def __init__(self, *names: str, help: str, takes: str = "str", default: object = None, dest: str = "",
                 metavar: str = "", required: bool = False, least: float | None = None) -> None:
        self.names, self.help, self.takes, self.default = names, help, takes, default
        self.dest = dest or names[0].lstrip("-").replace("-", "_")
        self.metavar = metavar or (self.dest.upper().replace("_", "-") if takes != "flag" else "")
        self.required, self.least = required, least

    @property
    def positional(self) -> bool:
        return not self.names[0].startswith("-")


class Cmd:
    __slots__ = ("args", "group", "help", "hidden", "name", "raw", "run", "summary")

    def __init__(self, name: str, group: str, summary: str, run: str, *args: Arg, more: str = "",
                 hidden: bool = False, raw: bool = False) -> None:
        self.name, self.group, self.summary, self.run, self.args = name, group, summary, run, args
        self.help = summary + (" " + more if more else "")
        self.hidden, self.raw = hidden, raw  # raw: the arguments go to the function as they are (its own parsing)


WORKER = "Worker address: <task> (its coder), <task>:<role>, or <task>:<role>.<n> for pane n of that window."
PANE = "Explicit tmux pane id (e.g. %3) instead of a worker address; then give no worker."
MESSAGE = ("Record a message for a task: `orch - \"task-<slug>: <text>\"` (inside a worker the task is known). "
           "Recognised: needs input: <q> | blocked: <why> | done: <summary> | worktree <path> | PR created <url>.")
SLUG_OR_FILE = "A task name, or a task file to add and start."
AS_JSON = Arg("--json", dest="as_json", takes="flag", help="Print the documented JSON shape.")

TASKS, WORKERS, DAEMON, AGENTS, SHELL = "Tasks", "Workers", "The daemon", "Commands agents call", "Your shell"
HOSTS = "Many hosts"
GROUPS = (TASKS, WORKERS, DAEMON, HOSTS, AGENTS, SHELL)

COMMANDS = (
    Cmd("init", TASKS, "Prepare the git repository for orch: .orch/ with config, task folder, database; git excludes.",
        "orch.cli.tasks:init",
        Arg("path", help="A folder inside the git repository to prepare.", default=".")),
    Cmd("add", TASKS, "Write a new task file in the task folder (queued; the daemon, or `orch scan`, starts it).",
        "orch.cli.tasks:add",
        Arg("text", takes="words", help="What the task is about (the task file's text); - reads it from standard "
                                       "input."),
        Arg("--slug", "-s", help="The task's name (default: derived from the text)."),
        Arg("--agent", "-a", help="Agent profile for this task (default: default_agent)."),
        Arg("--edit", "-e", takes="flag", help="Write it in your editor ($EDITOR), from a template with the sections "
                                              "orch recognises."),
        Arg("--hold", takes="flag", help="Keep it queued until `orch start TASK` (hold: true).")),
    Cmd("start", TASKS, "Start the coder of one task now, held or not (touches no other task).",
        "orch.cli.tasks:start", Arg("task", metavar="SLUG|FILE", help=SLUG_OR_FILE, required=True)),
    Cmd("new-task", TASKS, "The same as `orch start` (its older name).",
        "orch.cli.tasks:start", Arg("task", metavar="SLUG|FILE", help=SLUG_OR_FILE, required=True)),
    Cmd("scan", TASKS, "One reconcile pass: apply messages, start queued tasks, find lost workers and orphan windows.",
        "orch.cli.tasks:scan", Arg("--json", dest="as_json", takes="flag", help="Print the report as JSON.")),
    Cmd("status", TASKS, "Every task with its state and workers, plus orphan windows and invalid task files; or one "
                         "task in full.",
        "orch.cli.status:status",
        Arg("task", help="One task: everything about it (default: every task)."),
        AS_JSON,
        Arg("--all", "-a", dest="show_all", takes="flag", help="Closed tasks too."),
        Arg("--watch", "-w", takes="flag", help="Show it again every 2 seconds, until Ctrl-C.")),
    Cmd("check", TASKS, "The task-checker's report on one task: its worker's activity, its branch against the base, "
                        "its pull request (checks, reviews, threads, mergeability) and the next action.",
        "orch.cli.status:check",
        Arg("task", help="The task.", required=True),
        AS_JSON),
    Cmd("conflicts", TASKS, "The conflict radar: which open task branches conflict with each other or with the base, "
                            "and in which paths (a merge in memory: no worktree, nothing written).",
        "orch.cli.status:conflicts",
        AS_JSON),
    Cmd("land", TASKS, "Land ready tasks as one merge train: built on the base, validated at its tip, the base moved "
                       "to exactly that sha (never forced); without tasks, what is ready to land.",
        "orch.cli.tasks:land",
        Arg("tasks", takes="words", help="The tasks to land, in order."),
        Arg("--dry-run", "-n", dest="dry_run", takes="flag", help="Print the plan and the predicted result; change "
                                                                   "nothing.")),
    Cmd("dash", TASKS, "The terminal dashboard: tasks grouped by what they need from you, the selected task's live "
                       "screen, diff, dossier, log, PR and conflicts; reply, send, retry, recover, attach, close, land.",
        "orch.cli.status:dash"),
    Cmd("web", TASKS, "The dashboard as a web page on loopback: the board grouped by what each task needs from you, "
                      "a page per task with its live screen, replies; kept current by the server.",
        "orch.cli.status:web",
        Arg("--host", help="Address to listen on (default 127.0.0.1: this machine only).", default="127.0.0.1"),
        Arg("--port", "-p", takes="int", least=0, default=0, help="Port (default: a free one).")),
    Cmd("diff", TASKS, "What the task's branch changes against its base (from their merge base, as a merge would "
                       "see it).",
        "orch.cli.tasks:diff",
        Arg("task", help="The task.", required=True),
        Arg("--stat", takes="flag", help="Only the files changed and how much."),
        Arg("--round", "-r", dest="round_no", takes="int", least=1, metavar="N",
            help="As of that review round's commit."),
        Arg("--since-round", dest="since", takes="int", least=1, metavar="N",
            help="How its commits changed since that round (git range-diff).")),
    Cmd("dossier", TASKS, "Print a task's merge-ready dossier (written when its branch is approved and validated).",
        "orch.cli.tasks:dossier",
        Arg("task", help="The task.", required=True),
        Arg("--json", dest="as_json", takes="flag", help="The dossier's JSON.")),
    Cmd("retry", TASKS, "Move a blocked task on (a new round for its coder with the open blockers, more rounds "
                        "allowed), or have a ready one validated and reviewed again (its base moved on).",
        "orch.cli.tasks:retry",
        Arg("task", required=True, help="A blocked task (back to its coder) or a ready one (validated and reviewed "
                                        "again)."),
        Arg("--rounds", "-r", takes="int", least=1, metavar="N",
            help="Rounds it may take from now (default: max_review_rounds).")),
    Cmd("close", TASKS, "Close a task (only when you say so): save screens, kill its session, remove its worktree, "
                        "file it in done/.",
        "orch.cli.tasks:close",
        Arg("task", help="The task to close.", required=True),
        Arg("--force", takes="flag", help="Remove the worktree even with uncommitted changes."),
        Arg("--delete-branch", takes="flag", help="Also delete the task's branch.")),
    Cmd("log", TASKS, "The event log, newest last.", "orch.cli.status:log",
        Arg("task", help="Only this task's events."),
        Arg("-n", dest="limit", takes="int", default=50, least=1, metavar="N", help="How many events."),
        Arg("--follow", "-f", takes="flag", help="Keep printing new events as they happen (Ctrl-C ends).")),
    Cmd("send", WORKERS, "Type text into a worker's agent (bracketed paste from a named buffer, then Enter).",
        "orch.cli.route:send",
        Arg("worker", help=WORKER),
        Arg("text", takes="words", help="The text (default: read from stdin)."),
        Arg("--pane", help=PANE)),
    Cmd("reply", WORKERS, "Answer a coder's `needs input` question: typed into the coder, and the task resumes.",
        "orch.cli.route:reply",
        Arg("task", help="The task whose coder asked a question.", required=True),
        Arg("text", takes="words", help="Your answer (default: read from stdin).")),
    Cmd("exec", WORKERS, "Run a command in the shell pane of a worker's window (never typed into the agent); exit "
                         "with its code.",
        "orch.cli.route:exec_",
        Arg("--timeout", "-t", takes="float", default=600.0, least=0, metavar="SECONDS",
            help="Seconds before the command is stopped (exit 124); 0 = none."),
        Arg("--pane", help=PANE),
        Arg("worker", help=WORKER),
        Arg("command", takes="words", help="The command and its arguments, after --.")),
    Cmd("capture", WORKERS, "Print the last lines of a worker's agent pane.", "orch.cli.route:capture",
        Arg("worker", help=WORKER),
        Arg("-n", "--lines", dest="lines", takes="int", default=40, least=1, metavar="N", help="How many lines."),
        Arg("--color", dest="colour", takes="flag",
            help="With the screen's colours and styles (nothing else a terminal acts on)."),
        Arg("--pane", help=PANE)),
    Cmd("attach", WORKERS, "Show a worker's window: attach to orch's tmux server (or switch to it when already "
                           "inside).",
        "orch.cli.route:attach", Arg("worker", help=WORKER), Arg("--pane", help=PANE)),
    Cmd("recover", WORKERS, "Start again the lost workers of tasks in progress, in their worktrees, resuming the "
                            "agents' sessions where they can.",
        "orch.cli.daemon:recover", Arg("task", help="Only this task (default: every task in progress).")),
    Cmd("gc", WORKERS, "List what is stale (orphan windows, dead panes, worktrees with no task, task branches merged "
                       "into the base); remove it with --yes.",
        "orch.cli.daemon:gc", Arg("--yes", "-y", takes="flag", help="Remove what is listed (default: only list it)."),
        more="Work that is not merged or not committed is never removed."),
    Cmd("run", DAEMON, "The orchestrator daemon: acts on new or edited task files and on messages as they arrive.",
        "orch.cli.daemon:run",
        Arg("--detach", "-d", takes="flag", help="Run in the background; output in .orch/logs/daemon.log."),
        Arg("--once", takes="flag", help="One reconcile pass and exit (the same as `orch scan`)."),
        more="It passes every scan_interval seconds, and ends on SIGTERM/SIGINT leaving the workers running."),
    Cmd("stop", DAEMON, "End the workspace's daemon (SIGTERM; it finishes the pass in hand). Workers keep running.",
        "orch.cli.daemon:stop"),
    Cmd("host", HOSTS, "Run workers for a cluster on this machine: a clone of the repository, its own tmux server "
                       "and daemon, and a Temporal worker that takes the tasks placed here.",
        "orch.cli.cluster:host",
        Arg("--address", help="The Temporal server (host:port).", required=True),
        Arg("--name", help="This host's name in the cluster (default: the machine's name)."),
        Arg("--remote", help="The repository's git URL (needed the first time, to clone it)."),
        Arg("--dir", dest="folder", metavar="PATH", default="~/.orch-host",
            help="Where the host keeps its clone and state (default: ~/.orch-host)."),
        Arg("--labels", help="Comma-separated labels tasks may need (front matter `needs:`), e.g. gpu,big."),
        Arg("--max-workers", takes="int", default=4, least=1, help="Tasks this host runs at once."),
        Arg("--ssh", help="How a person reaches this machine (user@machine), for `orch attach` from the workspace."),
        Arg("--namespace", default="default", help="The Temporal namespace (default: default)."),
        Arg("--cluster", default="orch", help="The cluster's name, as in the workspace's [cluster] name."),
        Arg("--beat", takes="float", default=5.0, least=0.2, metavar="SECONDS",
            help="Seconds between two heartbeats to the registry."),
        Arg("--tls-ca", help="mTLS: the server's CA certificate (PEM)."),
        Arg("--tls-cert", help="mTLS: this host's certificate (PEM)."),
        Arg("--tls-key", help="mTLS: this host's private key (PEM)."),
        Arg("--tls-server-name", help="mTLS: the server name its certificate carries."),
        Arg("--api-key-env", default="ORCH_CLUSTER_API_KEY",
            help="The environment variable holding an API key (Temporal Cloud)."),
        more="It runs until SIGTERM; its workers keep running. A host that stops heartbeating for [cluster] heartbeat "
             "seconds loses its tasks to other hosts."),
    Cmd("hosts", HOSTS, "The cluster's hosts: labels, tasks placed on each against its places, live workers, last "
                        "heartbeat.",
        "orch.cli.cluster:hosts", AS_JSON),
    Cmd("-", AGENTS, MESSAGE + " Same as `orch message`.", "orch.hot:message", raw=True),
    Cmd("message", AGENTS, MESSAGE, "orch.hot:message", raw=True),
    Cmd("verdict", AGENTS, "The reviewer's answer: `orch verdict approve|request-changes [--task SLUG]`, findings on "
                           "stdin, one per line: <blocker|major|minor|note>: [path[:line]] <text>. Bound to the sha "
                           "under review.", "orch.hot:verdict", raw=True),
    Cmd("hook", AGENTS, "Called by an agent's hooks: `orch hook <event> [payload]` (payload JSON on stdin or as the "
                        "last argument). Updates the worker's state; always exits 0 and never blocks the agent.",
        "orch.hot:hook", raw=True),
    Cmd("completion", SHELL, "Print a completion script for your shell (commands, options, task names): e.g. eval "
                             "\"$(orch completion bash)\".",
        "orch.cli.completion:completion", Arg("shell", help="bash, zsh or fish.", required=True)),
    Cmd("_round", TASKS, "Many hosts, on a host: a round the task's workspace sends (its fix request on stdin; "
                         "none: validated and reviewed again).",
        "orch.cli.tasks:workspace_round", Arg("task", required=True, help="The task."),
        Arg("--round", dest="round_no", takes="int", default=0, least=0, metavar="N", help="The round's number."),
        hidden=True),
    Cmd("_tasks", SHELL, "The open tasks' names and their reviewers' addresses, one a line (for completion).",
        "orch.cli.completion:tasks", hidden=True),
)

BY_NAME = {c.name: c for c in COMMANDS}
