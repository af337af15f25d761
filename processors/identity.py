"""A worker's stable identity on its machine, for transactional ids.

Exactly-once needs each worker's transactional id to survive a restart: a worker
restarted after kill -9 then fences its predecessor and aborts the transaction
it left open, instead of leaving downstream readers waiting for that
transaction to time out. The id is ``{app_id}-{machine}-{slot}``: the machine
part is a UUID kept in the state directory, the slot is the lowest number whose
lock file no live process holds.
"""

from __future__ import annotations

import fcntl
import os
import uuid
from pathlib import Path
from typing import IO


class WorkerSlot:
    """An exclusive slot number among the workers of one app sharing a state directory."""

    def __init__(self, state_dir: Path, app_id: str) -> None:
        self.directory = state_dir / app_id
        self.directory.mkdir(parents=True, exist_ok=True)
        self.machine = self._machine_id()
        self.number, self._lock = self._claim()
        self.transactional_id = f"{app_id}-{self.machine}-{self.number}"

    def _machine_id(self) -> str:
        path = self.directory / "instance-id"
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            candidate = uuid.uuid4().hex[:12]
            temporary = path.with_suffix(f".{os.getpid()}")
            temporary.write_text(candidate)
            try:
                os.link(temporary, path)  # first writer wins, atomically
            except FileExistsError:
                pass
            finally:
                temporary.unlink()
            return path.read_text().strip()

    def _claim(self) -> tuple[int, IO[str]]:
        number = 0
        while True:
            handle = (self.directory / f"slot-{number}.lock").open("w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                number += 1
                continue
            handle.write(str(os.getpid()))
            handle.flush()
            return number, handle

    def release(self) -> None:
        if not self._lock.closed:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
