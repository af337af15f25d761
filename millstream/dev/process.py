"""Detached node processes: spawn, identify by pid, stop; free ports; log tails.

A pid is only trusted while its command line still names the node's properties
file, so a recycled pid of an unrelated process is never signalled.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from millstream.dev.properties import Topology
from millstream.errors import LocalClusterError

_POLL = 0.1
_CMDLINE_RETRIES = 25
#: Wait statuses of children of this process reaped by the liveness check, by pid.
_EXIT_STATUS: dict[int, int] = {}


def spawn_detached(command: Sequence[str], cwd: Path, output: Path) -> int:
    """Start ``command`` in its own session with stdout and stderr written to ``output``.

    The process outlives the caller (it is not in the caller's process group, so
    Ctrl-C in the terminal does not reach it). Returns its pid.

    Raises:
        OSError: the executable cannot be started.
    """
    with output.open("wb") as sink:
        process = subprocess.Popen(
            list(command),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    return process.pid


def is_running(pid: int, marker: str) -> bool:
    """Whether ``pid`` is alive and its command line contains ``marker``."""
    for _ in range(_CMDLINE_RETRIES):
        if not _alive(pid):
            return False
        command_line = _command_line(pid)
        if command_line:
            return marker in command_line
        # /proc/<pid>/cmdline of a starting JVM reads empty now and then (seen while
        # it maps its heap); an empty answer is no answer: look again a moment later.
        time.sleep(0.02)
    return False


def stop(pids: Iterable[int], timeout: float, *, kill: bool = False) -> list[int]:
    """Signal ``pids`` (SIGTERM, or SIGKILL when ``kill``) and wait up to ``timeout`` seconds.

    Processes still alive after the timeout get SIGKILL. Blocks until all are gone
    (bounded: SIGKILL cannot be refused). Returns the pids that had to be killed.
    """
    pending = [pid for pid in pids if _signal(pid, signal.SIGKILL if kill else signal.SIGTERM)]
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        pending = [pid for pid in pending if _alive(pid)]
        if pending:
            time.sleep(_POLL)
    killed = [pid for pid in pending if _signal(pid, signal.SIGKILL)]
    kill_deadline = time.monotonic() + 10.0
    while killed and any(_alive(p) for p in killed) and time.monotonic() < kill_deadline:
        time.sleep(_POLL)
    return killed


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Whether another socket holds ``host:port`` (bound or listening)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # Like the JVM's server sockets, so a port in TIME_WAIT does not count as taken.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def exit_reason(pid: int) -> str | None:
    """How ``pid`` ended ("exit code 1", "signal SIGKILL") if it was a reaped child, else None."""
    status = _EXIT_STATUS.get(pid)
    if status is None:
        return None
    if os.WIFSIGNALED(status):
        return f"signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"


def accepts_connections(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def tail_text(text: str, count: int, indent: str = "    ") -> str:
    """The last ``count`` non-blank lines of ``text``, indented."""
    lines = [line for line in text.splitlines() if line.strip()]
    return "\n".join(indent + line for line in lines[-count:])


def tail_file(path: Path, count: int, indent: str = "    ") -> str:
    """The last ``count`` non-blank lines of the file at ``path`` ("" if it is missing)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return tail_text(text, count, indent)


def _signal(pid: int, sig: signal.Signals) -> bool:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def _alive(pid: int) -> bool:
    # A child of this process that exited stays a zombie (and answers kill 0) until
    # reaped: reap it here. For processes started by another command this is a no-op.
    try:
        reaped, status = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            _EXIT_STATUS[pid] = status
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def _command_line(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        return raw.replace(b"\0", b" ").decode("utf-8", errors="replace")
    except FileNotFoundError:
        if Path("/proc/self").exists():
            return None
    except OSError:
        return None
    # No /proc (macOS): ask ps.
    result = subprocess.run(
        ["ps", "-p", str(pid), "-o", "command="],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or None


def check_ports(topology: Topology, nodes: list[int], host: str) -> None:
    """Raise LocalClusterError naming the ports of ``nodes`` another process holds on ``host``."""
    taken = [
        f"{port} ({role} of node {node})"
        for node in nodes
        for role, port in (
            ("broker", topology.broker_port(node)),
            ("controller", topology.controller_port(node)),
        )
        if port_in_use(port, host)
    ]
    if taken:
        noun, verb = ("ports", "are") if len(taken) > 1 else ("port", "is")
        raise LocalClusterError(
            f"{noun} {', '.join(taken)} on {host} {verb} in use by another process; "
            "stop it or move the local cluster with MILLSTREAM_DEV_PORT=<port> "
            "(node i uses that port + 2*(i-1) and the one after it)"
        )
