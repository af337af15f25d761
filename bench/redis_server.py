"""A private Redis for Celery: Debian's redis-server on a free loopback port, no persistence.

``RedisServer`` installs the package with apt-get when ``/usr/bin/redis-server`` is
missing, starts the server in its own directory under ``.local/bench/redis/`` bound to
127.0.0.1, waits until it answers PING, and stops it when the ``with`` block is left,
on errors and Ctrl-C included. The server also gets SIGTERM when the harness dies
without cleaning up (``PR_SET_PDEATHSIG``), so no Redis outlives a killed run.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

SERVER = Path("/usr/bin/redis-server")
#: Seconds a new server may take to answer PING, and a stopping one to exit.
START_TIMEOUT = 10.0
STOP_GRACE = 10.0
_PR_SET_PDEATHSIG = 1


class RedisUnavailable(Exception):
    """redis-server could not be installed or did not start; the message says why."""


def ensure_installed() -> Path:
    """``/usr/bin/redis-server``, installing Debian's package first when it is missing.

    Raises:
        RedisUnavailable: no apt-get, not root (and no password-less sudo), or the
            install failed (with the tail of apt-get's output).
    """
    if SERVER.exists():
        return SERVER
    apt = shutil.which("apt-get")
    if apt is None:
        raise RedisUnavailable(f"{SERVER} is missing and there is no apt-get to install it")
    prefix: list[str] = []
    if os.geteuid() != 0:
        sudo = shutil.which("sudo")
        if sudo is None:
            raise RedisUnavailable(f"{SERVER} is missing: run `apt-get install -y redis-server`")
        prefix = [sudo, "-n"]
    print("installing redis-server with apt-get ...", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*prefix, apt, "install", "-y", "-q", "redis-server"]
    done = subprocess.run(install, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        # A fresh machine may have no package lists yet.
        subprocess.run([*prefix, apt, "update", "-q"], capture_output=True, env=env, check=False)
        done = subprocess.run(install, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0 or not SERVER.exists():
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise RedisUnavailable(f"apt-get install redis-server failed: {' | '.join(tail)}")
    return SERVER


def server_version() -> str:
    """redis-server's version (``7.0.15``), or "?" when it is not installed."""
    if not SERVER.exists():
        return "?"
    done = subprocess.run([str(SERVER), "--version"], capture_output=True, text=True, check=False)
    for word in done.stdout.split():
        if word.startswith("v="):
            return word[2:]
    return "?"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the harness process dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class RedisServer:
    """One redis-server process on 127.0.0.1, used as a context manager.

    ``url(db)`` is the ``redis://`` URL of database ``db``. Nothing is saved to disk
    (``--save "" --appendonly no``); the directory ``base/<port>`` holds its log.
    """

    def __init__(self, base: Path) -> None:
        self.base = base.resolve()
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.base / "redis.log"

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Install if needed, start, and wait until it answers PING.

        Raises:
            RedisUnavailable: it could not be installed, exited, or did not answer in
                ``START_TIMEOUT`` seconds (it is stopped again).
        """
        server = ensure_installed()
        self.port = free_port()
        workdir = self.base / str(self.port)
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "redis.log"
        command = [
            str(server),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--protected-mode", "yes",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(workdir),
            "--logfile", str(self.log_path),
            "--daemonize", "no",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not self.ping():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                why = (
                    f"exited ({self.proc.returncode})"
                    if self.proc.poll() is not None
                    else f"did not answer PING within {START_TIMEOUT:.0f}s"
                )
                self.stop()
                raise RedisUnavailable(f"redis-server on port {self.port} {why}: {self._tail()}")
            time.sleep(0.05)

    def ping(self) -> bool:
        """Whether the server answers PING on its port."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM, SIGKILL after ``STOP_GRACE`` seconds; safe to call twice."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def _tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return " | ".join(lines[-2:]) or "empty log"
