"""A throwaway PostgreSQL server: Debian's packages, a data directory of its own.

The tests' sink checks and ``scripts/demo`` run the server users run. Debian installs
its binaries under /usr/lib/postgresql/<version>/bin, not on PATH, so they are looked
up there too (``scripts/test`` and ``scripts/demo`` install the ``postgresql`` package
when they are missing). ``initdb`` refuses to run as root, so as root the server runs
as the ``postgres`` user (``runuser``), in a data directory under the repository's
``.local/`` (``postgres-<pid>``). The server listens on a free port of 127.0.0.1
only, with its unix socket inside the data directory, so servers side by side never
meet. :meth:`PostgresServer.stop` and :meth:`PostgresServer.start` take the same
server down and up again, for outages.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

#: The unprivileged user a root session runs the server as (Debian's package creates it).
SERVER_USER = "postgres"
#: Bound on starting or stopping the server, in seconds.
START_TIMEOUT = 60
#: Settings for a throwaway test server: small, local only, no durability across crashes
#: of the machine (a clean ``pg_ctl stop`` still writes everything).
_CONFIG = """
listen_addresses = '127.0.0.1'
unix_socket_directories = '{socket_dir}'
max_connections = 50
shared_buffers = 64MB
fsync = off
full_page_writes = off
synchronous_commit = off
"""


def postgres_binary(name: str) -> str:
    """The path of PostgreSQL's ``name`` program: on PATH, else Debian's newest version."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    if not versions:
        raise RuntimeError(
            f"PostgreSQL's {name} is missing: install Debian's postgresql package "
            "(scripts/test and scripts/demo do: apt-get install postgresql)"
        )
    return str(versions[-1])


def free_port() -> int:
    """A port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresServer:
    """One PostgreSQL server with its own data directory; ``dsn`` connects to it."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.log = self.data_dir / "server.log"
        self._owner = SERVER_USER if os.geteuid() == 0 else None

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres connect_timeout=5"

    def init(self) -> None:
        """Create the data directory (owned by the server's user) and run ``initdb``."""
        self.data_dir.mkdir(parents=True)
        if self._owner is not None:
            try:
                user = pwd.getpwnam(self._owner)
            except KeyError:
                raise RuntimeError(
                    f"no user {self._owner!r} to run PostgreSQL as (initdb refuses root): "
                    "Debian's postgresql package creates it"
                ) from None
            os.chown(self.data_dir, user.pw_uid, user.pw_gid)
        self._run(
            postgres_binary("initdb"),
            "--pgdata",
            str(self.data_dir),
            "--username",
            "postgres",
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--no-sync",
        )
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(_CONFIG.format(socket_dir=self.data_dir))

    def start(self) -> None:
        """Start the server on :attr:`port` and wait until it accepts connections.

        Raises RuntimeError, with the server's log, when it does not within
        :data:`START_TIMEOUT` seconds (a port taken meanwhile, say).
        """
        pg_ctl = postgres_binary("pg_ctl")
        command = [pg_ctl, "start", "--wait", f"--timeout={START_TIMEOUT}"]
        command += ["--pgdata", str(self.data_dir), "--log", str(self.log)]
        try:
            self._run(*command, "-o", f"-p {self.port}")
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\nserver log:\n{self.log_tail()}") from None
        self._wait_accepting()

    def stop(self) -> None:
        """Stop the server (``pg_ctl stop -m fast``: open connections are cut)."""
        pg_ctl = postgres_binary("pg_ctl")
        command = [pg_ctl, "stop", "--wait", f"--timeout={START_TIMEOUT}", "-m", "fast"]
        self._run(*command, "--pgdata", str(self.data_dir))

    def running(self) -> bool:
        """True when the server's postmaster runs (``pg_ctl status``)."""
        status = subprocess.run(
            self._as_owner(postgres_binary("pg_ctl"), "status", "--pgdata", str(self.data_dir)),
            capture_output=True,
            check=False,
        )
        return status.returncode == 0

    def ensure_running(self) -> None:
        """Start the server when a test left it stopped."""
        if not self.running():
            self.start()

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError as exc:
            return f"(no log: {exc})"

    def _wait_accepting(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with psycopg.connect(self.dsn) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"PostgreSQL on port {self.port} accepted no connection within "
                        f"{START_TIMEOUT}s: {exc}\nserver log:\n{self.log_tail()}"
                    ) from exc
                time.sleep(0.1)

    def _as_owner(self, *command: str) -> list[str]:
        if self._owner is None:
            return list(command)
        return ["runuser", "-u", self._owner, "--", *command]

    def _run(self, *command: str) -> None:
        done = subprocess.run(
            self._as_owner(*command),
            cwd=self.data_dir,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT + 30,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
            )


@contextmanager
def running_postgres(local_dir: Path, attempts: int = 3) -> Iterator[PostgresServer]:
    """A new server in ``local_dir/postgres-<pid>``, running; stopped and removed after,
    also when the block fails. Another free port is tried when the first is taken
    between choosing it and starting the server."""
    data_dir = local_dir / f"postgres-{os.getpid()}"
    shutil.rmtree(data_dir, ignore_errors=True)
    server = PostgresServer(data_dir, free_port())
    try:
        server.init()
        for attempt in range(attempts):
            try:
                server.start()
                break
            except RuntimeError:
                if attempt == attempts - 1:
                    raise
                server.port = free_port()
        yield server
    finally:
        try:
            if data_dir.exists() and server.running():
                server.stop()
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)
