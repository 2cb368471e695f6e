"""`make demo`: a throwaway repository, three tasks for orch's scripted agent, run to the end, shown as a table.

Every step is a real `orch` command, printed before it runs. Uses its own tmux socket; stops that server at the end
(pass --keep to leave the workers running so you can `orch attach` to them).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

TASKS = {
    "greeting": """Add a greeting file to the project.

## Requirements
- hello.txt greets the reader

## Validation
- `test -s hello.txt`

```scripted
coder:
  say writing the greeting
  write hello.txt "hello from orch\\n"
  commit "Add hello.txt"
  report "done: added hello.txt with a greeting"
reviewer:
  verdict approve "note: hello.txt is friendly"
```
""",
    "docs": """Document how to run the project.

The coder asks which tone to use and waits for the answer.

```scripted
coder:
  ask "Formal or casual tone for the docs?"
  write docs/usage.md "# Usage\\n\\nRun it.\\n"
  commit "Add usage docs"
  report "done: wrote docs/usage.md"
reviewer:
  verdict approve
```
""",
    "smoke-test": """Add a smoke test.

## Requirements
- a test that runs in CI

## Validation
- `python3 tests/test_smoke.py`

```scripted
coder:
  write tests/test_smoke.py "assert 1 + 1 == 2\\n"
  commit "Add a smoke test"
  report "done: added tests/test_smoke.py"
reviewer:
  verdict request-changes "blocker: [tests/test_smoke.py:1] the test has no message on failure" "minor: name it"
coder round 2:
  write tests/test_smoke.py "assert 1 + 1 == 2, 'arithmetic is broken'\\n"
  commit "Smoke test: say what failed"
  report "done: the assertion now explains itself"
reviewer round 2:
  verdict approve "minor: [tests/test_smoke.py] could use a test framework later"
```
""",
}


def sh(argv: list[str], cwd: str, env: dict[str, str], show: bool = True, check: bool = True) -> str:
    if show:
        print(f"\n$ {' '.join(a if ' ' not in a else repr(a) for a in argv)}", flush=True)
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if show and proc.stdout.strip():
        print(proc.stdout.rstrip(), flush=True)
    if proc.returncode != 0 and check:
        print(proc.stderr.rstrip(), file=sys.stderr)
        raise SystemExit(f"demo: `{' '.join(argv)}` failed with exit {proc.returncode}")
    return proc.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", action="store_true", help="leave the tmux server and its workers running")
    args = parser.parse_args()
    start = time.monotonic()
    root = tempfile.mkdtemp(prefix="orch-demo-")
    repo = os.path.join(root, "project")
    socket = f"orch-demo-{os.getpid()}"
    orch = [sys.executable, "-m", "orch"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_") and k not in ("TMUX", "TMUX_PANE")}
    env.update(ORCH_TMUX_SOCKET=socket, GIT_AUTHOR_NAME="orch demo", GIT_COMMITTER_NAME="orch demo")
    env.update(GIT_AUTHOR_EMAIL="demo@example.invalid", GIT_COMMITTER_EMAIL="demo@example.invalid")

    print(f"orch demo: a throwaway repository in {repo}, tmux socket {socket}")
    os.makedirs(repo)
    for argv in (["git", "init", "-q", "-b", "main"], ["git", "commit", "-q", "--allow-empty", "-m", "Start"]):
        sh(argv, repo, env, show=False)
    try:
        sh([*orch, "init"], repo, env)
        config = os.path.join(repo, ".orch", "config.toml")
        with open(config, encoding="utf-8") as fh:
            text = fh.read()
        with open(config, "w", encoding="utf-8") as fh:
            fh.write('default_agent = "scripted"   # orch\'s built-in test agent\n' + text)
        print("(config: default_agent = \"scripted\")")
        for slug, body in TASKS.items():
            sh([*orch, "add", "--slug", slug, body.split("\n", 1)[0]], repo, env)
            with open(os.path.join(repo, ".orch", "tasks", f"{slug}.md"), "w", encoding="utf-8") as fh:
                fh.write(body)
        print("(each task file now holds a ```scripted block: the steps the test agent follows, as coder and as")
        print(" reviewer; smoke-test's reviewer asks for a fix in round 1)")
        sh([*orch, "scan"], repo, env)

        answered = False
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            sh([*orch, "scan"], repo, env, show=False)
            status = sh([*orch, "status", "--json"], repo, env, show=False)
            states = {t["slug"]: t["state"] for t in json.loads(status)["tasks"]}
            if states.get("docs") == "needs-input" and not answered:
                sh([*orch, "status"], repo, env)
                sh([*orch, "send", "docs", "Casual, please."], repo, env)
                answered = True
            if all(s in ("ready", "blocked") for s in states.values()):
                break
            time.sleep(0.3)
        else:
            sh([*orch, "status"], repo, env)
            raise SystemExit("demo: the tasks did not finish within 45 s")

        sh([*orch, "status"], repo, env)
        sh([*orch, "capture", "smoke-test:reviewer", "-n", "6"], repo, env)
        sh([*orch, "exec", "smoke-test", "--", "git", "log", "--oneline", "-3"], repo, env)
        print("\n$ sed -n '/orch:/,$p' .orch/tasks/smoke-test.md   (orch's block below the person's text)")
        with open(os.path.join(repo, ".orch", "tasks", "smoke-test.md"), encoding="utf-8") as fh:
            print("<!-- orch:" + fh.read().split("<!-- orch:", 1)[1].rstrip())
        sh([*orch, "dossier", "smoke-test"], repo, env)
        dossiers = os.path.join(repo, ".orch", "dossiers")
        print(f"\ndemo finished in {time.monotonic() - start:.1f}s. Nothing was merged: the decision is yours.")
        print(f"merge-ready dossiers: {dossiers}")
        for name in sorted(os.listdir(dossiers)):
            print(f"  {os.path.join(dossiers, name)}")
        if args.keep:
            print(f"workers still run: cd {repo} && ORCH_TMUX_SOCKET={socket} orch attach greeting")
    finally:
        if not args.keep:
            subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, check=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
