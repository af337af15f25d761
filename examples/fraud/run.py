"""The end-to-end fraud demo: publish, process, score.

    python -m examples.fraud.run [--transactions N] [--seed S] [--keep-topics]

1. creates a fresh transactions topic and alerts topic for this run (a random
   suffix keeps runs apart, so every run of a seed gives the same alerts);
2. publishes N generated card transactions (keyed by card, stamped with their
   event time), with a progress bar;
3. runs both apps, the stateless rules of :mod:`examples.fraud.pipeline` and the
   burst detector of :mod:`examples.fraud.bursts`, each as a worker in a thread of
   this process, until they have processed every transaction;
4. reads the alerts back and scores them against the generator's ``is_fraud``
   labels: precision, and recall per fraud pattern.

Unless ``--keep-topics`` is given, the run's topics (inputs, alerts, dead letters,
changelogs) and consumer groups are deleted at the end. Kafka is found through
``MILLSTREAM_BOOTSTRAP_SERVERS`` (default 127.0.0.1:19092, the local cluster).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import logging
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import orjson
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from examples.fraud import bursts, pipeline
from examples.fraud.report import AlertLog, AppRun, DemoRun, GroundTruth, print_summary
from millstream import App
from millstream.config import Settings, load_settings
from millstream.errors import MillstreamError
from millstream.kafka import TopicAdmin, TopicPartition, TopicSpec, make_admin, make_consumer
from millstream.processors.worker import Worker
from millstream.producers import ProducerRecord, Publisher
from millstream.producers.generators import TransactionGenerator

console = Console()
#: Seconds the burst detector needs, after its last record, to close its last sessions.
SESSIONS_SETTLE = (bursts.BURST_GAP + bursts.IDLE_TIMEOUT).total_seconds() + 1.5


class DemoError(Exception):
    """The demo cannot go on; the message says why."""


@dataclass(frozen=True)
class DemoTopics:
    """The names one run uses: its topics, and the ids of its two apps."""

    transactions: str
    alerts: str
    rules_app: str
    bursts_app: str

    @classmethod
    def for_run(cls, run_id: str) -> DemoTopics:
        return cls(
            f"transactions-{run_id}",
            f"fraud-alerts-{run_id}",
            f"fraud-demo-{run_id}",
            f"fraud-demo-bursts-{run_id}",
        )


def publish_transactions(settings: Settings, topic: str, count: int, seed: int) -> GroundTruth:
    """Publish ``count`` generated transactions, recording their labels as they go."""
    truth = GroundTruth()

    def records() -> Iterator[ProducerRecord]:
        for tx in itertools.islice(TransactionGenerator(seed), count):
            truth.record(tx)
            yield ProducerRecord(tx, key=tx["card_id"], timestamp=tx["timestamp"])

    with _progress() as progress, Publisher(settings=settings, client_id="fraud-demo") as pub:
        task = progress.add_task("publishing transactions", total=count)
        counts = pub.publish_many(
            topic, records(), on_progress=lambda done: progress.update(task, completed=done)
        )
    if counts.failed:
        raise DemoError(f"{counts.failed} transactions failed delivery: {counts.first_error}")
    return truth


class WorkerThread:
    """One app's worker, run in a daemon thread of this process."""

    def __init__(self, label: str, app: App) -> None:
        self.label = label
        self.app = app
        self.worker: Worker = app.worker()
        self.error: BaseException | None = None
        self.first_record: float | None = None
        self.last_record: float | None = None
        self._thread = threading.Thread(target=self._run, name=f"worker-{label}", daemon=True)

    def _run(self) -> None:
        try:
            self.worker.run(install_signal_handlers=False)
        except BaseException as exc:
            self.error = exc

    def start(self) -> None:
        self._thread.start()

    def observe(self, total: int) -> int:
        """Records consumed so far; notes when the first and the last input arrived."""
        seen = self.worker.stats.records_in
        now = time.monotonic()
        if seen and self.first_record is None:
            self.first_record = now
        if seen >= total and self.last_record is None:
            self.last_record = now
        if self.error is not None:
            raise DemoError(f"the {self.label} worker failed: {self.error}") from self.error
        if not self._thread.is_alive() and seen < total:
            raise DemoError(f"the {self.label} worker stopped after {seen} records")
        return seen

    def finish(self) -> AppRun:
        """Wait for the worker to checkpoint and leave its group (call ``worker.stop()`` first)."""
        self._thread.join(60)
        if self.error is not None:
            raise DemoError(f"the {self.label} worker failed: {self.error}") from self.error
        start = self.first_record or 0.0
        seconds = (self.last_record or time.monotonic()) - start
        return AppRun(self.label, self.app.app_id, self.worker.stats, seconds)


def process(workers: list[WorkerThread], total: int, timeout: float) -> list[AppRun]:
    """Run the workers until each has consumed ``total`` records, at most ``timeout`` s."""
    deadline = time.monotonic() + timeout
    try:
        with _progress() as progress:
            tasks = [progress.add_task(w.label, total=total) for w in workers]
            for worker in workers:
                worker.start()
            while True:
                done = [w.observe(total) for w in workers]
                for task, seen in zip(tasks, done, strict=True):
                    progress.update(task, completed=min(seen, total))
                if all(seen >= total for seen in done):
                    break
                if time.monotonic() > deadline:
                    raise DemoError(f"the workers did not process {total} records in {timeout:g}s")
                time.sleep(0.1)
        # Sessions close when stream time passes their end + gap; after the last record
        # the idle timeout moves stream time on with the wall clock.
        time.sleep(SESSIONS_SETTLE)
    finally:
        for worker in workers:
            worker.worker.stop()
    return [w.finish() for w in workers]


def read_alerts(settings: Settings, topic: str, timeout: float = 60.0) -> AlertLog:
    """Every alert in ``topic`` from the beginning up to its current end."""
    admin = TopicAdmin(settings)
    ends = admin.end_offsets((topic, p) for p in range(admin.describe(topic).partitions))
    pending = {p: end for (_, p), end in ends.items() if end > 0}
    consumer = make_consumer(
        settings, f"fraud-demo-reader-{uuid.uuid4().hex}", **{"group.protocol": "classic"}
    )
    alerts = AlertLog()
    deadline = time.monotonic() + timeout
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in pending])
        while pending:
            if time.monotonic() > deadline:
                raise DemoError(f"could not read the alerts of {topic} within {timeout:g}s")
            for message in consumer.consume(5000, 0.5):
                partition, offset = message.partition(), message.offset()
                if message.error() is not None or partition is None or offset is None:
                    continue
                alerts.add(orjson.loads(message.value() or b"null"))
                if offset + 1 >= pending.get(partition, 0):
                    pending.pop(partition, None)
    finally:
        consumer.close()
    return alerts


def uncommitted(settings: Settings, group: str, topic: str) -> int:
    """Records of ``topic`` beyond the offsets ``group`` committed."""
    admin = TopicAdmin(settings)
    partitions = [TopicPartition(topic, p) for p in range(admin.describe(topic).partitions)]
    ends = admin.end_offsets((topic, tp.partition) for tp in partitions)
    consumer = make_consumer(settings, group, **{"group.protocol": "classic"})
    try:
        committed = consumer.committed(partitions, timeout=settings.client_timeout)
    finally:
        consumer.close()
    return sum(ends[(topic, tp.partition)] - max(tp.offset, 0) for tp in committed)


def clean_up(settings: Settings, names: DemoTopics) -> None:
    """Delete the run's topics, consumer groups and local state."""
    admin = TopicAdmin(settings)
    app_ids = (names.rules_app, names.bursts_app)
    ours = [
        topic
        for topic in admin.list()
        if topic in (names.transactions, names.alerts)
        or any(topic.startswith(f"{app_id}-") for app_id in app_ids)
    ]
    with contextlib.suppress(MillstreamError):
        admin.delete(ours)
    with contextlib.suppress(Exception):
        for future in make_admin(settings).delete_consumer_groups(list(app_ids)).values():
            future.result(settings.client_timeout)
    for app_id in app_ids:
        shutil.rmtree(settings.local_dir / "state" / app_id, ignore_errors=True)


def run_demo(settings: Settings, count: int, seed: int, keep_topics: bool) -> DemoRun:
    names = DemoTopics.for_run(uuid.uuid4().hex[:8])
    admin = TopicAdmin(settings)
    brokers = admin.broker_count()
    console.print(f"Kafka at {settings.bootstrap_servers}, {brokers} broker(s)")
    console.print(f"this run's topics: {names.transactions} -> {names.alerts}")
    try:
        admin.create(
            [
                TopicSpec(names.transactions, pipeline.PARTITIONS, config=pipeline.TOPIC_CONFIG),
                TopicSpec(names.alerts, pipeline.PARTITIONS, config=pipeline.TOPIC_CONFIG),
            ]
        )
        started = time.monotonic()
        truth = publish_transactions(settings, names.transactions, count, seed)
        publish_seconds = time.monotonic() - started
        topics = {"transactions": names.transactions, "alerts": names.alerts}
        workers = [
            WorkerThread("rules", pipeline.build_app(names.rules_app, **topics)),
            WorkerThread("bursts", bursts.build_app(names.bursts_app, **topics)),
        ]
        runs = process(workers, count, timeout=120 + count / 2_000)
        lag = sum(uncommitted(settings, w.app.app_id, names.transactions) for w in workers)
        alerts = read_alerts(settings, names.alerts)
    finally:
        if keep_topics:
            console.print(f"kept the topics of this run: {names.transactions}, {names.alerts}")
        else:
            clean_up(settings, names)
    return DemoRun(seed, truth, publish_seconds, runs, alerts, lag)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<24}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m examples.fraud.run",
        description="Publish generated card transactions, detect fraud, score the alerts.",
    )
    parser.add_argument(
        "--transactions", "-n", type=int, default=200_000, help="transactions (default 200000)"
    )
    parser.add_argument("--seed", "-s", type=int, default=0, help="generator seed (default 0)")
    parser.add_argument(
        "--keep-topics", action="store_true", help="keep this run's topics for inspection"
    )
    args = parser.parse_args(argv)
    if args.transactions < 1:
        parser.error("--transactions must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    logging.basicConfig(
        level=logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=Console(stderr=True), show_path=False)],
    )
    try:
        run = run_demo(load_settings(), args.transactions, args.seed, args.keep_topics)
    except (MillstreamError, DemoError) as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        return 1
    except KeyboardInterrupt:
        console.print("[bold red]interrupted[/]")
        return 130
    print_summary(console, run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
