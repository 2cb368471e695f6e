"""`orch`'s command line: the global options, the help, one command's arguments parsed and its function run, and
every expected failure as one line on stderr.

The commands are data (``commands.py``). Only the parser of the command that runs is built, and only its module is
imported: `orch status` loads what status needs and nothing else, so the commands a person types answer at once.
"""

from __future__ import annotations

import os
import sys

from orch.cli.commands import BY_NAME, COMMANDS, GROUPS, Cmd
from orch.entry import private_umask
from orch.errors import OrchError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ABOUT = "Run a queue of coding tasks through AI coding agents: one git worktree and one tmux window per worker."
GLOBAL = (
    ("-C, --workspace PATH", "Use the workspace at PATH (default: $ORCH_WORKSPACE, else walk up from here)."),
    ("-V, --version", "Print orch's version and exit."),
    ("-h, --help", "Show this message and exit."),
)


class Usage(Exception):
    """The command line is wrong: one line, and where the help is."""


class _State:
    explicit: str | None = None
    opened: list = []  # the contexts this command opened (closed when it ends)


STATE = _State()


def version() -> str:
    import platform

    import orch

    return f"orch {orch.__version__} (Python {platform.python_version()})"


def context():  # noqa: ANN201 - a workflow Ctx (its module is imported here, not at start)
    """The workflow context for this command (workspace found, config loaded)."""
    from orch.workflow.context import Ctx
    from orch.workspace import find

    ctx = Ctx(find(explicit=STATE.explicit))
    STATE.opened.append(ctx)
    return ctx


def run(args: list[str]) -> int:
    private_umask()
    try:
        return _run(list(args))
    finally:
        while STATE.opened:
            STATE.opened.pop().close()


def _run(args: list[str]) -> int:
    name = ""
    try:
        while args and args[0].startswith("-") and args[0] != "-":
            head = args.pop(0)
            if head in ("-V", "--version"):
                sys.stdout.write(version() + "\n")
                return 0
            if head in ("-h", "--help"):
                sys.stdout.write(top_help())
                return 0
            if head in ("-C", "--workspace"):
                if not args:
                    raise Usage(f"{head} needs a PATH")
                STATE.explicit = args.pop(0)
            elif head.startswith(("-C=", "--workspace=")):
                STATE.explicit = head.split("=", 1)[1]
            else:
                raise Usage(f"no such option: {head}")
        if not args:
            sys.stdout.write(top_help())
            return 0
        name = args.pop(0)
        cmd = BY_NAME.get(name)
        if cmd is None:
            raise Usage(f"no such command {name!r}")
        function = _function(cmd)
        if cmd.raw:
            return int(function(args, STATE.explicit))
        result = function(**parse(cmd, args))
        return result if isinstance(result, int) else 0
    except OrchError as exc:
        sys.stderr.write(f"orch: {exc}\n")
        return exc.code
    except Usage as exc:
        where = f"orch {name} --help" if name in BY_NAME else "orch --help"
        sys.stderr.write(f"orch: {exc} (see `{where}`)\n")
        return 2
    except SystemExit as exc:  # the help of a command was printed
        return exc.code if isinstance(exc.code, int) else 0
    except KeyboardInterrupt:
        sys.stderr.write("orch: interrupted\n")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug: one line, and the traceback on request
        if os.environ.get("ORCH_DEBUG"):
            raise
        sys.stderr.write(f"orch: unexpected error ({type(exc).__name__}: {exc}); run with ORCH_DEBUG=1 for details\n")
        return 70


def _function(cmd: Cmd):  # noqa: ANN202 - the command's function, whatever its signature
    import importlib

    module, attr = cmd.run.split(":")
    return getattr(importlib.import_module(module), attr)


def parse(cmd: Cmd, args: list[str]) -> dict[str, object]:
    """The command's arguments as keyword arguments of its function (``Usage`` when they are wrong)."""
    parser = _parser(cmd)
    found = vars(parser.parse_args(args))
    for arg in cmd.args:
        value = found.get(arg.dest)
        if arg.least is not None and value is not None and value < arg.least:
            raise Usage(f"{'/'.join(arg.names) if not arg.positional else arg.metavar} must be at least "
                        f"{arg.least:g}")
    return found


def _parser(cmd: Cmd):  # noqa: ANN202 - an argparse parser for this command alone
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message: str):  # noqa: ANN202 - argparse's signature
            raise Usage(message)

    parser = Parser(prog=f"orch {cmd.name}", description=cmd.help, allow_abbrev=False)
    for arg in cmd.args:
        options: dict[str, Any] = {"help": arg.help.replace("%", "%%")}
        if arg.kind == "flag":
            options.update(action="store_true")
        else:
            options.update(metavar=arg.metavar, default=arg.default)
            if arg.kind in ("int", "float"):
                options["type"] = int if arg.kind == "int" else float
        if arg.positional:
            if arg.kind == "words":
                options["nargs"] = "*"
            elif not arg.required:
                options["nargs"] = "?"
            parser.add_argument(arg.dest, **options)
        else:
            parser.add_argument(*arg.names, dest=arg.dest, **options)
    return parser


def top_help() -> str:
    out = ["Usage: orch [OPTIONS] COMMAND [ARGS]...", "", f"  {ABOUT}", "", "Options:"]
    width = max(len(n) for n, _ in GLOBAL) + 2
    out += [f"  {n:<{width}}{h}" for n, h in GLOBAL]
    shown = [c for c in COMMANDS if not c.hidden]
    width = max(len(c.name) for c in shown) + 2
    from orch.cli.render import width as columns

    limit = min(max(columns() - width - 3, 40), 110)
    for group in GROUPS:
        out += ["", f"{group}:"]
        out += [f"  {c.name:<{width}}{short(c.summary, limit)}" for c in shown if c.group == group]
    out += ["", "`orch COMMAND --help` for a command's arguments; the README is the manual."]
    return "\n".join(out) + "\n"


def short(text: str, limit: int = 62) -> str:
    """The first sentence of a command's help, cut to ``limit`` characters at a word."""
    first = text.split(". ", 1)[0].rstrip(".")
    if len(first) <= limit:
        return first
    return first[: limit - 3].rsplit(" ", 1)[0] + "..."


def options(cmd: Cmd) -> list[str]:
    """A command's option names (for completion)."""
    return sorted(n for a in cmd.args if not a.positional for n in a.names)
