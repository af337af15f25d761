"""Run N worker processes of one app and forward signals to them.

Each child is a fresh interpreter running ``millstream worker TARGET`` with one
process, so every worker is an ordinary, independent member of the group.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from types import FrameType

log = logging.getLogger("millstream.supervisor")


def run_processes(target: str, processes: int, extra_args: list[str] | None = None) -> int:
    """Start ``processes`` workers for ``target`` (``module:attr``) and wait for all.

    SIGTERM and SIGINT are forwarded to every child. Returns 0 when all exited
    cleanly, else the first non-zero exit code.
    """
    command = [sys.executable, "-m", "millstream", "worker", target, "--processes", "1"]
    children = [
        subprocess.Popen(
            command + list(extra_args or []),
            env={**os.environ, "MILLSTREAM_WORKER_INDEX": str(index)},
        )
        for index in range(processes)
    ]
    log.info("started %d workers: %s", processes, ", ".join(str(c.pid) for c in children))

    def forward(signum: int, _frame: FrameType | None) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
    codes = [child.wait() for child in children]
    failed = [code for code in codes if code != 0]
    return failed[0] if failed else 0
