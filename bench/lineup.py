"""Who runs in which scenario, in which virtualenv, and what each result is compared with."""

from __future__ import annotations

from dataclasses import dataclass

#: The stream-processing scenarios: what ``scripts/bench`` runs when given no scenario.
STREAM_SCENARIOS = ("passthrough", "stateless", "window", "restore")
#: ``tasks`` (millstream's task queue against Celery) and ``sinks`` (writing a topic into
#: PostgreSQL and Parquet files, millstream's sinks against Quix Streams') run only when named.
SCENARIOS = (*STREAM_SCENARIOS, "tasks", "sinks")
#: The names ``--contenders`` accepts: one per implementation.
FAMILIES = ("plain", "millstream", "quix", "faust", "celery")


@dataclass(frozen=True)
class Contender:
    """One row of the table: an implementation with its guarantee and state store."""

    name: str
    family: str
    label: str
    module: str
    guarantee: str = "at_least_once"
    store: str = "memory"
    #: A task-queue worker's pool and its size (Celery's ``--pool``, ``--concurrency``).
    pool: str = ""
    concurrency: int = 0
    #: The sinks scenario: the destination, one of ``SINK_DESTINATIONS``.
    sink: str = ""
    #: The tasks scenario: millstream's task mode (``ordered`` or ``queue``) and how many
    #: worker processes share its topic.
    task_mode: str = "ordered"
    workers: int = 1

    @property
    def exactly_once(self) -> bool:
        return self.guarantee == "exactly_once"


PLAIN = Contender(
    "plain", "plain", "plain confluent-kafka loop", "bench.contenders.plain_confluent"
)
MILLSTREAM = Contender("millstream", "millstream", "millstream", "bench.contenders.millstream_app")
QUIX = Contender("quix", "quix", "Quix Streams", "bench.contenders.quix")
FAUST = Contender("faust", "faust", "faust-streaming", "bench.contenders.faust_app")


def _millstream(guarantee: str, store: str) -> Contender:
    short = "eos" if guarantee == "exactly_once" else "alos"
    words = "exactly-once" if guarantee == "exactly_once" else "at-least-once"
    label = f"millstream {words}, {'RocksDB' if store == 'rocksdb' else 'memory'}"
    return Contender(
        f"millstream-{short}-{store}", "millstream", label, MILLSTREAM.module, guarantee, store
    )


def _quix(guarantee: str) -> Contender:
    short = "eos" if guarantee == "exactly_once" else "alos"
    words = "exactly-once" if guarantee == "exactly_once" else "at-least-once"
    return Contender(
        f"quix-{short}", "quix", f"Quix Streams {words}, RocksDB", QUIX.module, guarantee, "rocksdb"
    )


WINDOW = (
    _millstream("at_least_once", "memory"),
    _millstream("at_least_once", "rocksdb"),
    _millstream("exactly_once", "memory"),
    _millstream("exactly_once", "rocksdb"),
    _quix("at_least_once"),
    _quix("exactly_once"),
    Contender("faust", "faust", "faust-streaming at-least-once, memory", FAUST.module),
)
RESTORE = (
    Contender(
        "millstream-rocksdb",
        "millstream",
        "millstream restore, RocksDB",
        MILLSTREAM.module,
        store="rocksdb",
    ),
    Contender(
        "millstream-memory",
        "millstream",
        "millstream restore, memory",
        MILLSTREAM.module,
        store="memory",
    ),
)

LINEUP: dict[str, tuple[Contender, ...]] = {
    "passthrough": (PLAIN, MILLSTREAM, QUIX, FAUST),
    "stateless": (PLAIN, MILLSTREAM, QUIX, FAUST),
    "window": WINDOW,
    "restore": RESTORE,
}


MILLSTREAM_TASKS = Contender(
    "millstream-tasks",
    "millstream",
    "millstream, 1 worker process",
    "bench.contenders.millstream_tasks",
)
#: Queue mode (a share group) with 1, 2 and 4 worker processes on a one-partition topic.
MILLSTREAM_QUEUE_TASKS = tuple(
    Contender(
        f"millstream-queue-{n}",
        "millstream",
        f"millstream queue, {n} worker{'s' if n > 1 else ''}",
        "bench.contenders.millstream_tasks",
        task_mode="queue",
        workers=n,
    )
    for n in (1, 2, 4)
)
#: Celery worker pools ``--celery-pools`` accepts.
CELERY_POOLS = ("prefork", "threads", "solo", "eventlet", "gevent")


def celery(pool: str, concurrency: int) -> Contender:
    """Celery with one worker of ``pool`` and ``concurrency`` (``ValueError`` for a pool
    not in ``CELERY_POOLS`` or a concurrency below 1)."""
    if pool not in CELERY_POOLS or concurrency < 1:
        raise ValueError(f"no Celery pool {pool}:{concurrency}")
    return Contender(
        f"celery-{pool}-{concurrency}",
        "celery",
        f"Celery {pool}, concurrency {concurrency}",
        "bench.contenders.celery_tasks",
        pool=pool,
        concurrency=concurrency,
    )


#: The sinks scenario's destinations: a PostgreSQL table appended to, one upserted by the
#: records' ``key`` field, and Parquet files in a directory.
SINK_DESTINATIONS = ("postgres-append", "postgres-upsert", "parquet")
_SINK_WORDS = {
    "postgres-append": "PostgreSQL append",
    "postgres-upsert": "PostgreSQL upsert",
    "parquet": "Parquet files",
}


def _sink(family: str, destination: str) -> Contender:
    who = "millstream" if family == "millstream" else "Quix Streams"
    module = (
        "bench.contenders.millstream_sinks"
        if family == "millstream"
        else "bench.contenders.quix_sinks"
    )
    return Contender(
        f"{family}-{destination}",
        family,
        f"{who} {_SINK_WORDS[destination]}",
        module,
        sink=destination,
    )


#: Destination by destination, millstream's row before Quix's.
SINKS = tuple(_sink(f, d) for d in SINK_DESTINATIONS for f in ("millstream", "quix"))


def lineup(
    scenario: str, families: tuple[str, ...], celery_pools: tuple[str, ...] = ()
) -> list[Contender]:
    """The contenders of ``scenario`` whose family was asked for; in ``tasks`` one Celery
    row per ``pool:concurrency`` of ``celery_pools``."""
    if scenario == "tasks":
        pools = [p.split(":", 1) for p in celery_pools]
        found = [
            MILLSTREAM_TASKS,
            *MILLSTREAM_QUEUE_TASKS,
            *(celery(pool, int(n)) for pool, n in pools),
        ]
    elif scenario == "sinks":
        found = list(SINKS)
    else:
        found = list(LINEUP[scenario])
    return [c for c in found if c.family in families]
