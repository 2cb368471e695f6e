"""`orch`'s command line: the global options, the help, one command's arguments parsed and its function run, and
every expected failure as one line on stderr.

The commands are data (``commands.py``). Only the parser of the command that runs is built, and only its module is
imported: `orch status` loads what status needs and nothing else, so the commands a person types answer at once.
The arguments are read here too (a few rules, below), not by a parser library that would cost more to load than
most commands take to run.
"""

from __future__ import annotations

import os
import sys

from orch.cli.commands import BY_NAME, COMMANDS, GROUPS, Arg, Cmd
from orch.entry import private_umask
from orch.errors import OrchError

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
    except Shown:
        return 0
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
    module, attr = cmd.run.split(":")
    __import__(module)
    return getattr(sys.modules[module], attr)


class Shown(Exception):
    """A command's help was printed (on ``-h``/``--help``)."""


def parse(cmd: Cmd, args: list[str]) -> dict[str, object]:
    """The command's arguments as keyword arguments of its function (``Usage`` when they are wrong). Options may
    come anywhere before ``--``; after it every word is an argument; ``-n5``, ``--lines=5`` and ``-aw`` work."""
    found: dict[str, object] = {a.dest: (False if a.takes == "flag" else [] if a.takes == "words" else a.default)
                                for a in cmd.args}
    by_name = {n: a for a in cmd.args if not a.positional for n in a.names}
    words: list[str] = []
    rest = list(args)
    while rest:
        word = rest.pop(0)
        if word == "--":
            words += rest
            break
        if word in ("-h", "--help"):
            sys.stdout.write(command_help(cmd))
            raise Shown
        if not word.startswith("-") or word == "-" or word[1:2].isdigit():
            words.append(word)
            continue
        if word.startswith("--"):
            name, eq, value = word.partition("=")
            arg = by_name.get(name)
            if arg is None:
                raise Usage(f"no such option: {name}")
            if arg.takes == "flag":
                if eq:
                    raise Usage(f"{name} takes no value")
                found[arg.dest] = True
                continue
            found[arg.dest] = _value(arg, name, value if eq else _next(rest, name))
            continue
        letters = word[1:]
        while letters:  # -aw: flags together; -n5 or -n 5: a value
            name, letters = "-" + letters[0], letters[1:]
            arg = by_name.get(name)
            if arg is None:
                raise Usage(f"no such option: {name}")
            if arg.takes == "flag":
                found[arg.dest] = True
                continue
            found[arg.dest] = _value(arg, name, letters or _next(rest, name))
            letters = ""
    for arg in (a for a in cmd.args if a.positional):
        if arg.takes == "words":
            found[arg.dest], words = words, []
        elif words:
            found[arg.dest] = _value(arg, arg.metavar, words.pop(0))
        elif arg.required:
            raise Usage(f"{arg.metavar} is missing")
    if words:
        raise Usage(f"unexpected argument{'s' if len(words) > 1 else ''}: {' '.join(words)}")
    return found


def _next(rest: list[str], name: str) -> str:
    if not rest or (rest[0].startswith("-") and rest[0] != "-" and not rest[0][1:2].isdigit()):
        raise Usage(f"{name} needs a value")
    return rest.pop(0)


def _value(arg: Arg, name: str, text: str) -> object:
    if arg.takes not in ("int", "float"):
        return text
    try:
        value: float = int(text) if arg.takes == "int" else float(text)
    except ValueError:
        raise Usage(f"{name} needs {'a whole number' if arg.takes == 'int' else 'a number'}, not {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise Usage(f"{name} needs a finite number, not {text!r}")
    if arg.least is not None and value < arg.least:
        raise Usage(f"{name} must be at least {arg.least:g}")
    return value


def command_help(cmd: Cmd) -> str:
    """`orch CMD --help`: its usage line, what it does, its arguments and options."""
    import textwrap

    from orch.cli.render import width as columns

    wide = min(max(columns(), 60), 110)
    shown = [a for a in cmd.args if not a.positional]
    usage = ["orch", cmd.name, *(f"[{a.names[0]}{' ' + a.metavar if a.takes != 'flag' else ''}]" for a in shown)]
    for a in cmd.args:
        if a.positional:
            name = a.metavar + ("..." if a.takes == "words" else "")
            usage.append(name if a.required else f"[{name}]")
    out = [textwrap.fill(" ".join(usage), wide, initial_indent="usage: ", subsequent_indent="    "), "",
           textwrap.fill(cmd.help, wide)]
    rows = [(a.metavar + ("..." if a.takes == "words" else ""), a.help) for a in cmd.args if a.positional]
    opts = [(", ".join(sorted(a.names, key=len)) + (f" {a.metavar}" if a.takes != "flag" else ""),
             a.help + (f" (default: {a.default:g})" if a.takes in ("int", "float") and a.default is not None else ""))
            for a in shown] + [("-h, --help", "Show this help and exit.")]
    left = max(len(n) for n, _ in rows + opts) + 4
    for title, items in (("arguments:", rows), ("options:", opts)):
        if items:
            out += ["", title]
            for name, text in items:
                body = textwrap.wrap(text, max(wide - left, 30))
                out.append(f"  {name:<{left - 2}}{body[0] if body else ''}")
                out += [" " * left + line for line in body[1:]]
    return "\n".join(out) + "\n"


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
