"""orch.child: running a program without subprocess (exit codes, both outputs, large input and output at once, the
environment, missing programs, no descriptor leaked or inherited, no zombie, a cheap import)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from orch import child

PY = sys.executable
BIG = 10 * 1024 * 1024


def _fds() -> set[int]:
    return {int(n) for n in os.listdir("/proc/self/fd")}


def _zombies() -> list[int]:
    """This process's children that ended and were not reaped."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="utf-8", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and int(fields[1]) == os.getpid():
            found.append(int(name))
    return found


def _script(code: str, stdin: str = "") -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh Python (orch importable; ``stdin`` on its stdin), for what must not touch the test
    process."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    return subprocess.run([PY, "-c", code], input=stdin, capture_output=True, text=True, env=env, timeout=60,
                          check=False)


def test_exit_codes_like_subprocess():
    assert child.run(["true"]).returncode == 0
    assert child.run(["sh", "-c", "exit 3"]).returncode == 3
    # killed by a signal: minus its number, as subprocess's returncode (git and tmux's callers only test != 0)
    killed = child.run(["sh", "-c", "kill -9 $$"])
    assert killed.returncode == -9 == subprocess.run(["sh", "-c", "kill -9 $$"], check=False).returncode


def test_stdout_and_stderr_apart():
    done = child.run(["sh", "-c", "echo out; echo err >&2; echo out2"])
    assert (done.stdout, done.stderr) == (b"out\nout2\n", b"err\n")
    assert done.args == ["sh", "-c", "echo out; echo err >&2; echo out2"]


def test_input_and_no_input():
    assert child.run(["cat"], input=b"hello\n").stdout == b"hello\n"
    assert child.run(["cat"], input=b"").stdout == b""
    # no input: stdin is /dev/null (cat ends at once), never this process's stdin
    assert child.run(["cat"]).stdout == b""
    assert child.run(["readlink", "/proc/self/fd/0"]).stdout == b"/dev/null\n"
    assert child.run(["wc", "-c"], input=bytearray(b"abc")).stdout.strip() == b"3"
    # (pytest's stdin is /dev/null already: again in a process whose stdin has something to read)
    ran = _script("from orch import child; print(child.run(['cat']).stdout, child.run(['cat'], input=b'').stdout)",
                  stdin="the parent's stdin\n")
    assert ran.stdout == "b'' b''\n", ran.stderr


@pytest.mark.timeout(60)
def test_ten_megabytes_through_cat():
    data = os.urandom(BIG)
    done = child.run(["cat"], input=data)
    assert done.returncode == 0 and done.stdout == data and done.stderr == b""


@pytest.mark.timeout(60)
def test_large_output_on_both_pipes_while_writing_large_input():
    # the child writes 10 MB to stdout and to stderr, a MB at a time in turn, before it reads its 10 MB of input:
    # a caller that wrote all the input first, or read one output to its end first, would wait for ever
    code = (
        "import sys\n"
        "for i in range(10):\n"
        "    sys.stdout.buffer.write(b'o' * 2**20); sys.stdout.flush()\n"
        "    sys.stderr.buffer.write(b'e' * 2**20); sys.stderr.flush()\n"
        "data = sys.stdin.buffer.read()\n"
        "sys.stdout.buffer.write(str(len(data)).encode())\n"
    )
    done = child.run([PY, "-c", code], input=b"i" * BIG)
    assert done.returncode == 0
    assert done.stdout == b"o" * BIG + str(BIG).encode()
    assert done.stderr == b"e" * BIG


@pytest.mark.timeout(60)
def test_child_that_stops_reading_its_input():
    # it reads 10 bytes, closes its stdin and answers: the rest of our 10 MB is dropped, no BrokenPipeError
    done = child.run(["sh", "-c", "head -c 10; exec 0<&-; echo; echo done"], input=b"x" * BIG)
    assert done.returncode == 0 and done.stdout == b"xxxxxxxxxx\ndone\n"
    done = child.run(["true"], input=b"x" * BIG)
    assert done.returncode == 0 and done.stdout == b""


def test_environment(monkeypatch):
    monkeypatch.setenv("ORCH_CHILD_PROBE", "inherited")
    assert child.run(["sh", "-c", "echo $ORCH_CHILD_PROBE"]).stdout == b"inherited\n"
    env = {"PATH": os.environ["PATH"], "ORCH_CHILD_OTHER": "given"}
    out = child.run(["sh", "-c", "echo $ORCH_CHILD_OTHER-$ORCH_CHILD_PROBE"], env=env).stdout
    assert out == b"given-\n"
    assert child.run(["env"], env={}).stdout == b""


def test_program_looked_up_on_the_childs_path(tmp_path, monkeypatch):
    # as subprocess: the PATH of the environment given, not this process's
    folder = tmp_path / "bin"
    folder.mkdir()
    probe = folder / "orch-child-probe"
    probe.write_text("#!/bin/sh\necho probe\n")
    probe.chmod(0o755)
    env = {**os.environ, "PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}
    assert child.run(["orch-child-probe"], env=env).stdout == b"probe\n"
    with pytest.raises(FileNotFoundError):
        child.run(["orch-child-probe"])
    monkeypatch.setenv("PATH", env["PATH"])
    assert child.run(["orch-child-probe"]).stdout == b"probe\n"
    with pytest.raises(FileNotFoundError):
        child.run(["orch-child-probe"], env={**os.environ, "PATH": "/nonexistent"})


def test_missing_or_not_executable_program(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        child.run(["orch-no-such-program-x"])
    assert err.value.filename == "orch-no-such-program-x"
    with pytest.raises(FileNotFoundError):
        child.run([str(tmp_path / "absent")])
    plain = tmp_path / "plain"
    plain.write_text("#!/bin/sh\necho no\n")
    plain.chmod(0o644)
    with pytest.raises(PermissionError):
        child.run([str(plain)])


def test_no_descriptor_leaked_no_zombie():
    before = _fds()
    for i in range(200):
        if i % 4 == 0:
            assert child.run(["true"]).returncode == 0
        elif i % 4 == 1:
            assert child.run(["cat"], input=b"abc").stdout == b"abc"
        elif i % 4 == 2:
            with pytest.raises(FileNotFoundError):
                child.run(["orch-no-such-program-x"], input=b"abc")
        else:
            assert child.run(["sh", "-c", "exit 1"]).returncode == 1
    assert _fds() == before
    assert _zombies() == []


def test_interrupted_run_kills_and_reaps_the_child():
    # an exception from a signal handler (as KeyboardInterrupt) while waiting for the child: it is killed and reaped
    class Stop(Exception):
        pass

    def stop(signum, frame):
        raise Stop

    before = _fds()
    old = signal.signal(signal.SIGUSR1, stop)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGUSR1))
    try:
        started = time.monotonic()
        timer.start()
        with pytest.raises(Stop):
            child.run(["sleep", "30"], input=b"x" * BIG)
        assert time.monotonic() - started < 10
    finally:
        timer.cancel()
        signal.signal(signal.SIGUSR1, old)
    assert _fds() == before
    assert _zombies() == []


def test_no_child_left_to_reap_in_a_fresh_process():
    code = (
        "import os\n"
        "from orch import child\n"
        "for _ in range(20):\n"
        "    child.run(['true']); child.run(['cat'], input=b'x' * 300000); child.run(['sh', '-c', 'kill -9 $$'])\n"
        "    try:\n"
        "        child.run(['orch-no-such-program-x'])\n"
        "    except FileNotFoundError:\n"
        "        pass\n"
        "try:\n"
        "    os.waitpid(-1, os.WNOHANG)\n"
        "    print('a child is left')\n"
        "except ChildProcessError:\n"
        "    print('none left')\n"
    )
    ran = _script(code)
    assert ran.stdout == "none left\n", ran.stderr


def test_only_0_1_2_reach_the_child(tmp_path):
    # a descriptor this process made inheritable (and our own pipe ends) must not reach the program
    marker = tmp_path / "inheritable-marker"
    fd = os.open(marker, os.O_WRONLY | os.O_CREAT, 0o600)
    high = os.dup2(fd, 233, inheritable=True)
    os.close(fd)
    try:
        assert os.get_inheritable(high)
        code = (
            "import os\n"
            "for name in sorted(os.listdir('/proc/self/fd'), key=int):\n"
            "    try:\n"
            "        print(name, os.readlink('/proc/self/fd/' + name))\n"
            "    except OSError:\n"
            "        pass\n"
        )
        for stdin in (None, b"input"):
            listing = child.run([PY, "-c", code], input=stdin).stdout.decode()
            seen = dict(line.split(" ", 1) for line in listing.splitlines())
            assert sorted(seen, key=int) == ["0", "1", "2"], listing
            assert str(marker) not in listing
        # subprocess (close_fds) agrees
        assert str(marker) not in subprocess.run([PY, "-c", code], capture_output=True, text=True).stdout
    finally:
        os.close(high)


def test_sigpipe_back_to_default_in_the_child():
    # Python ignores SIGPIPE; an ignored signal stays ignored across exec unless reset (subprocess resets it too)
    assert signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN
    status = child.run(["grep", "^SigIgn:", "/proc/self/status"]).stdout.decode()
    ignored = int(status.split()[1], 16)
    assert not ignored & (1 << (signal.SIGPIPE - 1)) and not ignored & (1 << (signal.SIGXFSZ - 1))
    # a pipeline whose reader quits early ends (the writer dies of SIGPIPE) instead of looping on EPIPE
    done = child.run(["sh", "-c", "yes | head -c 3"])
    assert done.returncode == 0 and done.stdout == b"y\ny"


def test_this_process_with_stdin_and_stdout_closed():
    # pipes then come back as descriptors 0 and 1: the child must still get its input and outputs right
    code = (
        "import os\n"
        "from orch import child\n"
        "os.close(0); os.close(1)\n"
        "done = child.run(['sh', '-c', 'cat; echo err >&2'], input=b'abc')\n"
        "os.write(2, repr((done.returncode, done.stdout, done.stderr)).encode())\n"
        "done = child.run(['sh', '-c', 'cat; echo out'])\n"
        "os.write(2, b' ' + repr((done.returncode, done.stdout, done.stderr)).encode())\n"
    )
    ran = _script(code)
    assert ran.stderr == "(0, b'abc', b'err\\n') (0, b'out\\n', b'')", ran.stderr


def test_import_is_cheap():
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import orch.child\n"
        "print(' '.join(sorted(set(sys.modules) - before)))\n"
    )
    ran = _script(code)
    new = set(ran.stdout.split())
    assert "orch.child" in new, ran.stderr
    heavy = {"subprocess", "threading", "signal", "typing", "selectors", "dataclasses", "enum", "re", "collections"}
    assert not new & heavy
    assert new <= {"orch", "orch.child", "__future__", "errno", "select", "_signal"}


def test_a_program_started_now_and_collected_later():
    """``Running``: the caller works while the program runs; ``finish`` collects it, ``cancel`` ends it."""
    started = time.monotonic()
    slow = child.Running([sys.executable, "-c", "import time; time.sleep(0.3); print('late')"])
    fast = child.run(["echo", "meanwhile"])  # done while the other still runs
    assert fast.stdout == b"meanwhile\n" and time.monotonic() - started < 0.3
    done = slow.finish()
    assert (done.returncode, done.stdout) == (0, b"late\n")
    before = len(os.listdir("/proc/self/fd"))
    doomed = child.Running(["sleep", "30"])
    doomed.cancel()
    assert len(os.listdir("/proc/self/fd")) == before
    with pytest.raises(ChildProcessError):
        os.waitpid(doomed.pid, os.WNOHANG)  # reaped: no zombie
    doomed.cancel()  # once ended, cancel does nothing (never a signal to a pid that may be another's by now)
    slow.cancel()
