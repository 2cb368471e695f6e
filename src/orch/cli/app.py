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


def _run(args: list[str]) -> int:
    try:
        result = app(args=args, prog_name="orch", standalone_mode=False)
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
