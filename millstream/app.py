"""The App: where an application declares its topics and pipelines, and runs them."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Literal, ParamSpec, TypeVar, overload

from millstream.config import Settings, load_settings
from millstream.errors import ConfigurationError
from millstream.processors.handlers import ProcessorContext, ProcessorStep, Record, Table
from millstream.processors.state.manager import StoreKind
from millstream.processors.stream import Stream
from millstream.processors.tables import GlobalTable
from millstream.processors.tasks.client import TaskClient, TaskHandle
from millstream.processors.tasks.definition import (
    DEFAULT_PARTITIONS,
    TASK_MODES,
    Task,
    TaskMode,
    call_by_name,
    validate_task,
)
from millstream.processors.tasks.periodic import Periodic, misfire_grace_ms, register_periodic
from millstream.processors.tasks.schedule import make_schedule
from millstream.processors.tasks.wiring import register_task
from millstream.processors.topology import Topology
from millstream.processors.worker import Worker
from millstream.processors.worker_config import WorkerConfig, WorkerStats
from millstream.serde import SerdeSpec
from millstream.topics import Topic, declare_topic

Guarantee = Literal["at_least_once", "exactly_once"]
GroupProtocol = Literal["auto", "consumer", "classic"]

ProcessorFn = Callable[[Record, ProcessorContext], None]
P = ParamSpec("P")
R = TypeVar("R")

_APP_ID = re.compile(r"^[A-Za-z0-9._-]{1,200}$")


def seconds(value: float | timedelta, setting: str) -> float:
    """A duration in seconds from a number of seconds or a timedelta; must be positive."""
    result = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if result <= 0:
        raise ConfigurationError(setting, f"must be a positive duration, got {value!r}")
    return result


class App:
    """A millstream application: topics, streams and the workers that run them.

    ``app_id`` names the consumer group and prefixes the app's internal topics
    (``{app_id}-dlq``). Connection settings come from ``MILLSTREAM_*`` environment
    variables unless given here.

    Raises:
        ConfigurationError: a setting is invalid; the message names it.
    """

    def __init__(
        self,
        app_id: str,
        *,
        bootstrap_servers: str | None = None,
        processing_guarantee: Guarantee = "at_least_once",
        commit_interval: float | timedelta = 1.0,
        transaction_timeout: float | timedelta = 10.0,
        shutdown_timeout: float | timedelta = 30.0,
        batch_size: int = 5000,
        group_protocol: GroupProtocol = "auto",
        auto_create_topics: bool | None = None,
        consumer_config: dict[str, Any] | None = None,
        producer_config: dict[str, Any] | None = None,
        settings: Settings | None = None,
        task_mode: TaskMode = "ordered",
    ) -> None:
        if not _APP_ID.match(app_id):
            raise ConfigurationError("app_id", f"{app_id!r} must be 1-200 of [A-Za-z0-9._-]")
        if processing_guarantee not in ("at_least_once", "exactly_once"):
            raise ConfigurationError(
                "processing_guarantee",
                f"{processing_guarantee!r}: use 'at_least_once' or 'exactly_once'",
            )
        if batch_size < 1:
            raise ConfigurationError("batch_size", "must be at least 1")
        if group_protocol not in ("auto", "consumer", "classic"):
            raise ConfigurationError("group_protocol", "must be 'auto', 'consumer' or 'classic'")
        if task_mode not in TASK_MODES:
            raise ConfigurationError(
                "task_mode", f"must be 'ordered' or 'queue', not {task_mode!r}"
            )
        #: The delivery mode of tasks declared without ``mode=`` (docs/tasks.md).
        self.task_mode: TaskMode = task_mode
        overrides = {
            "bootstrap_servers": bootstrap_servers,
            "auto_create_topics": auto_create_topics,
        }
        self.settings = settings or load_settings(**overrides)
        self.app_id = app_id
        self.processing_guarantee = processing_guarantee
        self.worker_config = WorkerConfig(
            commit_interval=seconds(commit_interval, "commit_interval"),
            exactly_once=processing_guarantee == "exactly_once",
            transaction_timeout=seconds(transaction_timeout, "transaction_timeout"),
            shutdown_timeout=seconds(shutdown_timeout, "shutdown_timeout"),
            batch_size=batch_size,
            group_protocol=group_protocol,
            consumer_config=dict(consumer_config or {}),
            producer_config=dict(producer_config or {}),
        )
        self.topology = Topology(app_id)
        self._tables: dict[str, Table] = {}
        self._table_sources: dict[str, str] = {}
        self._task_client: TaskClient | None = None

    def topic(
        self,
        name: str,
        *,
        partitions: int | None = None,
        key_serde: SerdeSpec = "str",
        value_serde: SerdeSpec = "json",
        replication: int | None = None,
        config: dict[str, str] | None = None,
    ) -> Topic:
        """Declare a topic. Without ``partitions`` it must exist; with them it is created
        if missing."""
        topic = declare_topic(
            name,
            partitions=partitions,
            key_serde=key_serde,
            value_serde=value_serde,
            replication=replication,
            config=config,
        )
        return self.topology.declare(topic)

    def stream(
        self, topic: Topic | str, *, timestamp: Callable[[Any], int] | None = None
    ) -> Stream:
        """A stream of the records of ``topic``; chain operations on it to build a pipeline.

        Event time is the Kafka record timestamp, or ``timestamp(value)`` (epoch ms) if given.
        """
        return self.topology.stream(self._topic(topic), timestamp)

    def global_table(self, topic: Topic | str, *, name: str | None = None) -> GlobalTable:
        """A table of the latest value per key of ``topic`` (ideally compacted), held on
        every worker and kept current while it runs. Join streams to it with
        :meth:`Stream.join`."""
        table = GlobalTable(self._topic(topic), name)
        self.topology.global_tables.append(table)
        return table

    def table(self, name: str, *, backend: StoreKind = "memory") -> Table:
        """Declare a key-value table for :meth:`processor` functions.

        It is partitioned like the input of the processor that uses it, kept in
        ``"memory"`` or in ``"rocksdb"`` (``backend``, see docs/state.md), and backed by
        the compacted changelog topic ``{app_id}-{name}-changelog``.

        Raises:
            ConfigurationError: the backend is unknown, or the table is declared twice.
        """
        if backend not in ("memory", "rocksdb"):
            raise ConfigurationError("backend", f"must be 'memory' or 'rocksdb', not {backend!r}")
        if name in self._tables:
            raise ConfigurationError("table", f"table {name!r} is declared twice")
        self._tables[name] = Table(self.topology.unique_name(name), backend)
        return self._tables[name]

    def processor(
        self, topic: Topic | str, *, tables: list[Table | str] | None = None
    ) -> Callable[[ProcessorFn], ProcessorFn]:
        """Register ``fn(record, ctx)`` to run for every record of ``topic``.

        Raises:
            ConfigurationError: a table is unknown or already used with another topic.
        """
        source = self._topic(topic)

        def register(fn: ProcessorFn) -> ProcessorFn:
            attached = [self._attach_table(t, source.name) for t in tables or []]
            step = ProcessorStep(fn, source.name, attached)
            self.topology.add_store(step)
            root = self.topology.stream(source)
            root._then(step)  # noqa: SLF001 - the App builds pipelines like the DSL does
            return fn

        return register

    @overload
    def task(self, name: Callable[P, R]) -> Task[P, R]: ...

    @overload
    def task(
        self,
        name: str | None = None,
        *,
        topic: str | None = None,
        partitions: int | None = None,
        retries: int = 3,
        backoff: float | timedelta = 1.0,
        max_backoff: float | timedelta = 600,
        retry_on: tuple[type[BaseException], ...] = (Exception,),
        timeout: float | timedelta | None = None,
        concurrency: int = 16,
        mode: TaskMode | None = None,
    ) -> Callable[[Callable[P, R]], Task[P, R]]: ...

    def task(
        self,
        name: str | Callable[P, R] | None = None,
        *,
        topic: str | None = None,
        partitions: int | None = None,
        retries: int = 3,
        backoff: float | timedelta = 1.0,
        max_backoff: float | timedelta = 600,
        retry_on: tuple[type[BaseException], ...] = (Exception,),
        timeout: float | timedelta | None = None,
        concurrency: int = 16,
        mode: TaskMode | None = None,
    ) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
        """Register a function as a task (docs/tasks.md): ``fn.send(...)`` publishes it
        to ``topic`` (default ``{app_id}-task-{name}``) for the app's workers to run.

        Failed attempts are retried ``retries`` times after an exponential ``backoff``
        (capped at ``max_backoff``, plus up to 10% jitter) when the exception is one of
        ``retry_on``; then the task goes to ``{app_id}-dlq``. ``timeout`` bounds an
        attempt; ``concurrency`` bounds the tasks of this name running at once per
        partition (per worker in queue mode). Tasks with the same key run in order.

        ``mode`` (default the App's ``task_mode``): ``"ordered"`` reads the topic with
        the app's consumer group; ``"queue"`` with its share group ``{app_id}-tasks``,
        so any number of workers share even one partition, in no promised order.

        Raises:
            ConfigurationError: an option is invalid, or the name is taken.
        """
        if callable(name):
            return self.task()(name)

        def register(fn: Callable[P, R]) -> Task[P, R]:
            task_name = name if isinstance(name, str) else str(getattr(fn, "__name__", ""))
            policy, limit = validate_task(
                task_name,
                retries=retries,
                backoff=backoff,
                max_backoff=max_backoff,
                retry_on=retry_on,
                timeout=timeout,
                concurrency=concurrency,
                partitions=partitions,
                mode=mode or self.task_mode,
            )
            task = Task(
                fn,
                self._tasks,
                name=task_name,
                topic=topic or f"{self.app_id}-task-{task_name}",
                partitions=partitions or DEFAULT_PARTITIONS,
                policy=policy,
                timeout=limit,
                concurrency=concurrency,
                mode=mode or self.task_mode,
            )
            register_task(self.topology, task)
            return task

        return register

    def periodic(
        self,
        name: str | None = None,
        *,
        every: float | timedelta | None = None,
        cron: str | None = None,
        timezone: str | None = None,
        catch_up: bool = True,
        misfire_grace: float | timedelta | None = None,
        retries: int = 3,
        timeout: float | timedelta | None = None,
        topic: str | None = None,
    ) -> Callable[[Callable[[], R]], Task[[], R]]:
        """Run a function without arguments as a task once per period (docs/tasks.md):
        ``every`` (seconds or timedelta, periods at multiples of it since the epoch) or
        ``cron`` (5 fields, or 6 with seconds first) in ``timezone`` (default UTC).

        Each period fires once across the app's group, however many workers run,
        through rebalances and the loss of the worker running the schedule; a period
        fires late (in order) when it is at most ``misfire_grace`` (default 60 s) old.
        Older periods were missed (no worker ran the schedule): with ``catch_up``
        (default) the latest of them fires once when a worker returns, else they are
        skipped. Each firing is a task: ``retries`` and ``timeout`` apply; firings of
        one periodic task run one after another, never overlapping. Periodic tasks are
        always ordered-mode tasks, also in an App whose ``task_mode`` is ``"queue"``:
        a share group promises no order, and the schedule's guarantees rest on it.

        Raises:
            ConfigurationError: not exactly one of ``every`` and ``cron``, an invalid
                cron expression or time zone, or a function that needs arguments.
        """
        schedule = make_schedule(every, cron, timezone)
        grace = misfire_grace_ms(
            misfire_grace.total_seconds() if isinstance(misfire_grace, timedelta) else misfire_grace
        )

        def register(fn: Callable[[], R]) -> Task[[], R]:
            task = self.task(
                name,
                topic=topic,
                partitions=1,
                retries=retries,
                timeout=timeout,
                mode="ordered",
            )(fn)
            register_periodic(self.topology, Periodic(task, schedule, bool(catch_up), grace))
            return task

        return register

    def send_task(
        self,
        name: str,
        args: list[Any] | tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
        *,
        key: str | bytes | None = None,
        delay: float | timedelta | None = None,
        task_id: str | None = None,
        topic: str | None = None,
    ) -> TaskHandle[Any]:
        """Publish the task ``name`` without its function (to ``topic``, default
        ``{app_id}-task-{name}``); returns its handle at once.

        Raises:
            TaskArgumentsError: the arguments are not JSON (or, for a task this app
                defines, do not fit its signature).
        """
        known = self.topology.tasks.get(name)
        if known is not None and topic in (None, known.topic):
            call = known.options(key=key, delay=delay, task_id=task_id)
            return call.send(*(args or ()), **(kwargs or {}))
        return call_by_name(
            self._tasks(),
            name,
            topic or f"{self.app_id}-task-{name}",
            args,
            kwargs,
            key,
            delay,
            task_id,
        )

    def _tasks(self) -> TaskClient:
        """The client that publishes this app's tasks, started on first use."""
        if self._task_client is None:
            self._task_client = TaskClient(self.app_id, self.settings)
        return self._task_client

    def _attach_table(self, table: Table | str, source: str) -> Table:
        name = table if isinstance(table, str) else table.name
        if name not in self._tables:
            raise ConfigurationError("tables", f"table {name!r} was not declared with app.table")
        owner = self._table_sources.setdefault(name, source)
        if owner != source:
            raise ConfigurationError(
                "tables", f"table {name!r} is partitioned like {owner!r}, not {source!r}"
            )
        return self._tables[name]

    def _topic(self, topic: Topic | str) -> Topic:
        if isinstance(topic, Topic):
            return self.topology.declare(topic)
        return self.topology.topics.get(topic) or self.topic(topic)

    def worker(self) -> Worker:
        """A worker for this app, not yet started."""
        if not self.topology.sources:
            raise ConfigurationError("app", f"app {self.app_id!r} has no streams to run")
        return Worker(self.topology, self.settings, self.worker_config)

    def run(self) -> WorkerStats:
        """Run one worker in this process until SIGTERM/SIGINT; returns its counters."""
        return self.worker().run()
