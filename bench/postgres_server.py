"""A private PostgreSQL for the sinks scenario: Debian's server on a free loopback port.

The server itself is the tests' (``tests/postgres_support.PostgresServer``): ``initdb``
as the ``postgres`` user when the harness runs as root, a data directory of its own,
127.0.0.1 only, its unix socket inside the data directory. What the benchmark adds:
installing Debian's ``postgresql`` package with apt-get when ``initdb`` is missing,
PostgreSQL's own durability settings instead of the tests' ``fsync=off`` (a sink's
flush is measured as the durable write it promises), its CPU time, and a ``with``
block that stops the server and removes its data when it is left, on errors and
Ctrl-C (and SIGTERM, which the harness turns into an exit) included. The server log
is kept next to the run's other logs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import TracebackType

from bench.process import cpu_seconds_of
from tests.postgres_support import PostgresServer, free_port, postgres_binary

#: Appended to the tests' settings (a later line wins): PostgreSQL's defaults for
#: durability, and its default buffer size.
BENCH_CONFIG = """
# scripts/bench sinks: PostgreSQL's defaults, a durable commit
fsync = on
full_page_writes = on
synchronous_commit = on
shared_buffers = 128MB
"""
#: Attempts at a free port (another process may take the one chosen before the start).
PORT_ATTEMPTS = 3


class PostgresUnavailable(Exception):
    """PostgreSQL could not be installed or did not start; the message says why."""


def ensure_installed() -> str:
    """The path of ``initdb``, installing Debian's ``postgresql`` package when missing
    (without the package's default cluster, as ``scripts/test`` does).

    Raises:
        PostgresUnavailable: no apt-get, not root (and no password-less sudo), or the
            install failed (with the tail of apt-get's output).
    """
    try:
        return postgres_binary("initdb")
    except RuntimeError:
        pass
    apt = shutil.which("apt-get")
    if apt is None:
        raise PostgresUnavailable("initdb is missing and there is no apt-get to install it")
    prefix: list[str] = []
    if os.geteuid() != 0:
        sudo = shutil.which("sudo")
        if sudo is None:
            raise PostgresUnavailable("initdb is missing: run `apt-get install -y postgresql`")
        prefix = [sudo, "-n"]
    print("installing postgresql with apt-get ...", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    steps = [
        [*prefix, "mkdir", "-p", "/etc/postgresql-common/createcluster.d"],
        [
            *prefix,
            "sh",
            "-c",
            "echo 'create_main_cluster = false' > "
            "/etc/postgresql-common/createcluster.d/millstream-bench.conf",
        ],
        [*prefix, apt, "update", "-q"],
        [*prefix, apt, "install", "-y", "-q", "--no-install-recommends", "postgresql"],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise PostgresUnavailable(f"{' '.join(step[-3:])} failed: {' | '.join(tail)}")
    try:
        return postgres_binary("initdb")
    except RuntimeError as exc:
        raise PostgresUnavailable(str(exc)) from exc


def server_version() -> str:
    """The server's version from ``postgres --version`` (``postgres (PostgreSQL) 15.18
    (Debian 15.18-0+deb12u1)`` gives ``15.18``), or "?" when it is not installed."""
    try:
        postgres = postgres_binary("postgres")
    except RuntimeError:
        return "?"
    done = subprocess.run([postgres, "--version"], capture_output=True, text=True, check=False)
    _, found, rest = done.stdout.partition("(PostgreSQL)")
    return rest.split()[0] if found and rest.split() else "?"


class BenchPostgres:
    """One PostgreSQL server for a benchmark run, used as a context manager.

    Its data lives in ``base/data`` while it runs and is removed after (``base`` too,
    when nothing else is in it); its log is copied to ``log_copy``. ``dsn`` and
    ``port`` are those of the running server.
    """

    def __init__(self, base: Path, log_copy: Path) -> None:
        self.base = base.resolve()
        self.log_copy = log_copy
        self.server: PostgresServer | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.port

    @property
    def dsn(self) -> str:
        assert self.server is not None
        return self.server.dsn

    def __enter__(self) -> BenchPostgres:
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
        """Install if needed, ``initdb``, start, and wait until it takes connections.

        Raises:
            PostgresUnavailable: it could not be installed or started (it is cleaned
                up again).
        """
        ensure_installed()
        data = self.base / "data"
        shutil.rmtree(data, ignore_errors=True)
        self.base.mkdir(parents=True, exist_ok=True)
        self.server = PostgresServer(data, free_port())
        try:
            self.server.init()
            with (data / "postgresql.conf").open("a") as conf:
                conf.write(BENCH_CONFIG)
            for attempt in range(PORT_ATTEMPTS):
                try:
                    self.server.start()
                    break
                except RuntimeError:
                    if attempt == PORT_ATTEMPTS - 1:
                        raise
                    self.server.port = free_port()
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            self.stop()
            raise PostgresUnavailable(str(exc)[-600:]) from exc

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server so far: the postmaster with its reaped
        children (past connections) and its live processes (backends, WAL writer,
        checkpointer, ...)."""
        assert self.server is not None
        try:
            pid = int((self.server.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return 0.0
        total = cpu_seconds_of(pid)
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                total += cpu_seconds_of(int(stat.parent.name))
        return total

    def stop(self) -> None:
        """Stop the server (open connections are cut), keep its log, remove its data;
        safe to call twice."""
        server, self.server = self.server, None
        if server is None:
            return
        try:
            if server.data_dir.exists() and server.running():
                server.stop()
        finally:
            if server.log.exists():
                self.log_copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(server.log, self.log_copy)
            shutil.rmtree(server.data_dir, ignore_errors=True)
            with contextlib.suppress(OSError):
                self.base.rmdir()
