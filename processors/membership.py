"""A watch on the worker's own place in its group: does what it owns converge on
what the group coordinator wants it to own?

With the KIP-848 protocol the coordinator sets a target assignment for each member,
and the member gets there by revoking and taking partitions in steps. librdkafka's
member can stop taking those steps after a coordinator failover: in a chaos run a
member never got the revoke for partitions the coordinator had moved, and the group
sat with three input partitions owned by nobody until the run gave up. Nothing
fails in the client when that happens, so the worker looks for itself: every
:data:`CHECK_EVERY` seconds it describes its group, and when its assignment and its
target stayed apart in every check for :data:`STALL_AFTER` seconds it raises
:class:`~millstream.errors.RebalanceStalled`, and the worker commits, leaves and
joins again with a new consumer. A classic-protocol group has no target: nothing
to watch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor

from millstream.errors import KafkaError, RebalanceStalled

log = logging.getLogger("millstream.worker")

#: Seconds between two looks at the group.
CHECK_EVERY = 5.0
#: Seconds an assignment may stay away from its target before the worker rejoins.
STALL_AFTER = 45.0

Partitions = frozenset[tuple[str, int]]
#: (owned, target) of this member; None when the group does not list it (yet).
Describe = Callable[[], tuple[Partitions, Partitions | None] | None]


class AssignmentWatch:
    """Raises RebalanceStalled once a member's assignment stopped converging.

    The group is described on a thread of the watch's own, so a slow or unreachable
    coordinator never holds up the worker's loop; :meth:`check` judges the last
    answer and asks again when a check is due.
    """

    def __init__(
        self,
        describe: Describe,
        clock: Callable[[], float] = time.monotonic,
        *,
        check_every: float = CHECK_EVERY,
        stall_after: float = STALL_AFTER,
        executor: Executor | None = None,
    ) -> None:
        self._describe = describe
        self._clock = clock
        self._check_every = check_every
        self._stall_after = stall_after
        self._executor = executor or ThreadPoolExecutor(1, thread_name_prefix="millstream-watch")
        self._pending: Future[tuple[Partitions, Partitions | None] | None] | None = None
        self._next = clock() + check_every
        self._apart_since: float | None = None

    def check(self) -> None:
        """Judge the latest look at the group, and take another when one is due.

        Raises:
            RebalanceStalled: owned and target partitions differed in every look for
                ``stall_after`` seconds.
        """
        now = self._clock()
        pending = self._pending
        if pending is not None and pending.done():
            self._pending = None
            try:
                seen = pending.result()
            except KafkaError as exc:
                log.debug("could not describe the group: %s", exc)
            else:
                self._judge(seen, now)
        if self._pending is None and now >= self._next:
            self._next = now + self._check_every
            self._pending = self._executor.submit(self._describe)

    def _judge(self, seen: tuple[Partitions, Partitions | None] | None, now: float) -> None:
        if seen is None or seen[1] is None or seen[0] == seen[1]:
            self._apart_since = None
            return
        owned, target = seen[0], seen[1]
        if self._apart_since is None:
            self._apart_since = now
            return
        apart = now - self._apart_since
        if apart >= self._stall_after:
            self._apart_since = None
            raise RebalanceStalled(
                f"this worker owns {_show(owned)}, but the group coordinator's target for "
                f"it has been {_show(target)} for {apart:.0f}s"
            )

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _show(partitions: Partitions) -> str:
    if not partitions:
        return "nothing"
    return ", ".join(f"{t}[{p}]" for t, p in sorted(partitions))
