"""Periodic tasks: ``@app.periodic`` fires a task once per period across the group.

The app's one-partition schedule topic ``{app_id}-schedule`` carries no records: it
is read by the app's group only so that exactly one worker owns its partition at a
time, and that worker runs the scheduler. On the loop's punctuation (every half
second, with or without input) the :class:`ScheduleStep` finds the periods that are
due and fires each by sending a task record to the periodic task's topic. Its state,
the latest period handled per periodic task, is a store of the schedule partition
backed by the changelog ``{app_id}-schedule-changelog``, so a new owner (after a
rebalance, or after the old one was killed) goes on where the old one stopped.

A firing's task id is ``{name}@{period}`` (the period in ISO 8601, UTC), and its key is
the task's name. A period fired twice (the owner died after sending it but before
its state reached the changelog) therefore lands twice in the same partition with
the same id, and the task's completion store runs it once. With exactly-once the
state change and the task record commit in the same transaction.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from millstream.errors import ConfigurationError
from millstream.processors.assigned import AssignedPartition
from millstream.processors.operations import StatefulStep
from millstream.processors.rows import Row
from millstream.processors.state.manager import StoreSpec
from millstream.processors.tasks.definition import AnyTask
from millstream.processors.tasks.envelope import TaskEnvelope
from millstream.processors.tasks.schedule import Cron, Every, latest_before
from millstream.processors.topology import Topology
from millstream.serde import resolve_serde
from millstream.topics import Topic

log = logging.getLogger("millstream.periodic")

#: How late a period may still fire, by default: longer than a handover of the
#: schedule takes (the brokers' default consumer-group session timeout is 45 s).
DEFAULT_MISFIRE_GRACE = 60.0


@dataclass(frozen=True)
class Periodic:
    """A periodic task: its task, its schedule and its policy for missed periods."""

    task: AnyTask
    schedule: Every | Cron
    catch_up: bool
    misfire_grace_ms: int


@dataclass(frozen=True)
class Plan:
    """What one tick of the scheduler does for one periodic task."""

    #: Periods to fire now, oldest first.
    fire: list[int]
    #: The latest period handled (fired or skipped) once they are: the new state.
    handled: int
    #: The latest period missed by more than the misfire grace, if any.
    missed: int | None = None


def plan(periodic: Periodic, handled: int | None, now: int) -> Plan:
    """The periods of ``periodic`` to fire at ``now`` (epoch ms) when every period up to
    ``handled`` was handled already (None: never, the schedule starts now).

    Every period later than ``handled`` and at most ``misfire_grace`` old fires, late if
    need be. Older ones were missed (no worker owned the schedule for that long): with
    ``catch_up`` the latest of them fires once, else they are skipped.
    """
    if handled is None:
        return Plan([], now)
    schedule, cutoff = periodic.schedule, now - periodic.misfire_grace_ms
    missed = None
    period = schedule.next_after(handled)
    if period is not None and period < cutoff:
        missed = latest_before(schedule, handled, cutoff)
        period = schedule.next_after(cutoff - 1)
    fire = [missed] if missed is not None and periodic.catch_up else []
    while period is not None and period <= now:
        fire.append(period)
        period = schedule.next_after(period)
    latest = max(fire[-1] if fire else handled, handled if missed is None else missed)
    return Plan(fire, latest, missed)


def firing_id(name: str, period: int) -> str:
    """The task id of the firing of periodic task ``name`` for ``period`` (epoch ms)."""
    moment = datetime.fromtimestamp(period / 1000, UTC)
    return f"{name}@{moment.isoformat(timespec='milliseconds')}"


class ScheduleStep(StatefulStep):
    """Reads the schedule topic and, where it owns its partition, fires periods."""

    def __init__(self, topic: Topic, store_name: str) -> None:
        super().__init__()
        self.topic = topic
        self.source = topic.name
        self.store_name = store_name
        self.name = f"schedule({topic.name})"
        self.periodics: dict[str, Periodic] = {}

    def store_specs(self) -> list[StoreSpec]:
        return [StoreSpec(self.store_name, self.source, "memory")]

    def process(self, rows: list[Row], part: AssignedPartition) -> None:
        """Records written to the schedule topic mean nothing; they are ignored."""

    def open_partition(self, part: AssignedPartition) -> None:
        """This worker owns the schedule now (its state is restored, or rolled back after
        an aborted transaction): say so."""
        schedules = ", ".join(f"{name} ({p.schedule})" for name, p in self.periodics.items())
        log.info("this worker runs the schedule: %s", schedules)

    def punctuate(self, part: AssignedPartition, now: float) -> None:
        """Fire what is due now (``now`` is monotonic; periods are wall-clock times)."""
        store = part.store(self.store_name)
        wall = int(time.time() * 1000)
        for name, periodic in self.periodics.items():
            handled = store.get(name)
            step = plan(periodic, handled, wall)
            if step.missed is not None:
                log.warning(
                    "periodic task %s: periods up to %s were missed by more than %.0fs; %s",
                    name,
                    firing_id(name, step.missed),
                    periodic.misfire_grace_ms / 1000,
                    "firing the latest once" if periodic.catch_up else "skipped (catch_up=False)",
                )
            for period in step.fire:
                self._fire(periodic, period, wall)
            if step.handled != handled:
                store.set(name, step.handled)

    def _fire(self, periodic: Periodic, period: int, now: int) -> None:
        assert self.collector is not None, "step used before bind()"
        task = periodic.task
        envelope = TaskEnvelope(firing_id(task.name, period), task.name, [], {}, None, now)
        self.collector.send(task.topic, task.name.encode(), envelope.encode(), now)
        log.debug("fired %s", envelope.id)


def schedule_topic(app_id: str) -> str:
    """The topic whose one partition's owner runs the app's scheduler."""
    return f"{app_id}-schedule"


def register_periodic(topology: Topology, periodic: Periodic) -> None:
    """Add ``periodic`` (its task registered already) to the scheduler of ``topology``.

    Raises:
        ConfigurationError: the function takes arguments a firing cannot give.
    """
    task = periodic.task
    try:
        task.signature.bind()
    except TypeError as exc:
        raise ConfigurationError(
            "periodic", f"{task.name!r} must be callable without arguments: {exc}"
        ) from exc
    _schedule_step(topology).periodics[task.name] = periodic


def _schedule_step(topology: Topology) -> ScheduleStep:
    name = schedule_topic(topology.app_id)
    for root in topology.sources.get(name, []):
        for child in root.children:
            if isinstance(child, ScheduleStep):
                return child
    raw = resolve_serde("bytes")
    topic = topology.declare(Topic(name, 1, key_serde=raw, value_serde=raw))
    step = ScheduleStep(topic, topology.unique_name("schedule"))
    topology.stream(topic)._then(step)  # noqa: SLF001 - built as the DSL builds pipelines
    topology.add_store(step)
    return step


def misfire_grace_ms(value: float | None) -> int:
    """The misfire grace in ms, from seconds (None: the default).

    Raises:
        ConfigurationError: it is under a second.
    """
    seconds = DEFAULT_MISFIRE_GRACE if value is None else value
    if seconds < 1:
        raise ConfigurationError("misfire_grace", f"must be at least one second, got {value!r}")
    return round(seconds * 1000)
