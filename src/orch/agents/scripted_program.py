"""orch's scripted test agent: behaves like an interactive coding agent, follows steps written in the task.

It shows a prompt marker (``scripted> ``), enables bracketed paste, reads typed or pasted input byte for byte
(Enter outside a paste submits), echoes what it received, and records every message it received, exactly, in
``$ORCH_WORKSPACE/.orch/logs/scripted-<worker>.jsonl``. The script is the first fenced block with the info string
``scripted`` in the first message that has one (the prompt). The block is divided into sections by header lines
``coder:``, ``reviewer:``, ``coder round N:`` or ``reviewer round N:`` (``coder:`` means round 1; lines before any
header belong to the coder's round 1). On each message, the agent runs the section for its role ($ORCH_ROLE) and
the round named in the message's first line (orch's prompts start with ``... round N``). With ``ORCH_SCRIPTED_HOOKS=1`` it reports its turns like
an agent with hooks: ``orch hook start`` when ready, ``orch hook prompt`` on each message, ``orch hook stop`` when
its turn ends, ``orch hook wait`` at a permission prompt. Steps, one per line
(quoted shell-style, never run by a shell; ``\\n`` in a text is a newline and ``\\xHH`` the character HH, e.g.
``\\x1b`` ESC; ``#`` starts a comment):

    say TEXT            print TEXT
    write PATH TEXT     write TEXT to PATH (relative to the worktree)
    append PATH TEXT    append TEXT to PATH
    commit MESSAGE      git add -A, then git commit -m MESSAGE
    report TEXT         orch - TEXT   (e.g. report "done: added the file")
    ask QUESTION        orch - "needs input: QUESTION", then wait for the answer (the next message)
    wait                wait for the next message
    sleep SECONDS       pause
    run PROGRAM ARGS... run a program (no shell) and show its output
    permission TEXT     show a permission prompt "(waiting for permission) TEXT" and wait for the next message
    verdict DECISION [FINDING...]
                        orch verdict DECISION (approve or request-changes), findings on stdin, one per
                        argument, e.g. verdict request-changes "blocker: app.py:3 crashes on empty input"
    exit [CODE]         end the agent with CODE (default 0)
    try STEP...         run STEP; when it fails, say so and go on (a failed step otherwise ends the turn's script)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import time

PROMPT = "scripted> "
SECTION = re.compile(r"^\s*(coder|reviewer)(?:\s+round\s+(\d+))?\s*:\s*$", re.I)
ROUND = re.compile(r"\bround (\d+)\b")


def sections(block: str) -> dict[tuple[str, int], list[str]]:
    """Script lines by (role, round)."""
    out: dict[tuple[str, int], list[str]] = {}
    current = ("coder", 1)
    for line in block.splitlines():
        head = SECTION.match(line)
        if head:
            current = (head.group(1).lower(), int(head.group(2) or 1))
            out.setdefault(current, [])
            continue
        out.setdefault(current, []).append(line)
    return out


def unescape(word: str) -> str:
    """``\\n`` a newline, ``\\xHH`` the character with that code (for texts with control characters)."""
    word = word.replace("\\n", "\n")
    return re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), word)


def round_of(message: str) -> int:
    first = message.strip().split("\n", 1)[0] if message.strip() else ""
    found = ROUND.search(first)
    return int(found.group(1)) if found else 1
PASTE_START = b"\x1b[200~"
PASTE_END = b"\x1b[201~"


class Terminal:
    """Raw-ish terminal input: no echo, no line editing, no CR/NL translation, signals as plain bytes."""

    def __init__(self) -> None:
        self.fd = sys.stdin.fileno()
        self.saved = None
        self.buf = b""
        if os.isatty(self.fd):
            import termios

            self.saved = termios.tcgetattr(self.fd)
            attrs = termios.tcgetattr(self.fd)
            attrs[0] &= ~(termios.ICRNL | termios.INLCR | termios.IGNCR | termios.IXON | termios.ISTRIP)
            attrs[3] &= ~(termios.ICANON | termios.ECHO | termios.ISIG | termios.IEXTEN)
            attrs[6][termios.VMIN] = 1
            attrs[6][termios.VTIME] = 0
            termios.tcsetattr(self.fd, termios.TCSANOW, attrs)
        self.write("\x1b[?2004h")

    def restore(self) -> None:
        self.write("\x1b[?2004l")
        if self.saved is not None:
            import termios

            termios.tcsetattr(self.fd, termios.TCSANOW, self.saved)

    @staticmethod
    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    def _more(self) -> bool:
        chunk = os.read(self.fd, 65536)
        if not chunk:
            return False
        self.buf += chunk
        return True

    def read_message(self) -> bytes | None:
        """Bytes up to an Enter typed outside a paste; None at end of input or on Ctrl-D with nothing typed."""
        out = bytearray()
        while True:
            if not self.buf and not self._more():
                return bytes(out) if out else None
            if self.buf.startswith(PASTE_START):
                self.buf = self.buf[len(PASTE_START) :]
                while PASTE_END not in self.buf:
                    if not self._more():
                        out += self.buf
                        self.buf = b""
                        return bytes(out)
                body, _, self.buf = self.buf.partition(PASTE_END)
                out += body
                continue
            if PASTE_START.startswith(self.buf) and len(self.buf) < len(PASTE_START):
                if not self._more():
                    return bytes(out) if out else None
                continue
            byte, self.buf = self.buf[:1], self.buf[1:]
            if byte in (b"\r", b"\n"):
                return bytes(out)
            if byte == b"\x03":
                raise KeyboardInterrupt
            if byte == b"\x04" and not out:
                return None
            if byte in (b"\x7f", b"\x08"):
                if out:
                    del out[-1]
                    self.write("\b \b")
                continue
            if byte == b"\x1b":  # other escape sequences (arrows...) are ignored
                self.buf = self.buf.lstrip(b"[O0123456789;")[1:]
                continue
            out += byte
            self.write(byte.decode("utf-8", "replace"))


class Agent:
    def __init__(self) -> None:
        self.term = Terminal()
        self.received = 0
        self.turn_open = False
        self.worker = os.environ.get("ORCH_WORKER", "agent").replace(":", "-")
        ws = os.environ.get("ORCH_WORKSPACE")
        self.record_file = os.environ.get("ORCH_SCRIPTED_LOG") or (
            os.path.join(ws, ".orch", "logs", f"scripted-{self.worker}.jsonl") if ws else ""
        )

    def say(self, text: str) -> None:
        self.term.write(text.replace("\r\n", "\n").replace("\n", "\r\n") + "\r\n")

    def prompt(self) -> None:
        self.term.write(PROMPT)

    def next_message(self, permission: bool = False) -> str | None:
        """Wait for the next message. Waiting ends the agent's turn (hook stop), except at a permission prompt."""
        if permission:
            self.hook("wait")
        elif self.turn_open:
            self.hook("stop")
        self.prompt()
        data = self.term.read_message()
        self.term.write("\r\n")
        if data is None:
            return None
        self.hook("prompt")
        self.turn_open = True
        text = data.decode("utf-8", "surrogateescape")
        self.received += 1
        digest = hashlib.sha256(data).hexdigest()[:12]
        first = text.strip().splitlines()[0][:60] if text.strip() else ""
        self.say(f"received message {self.received}: {len(data)} bytes, sha256 {digest}: {first}")
        if self.record_file:
            try:
                fd = os.open(self.record_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                with open(fd, "a", encoding="utf-8", errors="surrogateescape") as fh:
                    fh.write(json.dumps({"n": self.received, "text": text, "sha256": digest}) + "\n")
            except OSError as exc:
                self.say(f"(could not record the message: {exc})")
        return text

    def hook(self, event: str) -> None:
        """Like a real agent's hook: run `orch hook EVENT` (the worker's orch, first on PATH) and go on."""
        if os.environ.get("ORCH_SCRIPTED_HOOKS") != "1":
            return
        argv = self.orch_argv()
        payload = json.dumps({"session_id": f"scripted-{os.getpid()}", "event": event}).encode()
        subprocess.run([*argv, "hook", event], input=payload, capture_output=True, check=False)

    @staticmethod
    def orch_argv() -> list[str]:
        """The worker's `orch` (first on its PATH, as for a real agent), else this interpreter's."""
        import shutil

        found = shutil.which("orch")
        return [found] if found else [sys.executable, "-m", "orch"]

    def orch(self, text: str) -> int:
        proc = subprocess.run([*self.orch_argv(), "-", text], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            self.say(f"orch - failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc.returncode

    def run_steps(self, lines: list[str]) -> int | None:
        """Run script lines; returns an exit code when the script says `exit`."""
        for number, raw in enumerate(lines, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            try:
                words = [unescape(w) for w in shlex.split(line, comments=True)]
            except ValueError as exc:
                self.say(f"step {number}: cannot read {line!r}: {exc}")
                return None
            if not words:
                continue
            self.say(f"step {number}: {line}")
            trying = words[0] == "try" and len(words) > 1
            try:
                code = self.step(*(words[1], words[2:]) if trying else (words[0], words[1:]))
            except (OSError, subprocess.SubprocessError, ValueError) as exc:
                self.say(f"step {number} failed: {exc}")
                if trying:
                    continue
                return None
            if code is not None:
                return code
        return None

    def step(self, verb: str, args: list[str]) -> int | None:
        if verb == "say":
            self.say(" ".join(args))
        elif verb in ("write", "append"):
            path, text = args[0], " ".join(args[1:])
            folder = os.path.dirname(path)
            if folder:
                os.makedirs(folder, exist_ok=True)
            with open(path, "a" if verb == "append" else "w", encoding="utf-8") as fh:
                fh.write(text)
        elif verb == "commit":
            message = " ".join(args) or "scripted change"
            for argv in (["git", "add", "-A"], ["git", "commit", "-q", "-m", message]):
                proc = subprocess.run(argv, capture_output=True, text=True, check=False)
                if proc.returncode != 0:
                    raise ValueError(f"{' '.join(argv[:2])}: {(proc.stderr or proc.stdout).strip()}")
        elif verb == "report":
            self.orch(" ".join(args))
        elif verb == "ask":
            question = " ".join(args)
            self.say(f"question: {question}")
            self.orch(f"needs input: {question}")
            answer = self.next_message()
            self.say(f"answer: {answer!r}")
        elif verb == "wait":
            self.next_message()
        elif verb == "permission":
            self.say(f"(waiting for permission) {' '.join(args)}")
            answer = self.next_message(permission=True)
            self.say(f"permission answer: {answer!r}")
        elif verb == "sleep":
            time.sleep(float(args[0]) if args else 1.0)
        elif verb == "run":
            proc = subprocess.run(args, capture_output=True, text=True, check=False)
            self.say((proc.stdout + proc.stderr).rstrip() + f"\n(exit {proc.returncode})")
        elif verb == "verdict":
            proc = subprocess.run(
                [*self.orch_argv(), "verdict", args[0]],
                input="\n".join(args[1:]) + "\n",
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                self.say(f"orch verdict failed ({proc.returncode}): {proc.stderr.strip()}")
        elif verb == "exit":
            return int(args[0]) if args else 0
        else:
            raise ValueError(f"unknown step {verb!r}")
        return None

    def main(self) -> int:
        from orch.taskfile import fenced_blocks

        role = os.environ.get("ORCH_ROLE", "coder")
        self.say(f"scripted agent ready (pid {os.getpid()}, worker {self.worker}, role {role})")
        self.hook("start")
        script: dict[tuple[str, int], list[str]] | None = None
        done_rounds: set[int] = set()
        while True:
            message = self.next_message()
            if message is None:
                return 0
            if script is None:
                blocks = fenced_blocks(message, "scripted")
                if blocks:
                    script = sections(blocks[0])
            if script is None:
                self.say("no scripted block yet; echoing messages")
                continue
            round_no = round_of(message)
            steps = script.get((role, round_no))
            if steps is None or round_no in done_rounds:
                continue
            done_rounds.add(round_no)
            code = self.run_steps(steps)
            if code is not None:
                return code
            self.say(f"{role} round {round_no} finished")

def main() -> int:
    agent = Agent()
    try:
        code = agent.main()
    except KeyboardInterrupt:
        code = 130
    finally:
        agent.term.restore()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
