"""Figure 5, prompt delivery fidelity: texts of every awkward kind, 1 byte to 50 KB, sent one after the other with
`orch send <task>` (the text on stdin, so it is byte-exact) to one idle scripted worker, compared with what the
scripted agent recorded (it records every message it receives, exactly, in .orch/logs/scripted-<worker>.jsonl).
A text arrives exactly as sent, except what orch neutralises by design before it types anything (orch/terminal.py:
CR LF and CR as LF, other control characters as their pictures). Failures are listed by kind, never hidden."""

from __future__ import annotations

import random
import statistics
import string
import time
from collections import Counter

from common import ORCH, Space, quiet, spread

from orch.terminal import neutralise

SHELL = [
    "$(touch /tmp/orch-bench-pwned)", "`id`", "'single quotes'", '"double quotes"', "a; b | c & d && e || f",
    "> out < in 2>&1", "$HOME ${PATH} $$ $? !! ~ * ? [a-z]", "back\\slash \\\\ and \\n not a newline",
    "#{pane_id} #(date) #[fg=red]", "%1 %% %s %n", "'unbalanced \"quote", "rm -rf / --no-preserve-root # not run",
    "echo $((1+2)) <(ls) >(cat)", "{a,b}{c,d}", "x=1 y=2; export z", "\\; ; \\\\;",
]
KEYS = [
    "Enter", "C-c", "-t", "C-m", "Escape", "Tab", "BSpace", "C-d", "-l", "--", ";", "send-keys -t %0 C-c", "M-x",
    "q", "^C", "-N 5", "Up", "KPEnter", "C-[", "-X cancel", "copy-mode", "kill-server", "-H 0d",
]
UNICODE = [
    "é", "naïve café", "日本語のテキスト", "emoji 🚀🔥👩‍💻", "e\u0301 (combining)", "שלום עולם", "nbsp\u00a0here",
    "zero\u200bwidth", "Ω≈ç√∫˜µ≤≥÷", "┌─┐│└┘", "ｆｕｌｌｗｉｄｔｈ", "Ελληνικά", "中文，标点。", "🇫🇷 flag", "\U0001f600",
]
WORDS = "alpha beta gamma delta the quick brown fox jumps over lazy dog fn main() return None".split()


def _line(rng: random.Random) -> str:
    pick = rng.random()
    if pick < 0.2:
        return rng.choice(SHELL)
    if pick < 0.3:
        return rng.choice(KEYS)
    if pick < 0.45:
        return rng.choice(UNICODE)
    indent = rng.choice(["", "", "    ", "\t", "  "])
    return indent + " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 12)))


def _sized(rng: random.Random, size: int) -> str:
    """A multi-line text of exactly ``size`` bytes (UTF-8)."""
    lines: list[str] = []
    total = 0
    while total < size:
        line = _line(rng)
        lines.append(line)
        total += len(line.encode()) + 1
    text = "\n".join(lines).encode()[:size]
    while True:
        try:
            out = text.decode()
            break
        except UnicodeDecodeError:
            text = text[:-1]
    out = out + "x" * (size - len(out.encode()))
    return out if out.strip() else "x" * size


def texts(count: int, seed: int = 7) -> list[tuple[str, str]]:
    """``count`` (kind, text) pairs, deterministic, every kind represented in proportion."""
    rng = random.Random(seed)
    printable = [c for c in string.printable if not c.isspace()]
    makers = {
        "1 byte": lambda i: printable[i % len(printable)],
        "shell metacharacters": lambda i: SHELL[i % len(SHELL)] if i < len(SHELL) else " ".join(rng.sample(SHELL, 3)),
        "tmux key names": lambda i: KEYS[i % len(KEYS)] if i < len(KEYS) else "\n".join(rng.sample(KEYS, 4)),
        "multi-line": lambda i: "\n".join(_line(rng) for _ in range(rng.randint(2, 30)))
        + rng.choice(["", "\n", "\n\n"]),
        "blank lines and indentation": lambda i: "first\n\n\n    indented\n\ttabbed\n\n# a comment line\n```\nfence\n```"
        + "\n" * (i % 3),
        "unicode": lambda i: UNICODE[i % len(UNICODE)] if i < len(UNICODE) else " ".join(rng.sample(UNICODE, 4)),
        "trailing spaces": lambda i: rng.choice(["text   ", "two  \nlines \t", "  both sides  ", "tab\t", "x" + " " * (i % 7 + 1)]),
        "CRLF line endings": lambda i: "\r\n".join(_line(rng) for _ in range(rng.randint(2, 6))),
        "large (1-50 KB)": lambda i: _sized(rng, [1024, 2048, 4096, 8192, 16384, 32768, 51200][i % 7]),
        "mixed, 10 B-5 KB": lambda i: _sized(rng, rng.randint(10, 5000)),
    }
    weights = {"1 byte": 20, "shell metacharacters": 40, "tmux key names": 35, "multi-line": 40,
               "blank lines and indentation": 10, "unicode": 35, "trailing spaces": 30, "CRLF line endings": 10,
               "large (1-50 KB)": 35, "mixed, 10 B-5 KB": 45}
    scale = count / sum(weights.values())
    plan = {kind: max(1, round(n * scale)) for kind, n in weights.items()}
    while sum(plan.values()) > count:
        plan[max(plan, key=plan.get)] -= 1
    while sum(plan.values()) < count:
        plan["mixed, 10 B-5 KB"] += 1
    out = [(kind, makers[kind](i)) for kind, n in plan.items() for i in range(n)]
    out = [(kind, text) for kind, text in out if text.strip()]
    rng.shuffle(out)
    return out


def _send(space: Space, worker: dict, items: list[tuple[str, str]]) -> tuple[list[float], Counter[str], list[str]]:
    """Send each text and compare with what the agent recorded: (wall times, failures by kind, lines to print)."""
    slug = worker["id"].split(":")[0]
    before = len(space.received(worker["id"]))
    walls, lines = [], []
    for kind, text in items:
        start = time.perf_counter()
        proc = space.run(ORCH, "send", slug, input=text.encode("utf-8"), check=False)
        walls.append(time.perf_counter() - start)
        if proc.returncode != 0:
            lines.append(f"  `orch send` failed ({kind}): {proc.stderr.decode('utf-8', 'replace').strip()}")
    # the agent records a message right after its prompt hook, which `orch send` waits for: allow a moment
    deadline = time.monotonic() + 10
    while len(space.received(worker["id"])) - before < len(items) and time.monotonic() < deadline:
        time.sleep(0.1)
    got = Counter(space.received(worker["id"])[before:])
    failed: Counter[str] = Counter()
    for kind, text in items:
        expected = neutralise(text)  # what orch promises to type: every printable character, CR LF as LF
        if got[expected] > 0:
            got[expected] -= 1
        else:
            failed[kind] += 1
    for text in [t for t, n in got.items() if n > 0][:5]:
        lines.append(f"  received but not sent (first 120 chars): {text[:120]!r}")
    return walls, failed, lines[:12]


def _note(items: list[tuple[str, str]], failed: Counter[str]) -> str:
    sizes = [len(t.encode()) for _, t in items]
    exact = len(items) - sum(failed.values())
    note = f"{exact}/{len(items)} exact ({min(sizes)} B–{max(sizes) / 1024:.0f} KB; CR LF typed as LF)"
    if failed:
        note += "; FAILED: " + ", ".join(f"{k} x{n}" for k, n in failed.items())
    return note


def fidelity(space: Space, worker: dict, count: int, compare: int) -> tuple[list[tuple[str, str, str, str]], list[str]]:
    """``count`` texts with `orch run` running in the workspace (it applies the agent's hooks), after ``compare``
    texts without it (each hook then forks an applier). Returns the rows and the lines to print."""
    items = texts(count)
    rows, out = [], []
    if compare:
        few = texts(compare, seed=11)
        walls, failed, lines = _send(space, worker, few)
        rows.append((f"same, {len(few)} texts, no daemon (each hook forks an applier)",
                     f"{statistics.median(walls) * 1000:.0f} ms", spread(walls), _note(few, failed)))
        out += [f"delivery without a daemon: {_note(few, failed)}", *lines]
    pid = space.start_daemon()
    try:
        quiet(pid, window=0.3, limit=15)
        walls, failed, lines = _send(space, worker, items)
    finally:
        space.stop_daemon()
    kinds = Counter(k for k, _ in items)
    out = [f"delivery: {_note(items, failed)}; kinds sent: {', '.join(f'{k} {n}' for k, n in kinds.items())}",
           *(["delivery FAILURES by kind: " + ", ".join(f"{k}: {n} of {kinds[k]}" for k, n in failed.items())]
             if failed else []), *lines, *out]
    rows.insert(0, (f"`orch send` (text on stdin) to one idle worker, `orch run` running, {len(items)} texts: each "
                    "until confirmed", f"{statistics.median(walls) * 1000:.0f} ms", spread(walls), _note(items, failed)))
    return rows, out
