"""The command line itself (``orch.cli.app``): the arguments of each command read from its row in
``cli/commands.py``, every mistake one line with where the help is, and the help from the same rows."""

from __future__ import annotations

import subprocess
import sys

import pytest

from orch.cli.app import Shown, Usage, command_help, parse, top_help
from orch.cli.commands import BY_NAME, COMMANDS
from tests.kit.harness import wait_for


def args(name: str, *words: str) -> dict:
    return parse(BY_NAME[name], list(words))


def test_options_anywhere_values_attached_or_apart_and_flags_together() -> None:
    assert args("status") == {"task": None, "as_json": False, "show_all": False, "watch": False}
    assert args("status", "--json", "t", "-aw") == {"task": "t", "as_json": True, "show_all": True, "watch": True}
    assert args("log", "-n5")["limit"] == 5 and args("log", "-n", "7", "t") == {"task": "t", "limit": 7,
                                                                               "follow": False}
    assert args("capture", "--lines=3", "w")["lines"] == 3
    assert args("add", "--slug", "x", "fix", "the", "bug", "--hold") == {
        "text": ["fix", "the", "bug"], "slug": "x", "agent": None, "edit": False, "hold": True}
    assert args("add", "-")["text"] == ["-"]


def test_after_a_double_dash_every_word_is_an_argument() -> None:
    got = args("exec", "t", "--timeout", "30", "--", "make", "-j", "2", "--keep-going")
    assert got == {"timeout": 30.0, "pane": None, "worker": "t", "command": ["make", "-j", "2", "--keep-going"]}
    assert args("send", "t", "--", "--not-an-option", "-1")["text"] == ["--not-an-option", "-1"]
    assert args("send", "t", "-1")["text"] == ["-1"]  # a negative number is a word


@pytest.mark.parametrize(("words", "said"), [
    (("capture", "-n", "0", "w"), "-n must be at least 1"),
    (("log", "-n", "x"), "-n needs a whole number, not 'x'"),
    (("log", "-n"), "-n needs a value"),
    (("exec", "--timeout", "nan", "w"), "--timeout needs a finite number"),
    (("status", "--bogus"), "no such option: --bogus"),
    (("status", "-z"), "no such option: -z"),
    (("status", "--json=yes"), "--json takes no value"),
    (("diff",), "TASK is missing"),
    (("capture", "a", "b"), "unexpected argument: b"),
    (("retry", "t", "--rounds", "--json"), "--rounds needs a value"),
])
def test_each_mistake_is_one_usage_line(words: tuple[str, ...], said: str) -> None:
    with pytest.raises(Usage, match=f"^{said}"):
        args(*words)


def test_help_of_every_command_names_its_arguments_and_options(capsys: pytest.CaptureFixture[str]) -> None:
    for cmd in COMMANDS:
        text = command_help(cmd)
        assert text.startswith(f"usage: orch {cmd.name}")
        for arg in cmd.args:
            assert (arg.metavar if arg.positional else arg.names[0]) in text, (cmd.name, arg.names)
        if not cmd.raw:
            with pytest.raises(Shown):
                parse(cmd, ["--help"])
            assert capsys.readouterr().out == text
    shown = top_help()
    assert all(f"  {c.name} " in shown for c in COMMANDS if not c.hidden) and "_tasks" not in shown


def test_the_command_line_as_a_person_meets_it() -> None:
    def orch(*words: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "orch", *words], capture_output=True, text=True, check=False)

    for words, code, err in ((("nosuch",), 2, "orch: no such command 'nosuch' (see `orch --help`)\n"),
                             (("status", "--bogus"), 2, "orch: no such option: --bogus (see `orch status --help`)\n"),
                             (("--bogus",), 2, "orch: no such option: --bogus (see `orch --help`)\n"),
                             (("-C",), 2, "orch: -C needs a PATH (see `orch --help`)\n")):
        proc = orch(*words)
        assert (proc.returncode, proc.stderr, proc.stdout) == (code, err, "")
    for words in ((), ("--help",), ("-h",)):
        proc = orch(*words)
        assert proc.returncode == 0 and proc.stdout.startswith("Usage: orch") and not proc.stderr
    proc = orch("status", "--help")
    assert proc.returncode == 0 and proc.stdout.startswith("usage: orch status")


def test_a_person_s_command_loads_no_parser_library_or_framework() -> None:
    probe = ("import sys\nfrom orch.cli.app import parse\nfrom orch.cli.commands import BY_NAME\n"
             "parse(BY_NAME['log'], ['-n', '5'])\n"
             "print(sorted(m for m in ('argparse', 'click', 'typer', 'rich', 'pydantic', 'textwrap') "
             "if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


HEAVY = ("subprocess", "dataclasses", "inspect", "typing", "yaml", "argparse", "logging", "tomllib", "hashlib",
         "shutil", "threading", "pydantic", "typer", "rich")


@pytest.mark.tmux
def test_the_commands_a_person_types_load_only_what_they_use(ws) -> None:  # noqa: ANN001 - the harness Workspace
    """`orch status`, `orch scan` with nothing to do, `orch capture`, `orch log` and `orch send` (to a shell pane)
    on a workspace with a live worker: none loads a module whose start-up cost is out of proportion (they stay
    within 4x `python -c pass`; `make bench` measures it)."""
    from tests.kit.harness import scripted_task

    ws.task("quick", scripted_task("say ready", "wait"))
    ws.scan()
    wait_for(lambda: "ready" in ws.screen("quick"), what="the worker")
    ws.orch("exec", "quick", "--", "true")  # its shell pane
    ws.orch("status")  # the config parsed once, the sandbox probed once: later commands reuse both
    for words in (["status"], ["scan"], ["capture", "quick"], ["log", "-n", "20"],
                  ["send", "quick:coder.1", "# a note"]):
        probe = ("import sys\nfrom orch.entry import main\n"
                 f"code = main({words!r})\n"
                 f"print('LOADED', code, sorted(m for m in {HEAVY!r} if m in sys.modules))\n")
        proc = subprocess.run([sys.executable, "-c", probe], cwd=ws.root, env=ws.env, capture_output=True,
                              text=True, check=False)
        said = [line for line in proc.stdout.splitlines() if line.startswith("LOADED")]
        assert said == ["LOADED 0 []"], (words, proc.stdout[-500:], proc.stderr[-500:])


@pytest.mark.tmux
def test_readings_started_ahead_are_read_again_when_orch_changed_the_server(ws) -> None:  # noqa: ANN001
    """A pass starts the pane listing and the screens before it reads its files (``Ctx.prefetch``); when orch
    changes the server in between, the listing and the screens are taken anew, never the stale ones."""
    import os

    from orch.workflow.context import Ctx
    from orch.workspace import Workspace
    from tests.kit.harness import scripted_task

    ws.task("ahead", scripted_task("say first screen", "wait"))
    ws.scan()
    wait_for(lambda: "first screen" in ws.screen("ahead"), what="the worker")
    os.environ["ORCH_TMUX_SOCKET"] = ws.env["ORCH_TMUX_SOCKET"]
    try:
        ctx = Ctx(Workspace(str(ws.root)))
        (pane,) = [p for p in ctx.listing().panes if p.task == "ahead" and p.is_agent]
        ctx.prefetch([pane.pane_id], 15)
        assert "first screen" in ctx.screens([pane.pane_id], 15)[pane.pane_id]  # nothing changed: the early ones
        ctx.prefetch([pane.pane_id], 15)
        ctx.mux.send_keys(pane.pane_id, "Enter")  # orch changed the server: both readings are stale
        ctx.mux.new_window(pane.session_id, "extra", str(ws.root), {}, ["sleep", "30"])
        assert any(p.window_name == "extra" for p in ctx.listing().all)
        assert pane.pane_id in ctx.screens([pane.pane_id], 15)
        ctx.prefetch([pane.pane_id], 15)
        ctx.close()  # unused readings are ended with the context (no zombie, no descriptor left)
        assert ctx._early is None and ctx._early_screens is None
    finally:
        os.environ.pop("ORCH_TMUX_SOCKET", None)
