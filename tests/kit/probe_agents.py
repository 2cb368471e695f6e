#!/usr/bin/env python3
"""Probe real coding agents (Claude Code, Codex) against the scripted ModelServer in private tmux servers.

Not a pytest test: a standalone script that prints a PASS/FAIL report with timings. For each agent it

1. creates a throwaway git repository and a throwaway HOME whose agent config pre-answers every first-start
   dialog (see AGENTS-NOTES.md),
2. starts a ModelServer with a script (write a file, git commit, run a marker command, end the turn),
3. starts the agent interactively in ``tmux -L probe-<agent>-<pid>`` and waits for its ready screen,
4. pastes a multi-line prompt (``load-buffer`` + ``paste-buffer -p -r -d`` + ``send-keys Enter``),
5. waits until the script is used up and the agent is idle again, then checks the file, the commit, the
   marker, and the agent's own turn-end signal (Claude: Stop hook; Codex: notify),
6. optionally (``--paste-trials N``) pastes N more multi-line prompts, each followed by an immediate Enter,
   and counts how many arrived as one message each,
7. optionally (``--reviewer``) starts the agent in its read-only mode (Claude ``--permission-mode plan``,
   Codex ``--sandbox read-only``) and reports which of write / shell / commit / marker went through.

Usage::

    python tests/kit/probe_agents.py --claude /tmp/agents/node_modules/.bin/claude \\
        --codex /tmp/agents/node_modules/.bin/codex [--reviewer] [--paste-trials 5] [--keep] [-v]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from model_server import ModelServer  # noqa: E402

DUMMY_ANTHROPIC_KEY = "sk-ant-api03-orch-probe-dummy-key-0000000000"
DUMMY_OPENAI_KEY = "sk-orch-probe-dummy"

# screen patterns (see AGENTS-NOTES.md)
CLAUDE_READY = re.compile(r"^❯(?:[ \u00a0]|$)", re.M)  # the prompt is "❯" + NO-BREAK SPACE
CLAUDE_WORKING = re.compile(r"esc to interrupt")
CLAUDE_DIALOG = re.compile(r"Do you trust|Choose the text style|Do you want to use this API key|"
                           r"Bypass Permissions mode|Unable to connect|Do you want to (proceed|make this edit|create)")
CODEX_READY = re.compile(r"^› ", re.M)  # "›" + space, also while text is typed
CODEX_WORKING = re.compile(r"esc to interrupt")
CODEX_DIALOG = re.compile(r"Trust this folder|Sign in with ChatGPT|Would you like to run|Allow command")


# ---- setup helpers (reusable by tests) ----------------------------------------------------------------------


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git = ["git", "-C", str(path)]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "config", "user.email", "probe@example.com"], check=True)
    subprocess.run([*git, "config", "user.name", "Probe"], check=True)
    (path / "README.md").write_text("probe repo\n")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    return path


def claude_home(home: Path, trusted: list[Path], api_key: str = DUMMY_ANTHROPIC_KEY,
                idle_notify_ms: int | None = None) -> dict[str, str]:
    """Write ~/.claude.json and ~/.claude/settings.json so Claude Code starts with no dialog."""
    home.mkdir(parents=True, exist_ok=True)
    config: dict[str, object] = {
        "hasCompletedOnboarding": True,            # skips theme picker, preflight (api.anthropic.com), security notes
        "lastOnboardingVersion": "2.1.328",
        "theme": "dark",
        "customApiKeyResponses": {"approved": [api_key.strip()[-20:]], "rejected": []},  # "use this API key?"
        "bypassPermissionsModeAccepted": True,
        "autoUpdates": False,
        "projects": {str(p): {"hasTrustDialogAccepted": True} for p in trusted},  # folder trust
    }
    if idle_notify_ms is not None:
        config["messageIdleNotifThresholdMs"] = idle_notify_ms
    (home / ".claude.json").write_text(json.dumps(config, indent=1))
    (home / ".claude").mkdir(exist_ok=True)
    (home / ".claude" / "settings.json").write_text(json.dumps({"skipDangerousModePermissionPrompt": True}))
    return {"ANTHROPIC_API_KEY": api_key}


def claude_hook_settings(path: Path, log: Path) -> Path:
    """A --settings file whose hooks append their stdin JSON (one line) to ``log``."""
    hooks = {}
    for event in ("SessionStart", "UserPromptSubmit", "Stop", "SubagentStop", "Notification", "SessionEnd"):
        command = f"{shlex.quote(sys.executable)} -c {shlex.quote(_HOOK_PY)} {event} {shlex.quote(str(log))}"
        hooks[event] = [{"hooks": [{"type": "command", "command": command}]}]
    path.write_text(json.dumps({"hooks": hooks}, indent=1))
    return path


_HOOK_PY = (
    "import json,sys\n"
    "data=sys.stdin.read()\n"
    "try: payload=json.loads(data)\n"
    "except ValueError: payload=data\n"
    "open(sys.argv[2],'a').write(json.dumps({'event':sys.argv[1],'payload':payload})+'\\n')\n"
)

_NOTIFY_PY = (
    "import json,sys\n"
    "open(sys.argv[1],'a').write(json.dumps({'argv':sys.argv[2:]})+'\\n')\n"
)


def codex_home(home: Path, trusted: list[Path], base_url: str, notify_log: Path | None = None) -> dict[str, str]:
    """Write ~/.codex/config.toml: a 'mock' Responses provider at ``base_url``, trusted folders, notify."""
    cfg = home / ".codex"
    cfg.mkdir(parents=True, exist_ok=True)
    lines = ['model = "mock-model"', 'model_provider = "mock"']
    if notify_log is not None:
        lines.append("notify = " + json.dumps([sys.executable, "-c", _NOTIFY_PY, str(notify_log)]))
    lines += [
        "",
        "[model_providers.mock]",
        'name = "mock"',
        f'base_url = "{base_url}/v1"',
        'env_key = "ORCH_MOCK_API_KEY"',
        'wire_api = "responses"',
        "",
        "[tui]",
        "screen_reader_detection_done = true",
    ]
    for path in trusted:
        lines += ["", f'[projects."{path}"]', 'trust_level = "trusted"']
    (cfg / "config.toml").write_text("\n".join(lines) + "\n")
    return {"ORCH_MOCK_API_KEY": DUMMY_OPENAI_KEY}


# ---- tmux ---------------------------------------------------------------------------------------------------


class Tmux:
    def __init__(self, name: str) -> None:
        self.socket = f"probe-{name}-{os.getpid()}"

    def run(self, *args: str, input: bytes | None = None) -> str:  # noqa: A002
        out = subprocess.run(["tmux", "-L", self.socket, *args], input=input, capture_output=True, check=True)
        return out.stdout.decode("utf-8", "replace")

    def start(self, cwd: Path, argv: list[str], env: dict[str, str]) -> str:
        command = " ".join(shlex.quote(a) for a in ["env", *(f"{k}={v}" for k, v in env.items()), *argv])
        command += "; echo AGENT-EXITED $?; sleep 3600"
        self.run("-f", "/dev/null", "new-session", "-d", "-s", "probe", "-x", "200", "-y", "50", "-c", str(cwd),
                 command)
        return self.run("display-message", "-p", "-t", "probe", "#{pane_id}").strip()

    def screen(self, pane: str) -> str:
        return self.run("capture-pane", "-p", "-t", pane)

    def paste(self, pane: str, text: str, enter_delay: float = 0.0) -> None:
        self.run("load-buffer", "-b", "orchprobe", "-", input=text.encode())
        self.run("paste-buffer", "-p", "-r", "-d", "-b", "orchprobe", "-t", pane)
        if enter_delay:
            time.sleep(enter_delay)
        self.run("send-keys", "-t", pane, "Enter")

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)
        tmpdir = os.environ.get("TMUX_TMPDIR") or "/tmp"
        Path(tmpdir, f"tmux-{os.getuid()}", self.socket).unlink(missing_ok=True)  # kill-server leaves it


def wait_until(check: Callable[[], object], timeout: float, step: float = 0.1) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(step)
    return None


# ---- agents -------------------------------------------------------------------------------------------------


@dataclass
class Agent:
    name: str
    binary: str
    ready: re.Pattern[str]
    working: re.Pattern[str]
    dialog: re.Pattern[str]
    reviewer_mode: str = ""

    def prepare(self, root: Path, repo: Path, srv: ModelServer, reviewer: bool) -> tuple[list[str], dict[str, str],
                                                                                          Path]:
        """Return argv, env, and the path of the agent's turn-end signal log."""
        home = root / "home"
        signal_log = root / "signals.jsonl"
        env = {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TERM": "xterm-256color",
               "LANG": "C.UTF-8"}
        if self.name == "claude":
            env.update(claude_home(home, [repo], idle_notify_ms=5000))
            settings = claude_hook_settings(root / "settings.json", signal_log)
            env.update({"ANTHROPIC_BASE_URL": srv.url, "DISABLE_AUTOUPDATER": "1",
                        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"})
            if os.geteuid() == 0:
                env["IS_SANDBOX"] = "1"  # else: "--dangerously-skip-permissions cannot be used with root"
            mode = self.reviewer_mode if reviewer else "bypassPermissions"
            argv = [self.binary, "--permission-mode", mode, "--session-id", str(uuid.uuid4()),
                    "--settings", str(settings)]
            if reviewer and mode == "dontAsk":
                argv += ["--allowedTools", "Bash(sh -c:*)"]  # stand-in for "Bash(orch:*)"
        else:
            env.update(codex_home(home, [repo], srv.url, notify_log=signal_log))
            # --no-daemon: else Codex starts a shared background app-server (~/.codex/packages/...) that
            # outlives the TUI; -c overrides also force the embedded mode (with a startup warning)
            if reviewer:
                argv = [self.binary, "--no-daemon", "--sandbox", "read-only", "-a", "never"]
            else:
                git_dir = subprocess.run(["git", "-C", str(repo), "rev-parse", "--path-format=absolute",
                                          "--git-common-dir"], capture_output=True, text=True, check=True)
                argv = [self.binary, "--no-daemon", "--sandbox", "workspace-write", "-a", "never",
                        "--add-dir", git_dir.stdout.strip()]
        return argv, env, signal_log

    def idle(self, screen: str) -> bool:
        return bool(self.ready.search(screen)) and not self.working.search(screen)


@dataclass
class Result:
    agent: str
    scenario: str
    checks: dict[str, bool] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(self.checks.values())


PROMPT = ("orch probe task {token}\n"
          "Please write the file, commit it, and report.\n"
          "  - indented line with special chars: $HOME `x` \"q\" 'q' \\ | & ;\n"
          "last line {token}")


def run_agent(agent: Agent, args: argparse.Namespace, reviewer: bool) -> Result:
    scenario = "reviewer" if reviewer else "coder"
    result = Result(agent.name, scenario)
    root = Path(tempfile.mkdtemp(prefix=f"probe-{agent.name}-{scenario}-", dir=args.tmp))
    repo = make_repo(root / "repo")
    marker = root / "marker"
    if reviewer:
        script = [
            {"write": {"path": "review-note.txt", "content": "written by the reviewer\n"}},
            {"bash": "touch bash-ran.txt; echo exit=$?"},
            {"bash": "git commit --allow-empty -qm reviewer-commit; echo exit=$?"},
            {"bash": f"sh -c 'echo done > {marker}'"},
            {"text": "Review finished."},
        ]
    else:
        script = [
            {"write": {"path": "hello.txt", "content": f"hello from {agent.name}\n"}},
            {"bash": "git add hello.txt && git commit -qm 'add hello'"},
            {"bash": f"sh -c 'echo done > {marker}'"},
            {"text": "All done."},
        ]
    tmux = Tmux(f"{agent.name}-{scenario}")
    with ModelServer(script, log_path=root / "requests.jsonl", delay=args.delay) as srv:
        argv, env, signal_log = agent.prepare(root, repo, srv, reviewer)
        result.notes.append("argv: " + " ".join(shlex.quote(a) for a in argv))
        try:
            t0 = time.monotonic()
            pane = tmux.start(repo, argv, env)
            ready = wait_until(lambda: agent.idle(s := tmux.screen(pane)) or agent.dialog.search(s), 60)
            screen = tmux.screen(pane)
            result.checks["no first-start dialog"] = not agent.dialog.search(screen)
            result.checks["ready screen"] = bool(ready) and agent.idle(screen)
            result.timings["ready"] = time.monotonic() - t0
            if not result.checks["ready screen"] or not result.checks["no first-start dialog"]:
                result.notes.append("screen:\n" + _indent(screen))
                return result
            token = uuid.uuid4().hex[:8]
            prompt = PROMPT.format(token=token)
            t1 = time.monotonic()
            tmux.paste(pane, prompt, args.enter_delay)
            wait_until(lambda: any(r["kind"] == "main" and token in r["text"] for r in srv.requests), 30)
            result.timings["prompt received"] = time.monotonic() - t1
            delivered = [r["text"] for r in srv.requests if r["kind"] == "main" and token in r["text"]]
            received = _unwrap_paste(delivered[0]) if delivered else ""
            result.checks["prompt delivered intact"] = received == prompt.strip()
            if delivered and delivered[0].strip() != prompt.strip():
                result.notes.append(f"prompt as received: {delivered[0]!r}")
            working_seen: list[str] = []

            dialogs: list[str] = []

            def finished() -> bool:
                s = tmux.screen(pane)
                if reviewer and agent.dialog.search(s):  # a permission prompt: note it, answer "No"
                    question = [line.strip() for line in s.splitlines() if agent.dialog.search(line)]
                    dialogs.append(question[0] if question else "?")
                    tmux.run("send-keys", "-t", pane, "3" if agent.name == "claude" else "Escape")
                    time.sleep(1.0)
                    return False
                if agent.working.search(s) and not working_seen:
                    working_seen.append(s)
                return srv.remaining() == 0 and agent.idle(s) and bool(srv.main_requests()) and \
                    srv.main_requests()[-1]["turn"] == len(script) - 1

            done = wait_until(finished, args.timeout)
            result.timings["turn done"] = time.monotonic() - t1
            result.checks["script used up, agent idle"] = bool(done)
            if args.verbose and working_seen:
                result.notes.append("a working screen:\n" + _indent(working_seen[0]))
            wait_until(lambda: signal_log.exists() and _signals(signal_log, agent.name), 10)
            result.timings["turn-end signal"] = time.monotonic() - t1
            signals = _signals(signal_log, agent.name)
            result.checks["turn-end signal (Stop hook / notify)"] = bool(signals)
            result.notes.append("turn-end signals: " + "; ".join(signals))
            commits = subprocess.run(["git", "-C", str(repo), "log", "--format=%s"], capture_output=True,
                                     text=True).stdout.split("\n")
            outputs = [f"{t['output'][:160]!r}" for t in srv.tool_results()]
            result.notes.append("tool results: " + " | ".join(outputs))
            if dialogs:
                result.notes.append("permission prompts seen (answered No): " + " | ".join(dialogs))
            if reviewer:
                facts = {
                    "write tool wrote review-note.txt": (repo / "review-note.txt").exists(),
                    "shell ran (touch bash-ran.txt)": (repo / "bash-ran.txt").exists(),
                    "git commit went through": "reviewer-commit" in commits,
                    "marker command ran (outside repo)": marker.exists(),
                }
                result.notes.append("reviewer: " + ", ".join(f"{k}={v}" for k, v in facts.items()))
                result.checks["reviewer cannot write in the repo"] = not facts["write tool wrote review-note.txt"] \
                    and not facts["shell ran (touch bash-ran.txt)"]
                result.checks["reviewer cannot commit"] = not facts["git commit went through"]
            else:
                result.checks["file written"] = (repo / "hello.txt").read_text() == f"hello from {agent.name}\n" \
                    if (repo / "hello.txt").exists() else False
                result.checks["commit made"] = "add hello" in commits
                result.checks["marker command ran"] = marker.exists()
            if args.paste_trials and not reviewer:
                ok = 0
                for trial in range(args.paste_trials):
                    tok = uuid.uuid4().hex[:8]
                    text = f"trial {trial} {tok}\nsecond line\nthird line {tok}"
                    if trial % 2:  # every other trial: a big paste (60 lines, ~4 KB)
                        text = f"trial {trial} {tok}\n" + "\n".join(
                            f"line {n:02d}: lorem ipsum dolor sit amet, consectetur adipiscing elit" for n in range(60)
                        ) + f"\nend {tok}"
                    tmux.paste(pane, text, args.enter_delay)
                    arrived = wait_until(lambda tok=tok: [r for r in srv.requests
                                                          if r["kind"] == "main" and tok in r["text"]], 15)
                    wait_until(lambda: agent.idle(tmux.screen(pane)), 15)
                    if arrived and _unwrap_paste(arrived[0]["text"]) == text:
                        ok += 1
                    else:
                        result.notes.append(f"paste trial {trial} failed; screen:\n" + _indent(tmux.screen(pane)))
                result.checks[f"paste+Enter trials ({ok}/{args.paste_trials})"] = ok == args.paste_trials
            if args.verbose:
                result.notes.append("final screen:\n" + _indent(tmux.screen(pane)))
                kinds = [f"{r['kind']}:{r['path']}:{r['model']}:tools={len(r['tools'])}" for r in srv.requests]
                result.notes.append("requests: " + ", ".join(kinds))
        finally:
            tmux.kill()
            leftovers = _kill_strays(root)
            if leftovers:
                result.notes.append(f"killed processes left behind under {root}: {leftovers}")
            if not args.keep:
                shutil.rmtree(root, ignore_errors=True)
            else:
                result.notes.append(f"kept {root}")
    return result


def _kill_strays(root: Path) -> list[str]:
    """Kill (by pid) processes whose executable lives under ``root`` (e.g. a Codex app-server daemon)."""
    killed = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv0 = (proc / "cmdline").read_bytes().split(b"\0")[0].decode()
        except OSError:
            continue
        if argv0.startswith(str(root) + "/"):
            try:
                os.kill(int(proc.name), 15)
                killed.append(f"{proc.name}:{Path(argv0).name}")
            except OSError:
                pass
    return killed


def _signals(log: Path, agent: str) -> list[str]:
    out = []
    if not log.exists():
        return out
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        if agent == "claude":
            if entry["event"] in ("Stop", "Notification"):
                payload = entry["payload"]
                out.append(f"{entry['event']}({payload.get('last_assistant_message') or payload.get('message')})")
        else:
            payload = json.loads(entry["argv"][-1])
            messages = payload.get("input-messages") or [""]
            if not messages[0].startswith("Generate a concise"):  # Codex's title side thread notifies too
                out.append(f"{payload.get('type')}({payload.get('last-assistant-message')})")
    return out


def _unwrap_paste(text: str) -> str:
    """Claude Code sends a paste of more than 2 newlines (or a long one) as <pasted_content id=..>TEXT</..>."""
    found = re.fullmatch(r'\s*<pasted_content id="[^"]*">\n(.*)\n</pasted_content id="[^"]*">\s*', text, re.S)
    return (found.group(1) if found else text).strip()


def _indent(text: str) -> str:
    return "\n".join("      " + line for line in text.rstrip().splitlines() if line.strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--claude", default=shutil.which("claude"))
    parser.add_argument("--codex", default=shutil.which("codex"))
    parser.add_argument("--only", choices=["claude", "codex"])
    parser.add_argument("--reviewer", action="store_true", help="also probe the read-only reviewer modes")
    parser.add_argument("--claude-reviewer-mode", default="dontAsk", choices=["dontAsk", "plan"],
                        help="Claude's read-only permission mode to probe")
    parser.add_argument("--paste-trials", type=int, default=0)
    parser.add_argument("--enter-delay", type=float, default=0.0, help="seconds between paste and Enter")
    parser.add_argument("--delay", type=float, default=0.0, help="model server delay per request (seconds)")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--tmp", default=None, help="parent folder for temporary repos/homes")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    agents = []
    if args.claude and args.only in (None, "claude"):
        agents.append(Agent("claude", args.claude, CLAUDE_READY, CLAUDE_WORKING, CLAUDE_DIALOG,
                            args.claude_reviewer_mode))
    if args.codex and args.only in (None, "codex"):
        agents.append(Agent("codex", args.codex, CODEX_READY, CODEX_WORKING, CODEX_DIALOG))
    if not agents:
        print("no agent binary given or found", file=sys.stderr)
        return 2
    results = []
    for agent in agents:
        for reviewer in ([False, True] if args.reviewer else [False]):
            result = run_agent(agent, args, reviewer)
            results.append(result)
            verdict = "PASS" if result.ok else "FAIL"
            timings = ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items())
            print(f"{verdict} {agent.name} [{result.scenario}]  ({timings})")
            for name, ok in result.checks.items():
                print(f"    [{'x' if ok else ' '}] {name}")
            for note in result.notes:
                print(f"    - {note}")
            sys.stdout.flush()
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
