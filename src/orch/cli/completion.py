"""`orch completion bash|zsh|fish`: a completion script for your shell, from the commands as they are. Commands and
their options complete from the script itself; task names (and worker addresses) from `orch _tasks`, which lists
the open tasks without loading the configuration's checks or tmux."""

from __future__ import annotations

import os
import sys

from orch.cli.app import context, options
from orch.cli.commands import COMMANDS
from orch.errors import OrchError

SHELLS = ("bash", "zsh", "fish")
TASK_COMMANDS = ("status", "start", "new-task", "retry", "reply", "send", "exec", "capture", "attach", "close",
                 "dossier", "diff", "log", "recover")


def _commands() -> dict[str, list[str]]:
    """Every visible command and its options."""
    return {c.name: options(c) for c in sorted(COMMANDS, key=lambda c: c.name) if not c.hidden}


def bash() -> str:
    commands = _commands()
    cases = "\n".join(f'        {name}) opts="{" ".join(opts)}" ;;' for name, opts in commands.items())
    tasks = "|".join(TASK_COMMANDS)
    return f'''# orch completion for bash: eval "$(orch completion bash)" in ~/.bashrc
_orch() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" opts=""
    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W "{" ".join(commands)} --help --version -C" -- "$cur"))
        return
    fi
    case "${{COMP_WORDS[1]}}" in
{cases}
    esac
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$opts --help" -- "$cur"))
        return
    fi
    case "${{COMP_WORDS[1]}}" in
        {tasks}) COMPREPLY=($(compgen -W "$(orch _tasks 2>/dev/null)" -- "$cur")) ;;
    esac
}}
complete -o default -F _orch orch
'''


def zsh() -> str:
    return ("# orch completion for zsh: eval \"$(orch completion zsh)\" in ~/.zshrc\n"
            "autoload -U +X compinit && compinit\nautoload -U +X bashcompinit && bashcompinit\n" + bash())


def fish() -> str:
    commands = _commands()
    lines = ["# orch completion for fish: orch completion fish > ~/.config/fish/completions/orch.fish",
             "complete -c orch -f"]
    for name in commands:
        lines.append(f"complete -c orch -n __fish_use_subcommand -a {name}")
    for name, opts in commands.items():
        for opt in opts:
            flag = f"-l {opt[2:]}" if opt.startswith("--") else f"-s {opt[1:]}"
            lines.append(f"complete -c orch -n '__fish_seen_subcommand_from {name}' {flag}")
    lines.append(f"complete -c orch -n '__fish_seen_subcommand_from {' '.join(TASK_COMMANDS)}' -a '(orch _tasks)'")
    return "\n".join(lines) + "\n"


def completion(shell: str) -> None:
    makers = {"bash": bash, "zsh": zsh, "fish": fish}
    if shell not in makers:
        raise OrchError(f"no completion for {shell!r}: choose one of {', '.join(SHELLS)}")
    sys.stdout.write(makers[shell]())


def tasks() -> None:
    """The open tasks' names and their reviewers' addresses, one a line (for completion)."""
    ctx = context()
    try:
        names = sorted(n[:-3] for n in os.listdir(ctx.cfg.tasks_path) if n.endswith(".md"))
    except OSError:
        return
    sys.stdout.write("".join(f"{n}\n{n}:reviewer\n" for n in names))
