"""The typer application and its error handling: every expected failure is one line on stderr."""

from __future__ import annotations

import os
import sys

import typer

# typer 0.29 (pinned in pyproject.toml) carries its own copy of click
from typer._click import exceptions as cx

from orch.entry import private_umask
from orch.errors import OrchError

# typer >= 0.2x has its own Exit/Abort; older ones re-export click's
EXITS = tuple({getattr(cx, "Exit", typer.Exit), typer.Exit})
ABORTS = tuple({getattr(cx, "Abort", typer.Abort), typer.Abort, KeyboardInterrupt})

app = typer.Typer(
    name="orch",
    help="Run a queue of coding tasks through AI coding agents: one git worktree and one tmux window per worker.",
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class _State:
    explicit: str | None = None
    opened: list = []  # the contexts this command opened (closed when it ends)


STATE = _State()


@app.callback()
def _main(
    workspace: str | None = typer.Option(
        None, "-C", "--workspace", metavar="PATH", help="Use the workspace at PATH (default: $ORCH_WORKSPACE, else walk up from here)."
    ),
    version: bool = typer.Option(False, "--version", "-V", help="Print orch's version and exit."),
) -> None:
    STATE.explicit = workspace


def version() -> str:
    import platform

    import orch

    return f"orch {orch.__version__} (Python {platform.python_version()})"


def context():
    """The workflow context for this command (workspace found, config loaded)."""
    from orch.workflow.context import Ctx
    from orch.workspace import find

    ctx = Ctx(find(explicit=STATE.explicit))
    STATE.opened.append(ctx)
    return ctx


def _register() -> None:
    from orch.cli import completion, daemon, messages, route, tasks  # noqa: F401 - commands register on import


def run(args: list[str]) -> int:
    private_umask()
    if args and args[0] in ("--version", "-V"):
        print(version())
        return 0
    _register()
    try:
        return _run(args)
    finally:
        while STATE.opened:
            STATE.opened.pop().close()


GROUPS = (
    ("Tasks", ("init", "add", "start", "new-task", "scan", "status", "diff", "dossier", "retry", "close", "log")),
    ("Workers", ("send", "reply", "exec", "capture", "attach", "recover", "gc")),
    ("The daemon", ("run", "stop")),
    ("Commands agents call", ("-", "message", "verdict", "hook")),
    ("Your shell", ("completion",)),
)


def command():
    """The click command of the app, with help as a person reads it: metavars in words (not Python types) and the
    commands in groups."""
    import types

    import typer.main

    group = typer.main.get_command(app)
    for sub in group.commands.values():  # type: ignore[attr-defined]
        for param in sub.params:
            if param.metavar is None and not getattr(param, "is_flag", False) and param.name:
                param.metavar = param.name.upper().replace("_", "-")
            param.get_help_record = types.MethodType(_plain_help_record(param.get_help_record), param)

    def format_commands(self, ctx, formatter) -> None:  # noqa: ANN001 - click's own signature
        listed: set[str] = set()
        for title, names in GROUPS:
            rows = [(n, self.commands[n].get_short_help_str(limit=62)) for n in names if n in self.commands]
            listed.update(names)
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)
        rest = [(n, c.get_short_help_str(limit=62)) for n, c in self.commands.items()
                if n not in listed and not c.hidden]
        if rest:
            with formatter.section("Commands"):
                formatter.write_dl(rest)

    group.format_commands = types.MethodType(format_commands, group)  # type: ignore[attr-defined]
    return group


def _plain_help_record(original):  # noqa: ANN001, ANN202 - wraps click's bound method
    """A parameter's help line without the Python type typer puts after it (``<list[str]>``)."""
    import re

    def record(self, ctx):  # noqa: ANN001, ANN202
        found = original(ctx)
        if found is None:
            return None
        name, text = found
        return re.sub(r" <[^<>]*>$", "", name), text

    return record


def _run(args: list[str]) -> int:
    try:
        result = command().main(args=args, prog_name="orch", standalone_mode=False)
    except OrchError as exc:
        sys.stderr.write(f"orch: {exc}\n")
        return exc.code
    except cx.NoArgsIsHelpError as exc:
        sys.stdout.write(exc.ctx.get_help() + "\n") if exc.ctx else None
        return 0
    except cx.ClickException as exc:
        ctx = getattr(exc, "ctx", None)
        path = ctx.command_path if ctx is not None else ""
        where = f"orch {path.split(' ', 1)[1]}" if " " in path else "orch"
        sys.stderr.write(f"orch: {exc.format_message()} (see `{where} --help`)\n")
        return exc.exit_code
    except EXITS as exc:
        return exc.exit_code
    except ABORTS:
        sys.stderr.write("orch: interrupted\n")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug: one line, and the traceback on request
        if os.environ.get("ORCH_DEBUG"):
            raise
        sys.stderr.write(f"orch: unexpected error ({type(exc).__name__}: {exc}); run with ORCH_DEBUG=1 for details\n")
        return 70
    return result if isinstance(result, int) else 0
