"""The live fraud demo behind ``scripts/demo``: a stream, workers, a dashboard, a summary.

    python -m examples.fraud.live [--rate 1000] [--seconds 60] [--workers 2]
                                  [--kill-one-after S] [--port 8050 | --no-dashboard]
                                  [--dsn DSN] [--keep] [--summary-json PATH]

1. starts a PostgreSQL server of its own (Debian's packages, :mod:`millstream.dev.postgres`;
   ``--dsn`` uses yours instead, whose ``scores`` and ``alerts`` tables it empties);
2. creates this run's topics (a random suffix keeps runs apart) and gives the
   detectors' consumer group a short session timeout (see :func:`tune_group`);
3. starts the dashboard (``millstream dashboard``, when this millstream has it) and
   prints its URL, then the detector workers (:mod:`examples.fraud.detectors`), one
   process each, and waits until they are ready;
4. publishes the merchant blocklist and a warm-up of ordinary purchases (the card
   profiles' history), waits until they are scored, then streams transactions at
   ``--rate`` for ``--seconds`` (``--kill-one-after S``: ``kill -9`` of one worker
   S seconds in);
5. waits until every transaction has its row in PostgreSQL, and prints the summary
   (:mod:`examples.fraud.live_report`); ``--summary-json`` writes it as JSON too.

Unless ``--keep``, the run's topics and consumer groups are deleted at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
from rich.console import Console

from examples.fraud.detectors import PARTITIONS, FraudConfig
from examples.fraud.live_report import (
    LiveSummary,
    print_summary,
    read_labels,
    read_stats,
    summarize,
)
from examples.fraud.processes import (
    ChildProcess,
    WorkerProcess,
    dashboard_available,
    start_dashboard,
    wait_until,
)
from examples.fraud.publishing import LiveStream
from examples.fraud.stream import LiveGenerator
from examples.fraud.tables import ensure_tables
from millstream.config import Settings, load_settings
from millstream.dev.postgres import free_port, running_postgres
from millstream.errors import MillstreamError
from millstream.kafka import TopicAdmin, TopicSpec, make_admin
from millstream.kafka.group_config import GroupConfig, broker_config
from millstream.producers import Publisher

console = Console()


@dataclass(frozen=True)
class LiveOptions:
    rate: float = 1000.0
    seconds: float = 60.0
    workers: int = 2
    seed: int = 0
    warm_up: int = 5
    kill_after: float | None = None
    port: int | None = 8050  # None: no dashboard
    session_timeout_ms: int = 600
    heartbeat_ms: int = 150
    dsn: str | None = None
    keep: bool = False
    summary_json: Path | None = None


def run_config(settings: Settings, run_id: str, dsn: str) -> FraudConfig:
    return FraudConfig(
        app_id=f"fraud-live-{run_id}",
        transactions=f"transactions-{run_id}",
        alerts=f"fraud-alerts-{run_id}",
        blocklist=f"merchant-blocklist-{run_id}",
        dsn=dsn,
        stats_dir=str(settings.local_dir / f"fraud-live-{run_id}" / "stats"),
    )


def tune_group(settings: Settings, group: str, session_ms: int, heartbeat_ms: int) -> str:
    """Give ``group`` a short session timeout, so a killed worker's partitions move to
    the others sooner; the broker's minimum when it refuses less. Says what it set."""
    wanted = {
        "consumer.session.timeout.ms": str(session_ms),
        "consumer.heartbeat.interval.ms": str(heartbeat_ms),
    }
    config = GroupConfig(settings, group)
    if config.set(wanted):
        # The broker's minimums are higher than asked for: take them.
        minimums = broker_config(
            settings,
            ["group.consumer.min.session.timeout.ms", "group.consumer.min.heartbeat.interval.ms"],
        )
        wanted = {
            "consumer.session.timeout.ms": minimums["group.consumer.min.session.timeout.ms"],
            "consumer.heartbeat.interval.ms": minimums["group.consumer.min.heartbeat.interval.ms"],
        }
        refused = config.set(wanted)
        if refused:
            raise next(iter(refused.values()))
    return (
        f"group session timeout {wanted['consumer.session.timeout.ms']} ms, "
        f"heartbeat {wanted['consumer.heartbeat.interval.ms']} ms"
    )


def scored(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return int(conn.execute("SELECT count(*) FROM scores").fetchone()[0])  # type: ignore[index]


def prepare(settings: Settings, config: FraudConfig, options: LiveOptions) -> str:
    ensure_tables(config.dsn)
    with psycopg.connect(config.dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE scores, alerts")
    keep = {"retention.ms": str(24 * 3600 * 1000)}
    TopicAdmin(settings).create(
        [
            TopicSpec(config.transactions, PARTITIONS, config=keep),
            TopicSpec(config.alerts, PARTITIONS, config=keep),
            TopicSpec(config.blocklist, 1, config={"cleanup.policy": "compact"}),
        ]
    )
    return tune_group(settings, config.app_id, options.session_timeout_ms, options.heartbeat_ms)


def child_env(settings: Settings, config: FraudConfig) -> dict[str, str]:
    return {
        **os.environ,
        "MILLSTREAM_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "FRAUD_APP_ID": config.app_id,
        "FRAUD_TRANSACTIONS_TOPIC": config.transactions,
        "FRAUD_ALERTS_TOPIC": config.alerts,
        "FRAUD_BLOCKLIST_TOPIC": config.blocklist,
        "FRAUD_POSTGRES_DSN": config.dsn,
        "FRAUD_STATS_DIR": config.stats_dir,
    }


def stream(
    settings: Settings, config: FraudConfig, options: LiveOptions, workers: list[WorkerProcess]
) -> int:
    """Blocklist, warm-up, then the timed stream (killing a worker on the way)."""
    with Publisher(settings=settings) as publisher:
        live = LiveStream(publisher, LiveGenerator(options.seed), config)
        live.open_blocklist()
        warm = live.warm_up(options.warm_up)
        console.print(f"warm-up: {warm:,} ordinary purchases, waiting until they are scored")
        wait_until(lambda: scored(config.dsn) >= warm, 300, "scoring the warm-up")

        def report(elapsed: float, counts: object) -> None:
            if options.kill_after is not None and elapsed >= options.kill_after:
                victim = workers[0]
                if victim.alive():
                    victim.kill()
                    console.print(f"[bold red]kill -9[/] {victim.name} (pid {victim.pid})")
            if int(elapsed) % 10 == 0:
                console.print(f"{elapsed:4.0f} s: {live.counts.transactions:,} transactions")

        console.print(f"streaming at {options.rate:g} tx/s for {options.seconds:g} s")
        counts = live.run(options.rate or None, options.seconds, on_second=report)
    return counts.transactions


def run_live(settings: Settings, options: LiveOptions) -> LiveSummary:
    run_id = uuid.uuid4().hex[:8]
    run_dir = settings.local_dir / f"fraud-live-{run_id}"
    run_dir.mkdir(parents=True, exist_ok=True)
    children: list[ChildProcess] = []
    with contextlib.ExitStack() as stack:
        dsn = options.dsn or stack.enter_context(running_postgres(settings.local_dir)).dsn
        config = run_config(settings, run_id, dsn)
        stack.callback(clean_up, settings, config, options.keep)
        stack.callback(lambda: [child.stop() for child in children])
        group_note = prepare(settings, config, options)
        console.print(f"Kafka at {settings.bootstrap_servers}; PostgreSQL: {dsn}; {group_note}")
        env = child_env(settings, config)
        ports = [free_port() for _ in range(options.workers)]
        if options.port is not None and dashboard_available():
            children.append(start_dashboard(options.port, env, run_dir, ports))
            console.print(f"[bold]dashboard: http://127.0.0.1:{options.port}/[/]")
        elif options.port is not None:
            console.print("(this millstream has no `dashboard` command: no dashboard)")
        workers = [WorkerProcess(i, env, run_dir, port) for i, port in enumerate(ports)]
        children.extend(workers)
        for worker in workers:
            wait_until(worker.ready, 180, f"{worker.name} ready (log: {worker.log})")
        console.print(f"{len(workers)} workers ready; logs and stats under {run_dir}")
        published = stream(settings, config, options, workers)
        board = read_labels(settings, config.transactions)
        console.print(f"published {published:,} transactions, warm-up included; scoring the rest")
        wait_until(lambda: scored(dsn) >= len(board.labels), 180, "every transaction scored")
        time.sleep(1.0)  # the alerts of the last checkpoint are flushed with its scores
        summary = summarize(dsn, config.transactions, board)
        summary.stats_minutes = read_stats(Path(config.stats_dir))
        summary.workers = {w.name: w.counters() if w.alive() else None for w in workers}
        summary.notes.append(group_note)
        summary.notes.append(
            "Parquet statistics are written for each minute once it is over (plus a 30 s "
            f"grace) while the workers run; files under {config.stats_dir}"
        )
        if options.kill_after is not None:
            summary.notes.append(f"one worker was killed with SIGKILL {options.kill_after:g} s in")
    return summary


def clean_up(settings: Settings, config: FraudConfig, keep: bool) -> None:
    """Delete the run's topics, consumer group and local state (unless ``keep``)."""
    if keep:
        console.print(f"kept the topics of this run: {config.transactions}, ...")
        return
    admin = TopicAdmin(settings)
    ours = [t for t in admin.list() if t.startswith((config.app_id, config.transactions))]
    ours += [config.alerts, config.blocklist]
    with contextlib.suppress(MillstreamError):
        admin.delete([t for t in ours if admin.exists(t)])
    with contextlib.suppress(Exception):
        for future in make_admin(settings).delete_consumer_groups([config.app_id]).values():
            future.result(settings.client_timeout)
    shutil.rmtree(settings.local_dir / "state" / config.app_id, ignore_errors=True)


def _arguments(argv: list[str] | None) -> LiveOptions:
    parser = argparse.ArgumentParser(prog="python -m examples.fraud.live", description=__doc__)
    parser.add_argument("--rate", type=float, default=1000.0, help="transactions/s (default 1000)")
    parser.add_argument("--seconds", type=float, default=60.0, help="stream length (default 60)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kill-one-after", type=float, default=None, metavar="S")
    parser.add_argument("--port", type=int, default=8050, help="dashboard port (default 8050)")
    parser.add_argument("--no-dashboard", action="store_true", help="run without the dashboard")
    parser.add_argument("--dsn", default=None, help="a PostgreSQL server of yours")
    parser.add_argument("--keep", action="store_true", help="keep this run's topics")
    parser.add_argument("--summary-json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.workers < 1 or args.seconds <= 0 or args.rate < 0:
        parser.error("--workers must be >= 1, --seconds > 0 and --rate >= 0")
    return LiveOptions(
        rate=args.rate,
        seconds=args.seconds,
        workers=args.workers,
        seed=args.seed,
        kill_after=args.kill_one_after,
        port=None if args.no_dashboard else args.port,
        dsn=args.dsn,
        keep=args.keep,
        summary_json=args.summary_json,
    )


def main(argv: list[str] | None = None) -> int:
    options = _arguments(argv)
    try:
        summary = run_live(load_settings(), options)
    except (MillstreamError, TimeoutError, RuntimeError, psycopg.Error) as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        return 1
    except KeyboardInterrupt:
        console.print("[bold red]interrupted[/]")
        return 130
    print_summary(console, summary)
    if options.summary_json is not None:
        options.summary_json.write_bytes(summary.to_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
