"""``scripts/bench [scenario ...] [options]``: run the benchmark and print the table.

Kafka comes from MILLSTREAM_BOOTSTRAP_SERVERS (``scripts/bench`` sets it to the local
cluster, starting it when needed). The stream scenarios run unless scenarios are named;
``tasks`` (millstream's task queue against Celery on Redis) and ``sinks`` (millstream's
PostgreSQL and Parquet sinks against Quix Streams') run when named.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from bench.environment import describe
from bench.harness import Bench
from bench.lineup import CELERY_POOLS, FAMILIES, SCENARIOS, STREAM_SCENARIOS, Contender, lineup
from bench.peers import PeerUnavailable, commit_of
from bench.redis_server import server_version
from bench.report import print_table, write_charts, write_markdown
from bench.results import Result, RunConfig
from bench.sink_report import print_sink_table, write_sink_docs
from bench.task_report import print_task_table, write_task_docs
from bench.tasks import SCENARIO as TASKS
from bench.tasks import TaskBench

ROOT = Path(__file__).resolve().parents[1]
#: Scenarios whose contenders run ``--repeat`` times: their targets compare millstream
#: with the plain loop, two runs of a few seconds each on a shared machine.
REPEATED = ("passthrough", "stateless")
#: Contenders whose first run took longer than this (s) run once.
REPEAT_UNDER = 60.0
#: millstream's sinks against Quix Streams' (bench.sinks); runs only when named.
SINKS = "sinks"
#: Runs are named by their start time (UTC): ``.local/bench/runs/<run id>``.
RUN_ID = "%Y%m%d-%H%M%S"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/bench",
        description="millstream against a plain confluent-kafka loop, Quix Streams and faust "
        "(stream scenarios), against Celery on Redis (tasks), and its sinks against Quix "
        "Streams' (sinks: PostgreSQL and Parquet).",
    )
    parser.add_argument(
        "scenarios",
        nargs="*",
        metavar="scenario",
        help=f"any of {', '.join(SCENARIOS)} (the stream scenarios: {', '.join(STREAM_SCENARIOS)})",
    )
    parser.add_argument("--records", type=int, default=1_000_000, help="input records (1M)")
    parser.add_argument("--partitions", type=int, default=12, help="input partitions (12)")
    parser.add_argument("--keys", type=int, default=10_000, help="distinct keys (10k)")
    parser.add_argument(
        "--contenders",
        default=",".join(FAMILIES),
        help=f"comma-separated subset of {','.join(FAMILIES)} (all)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="bulk runs of each passthrough and stateless contender, interleaved, "
        "throughput runs of each tasks contender, and runs of each sinks contender; the "
        "table shows the median (3; stream "
        f"contenders slower than {REPEAT_UNDER:.0f} s run once)",
    )
    parser.add_argument(
        "--tasks", type=int, default=20_000, help="tasks: no-op tasks per throughput run (20k)"
    )
    parser.add_argument(
        "--round-trips", type=int, default=500, help="tasks: sequential round trips (500)"
    )
    parser.add_argument(
        "--celery-pools",
        default="prefork:2",
        help="tasks: one Celery row per comma-separated pool:concurrency, pool one of "
        f"{', '.join(CELERY_POOLS)} (prefork:2)",
    )
    parser.add_argument(
        "--sink-records",
        type=int,
        default=500_000,
        help="sinks: records written into each destination per run (500k)",
    )
    parser.add_argument("--latency-rate", type=int, default=20_000, help="records/s (20k)")
    parser.add_argument("--latency-seconds", type=float, default=10.0, help="seconds (10)")
    parser.add_argument(
        "--time-limit",
        type=float,
        default=120.0,
        help="seconds of measurement per contender; a slower one is stopped there and its "
        "rate taken over the part it processed (120)",
    )
    parser.add_argument(
        "--millstream-ref",
        metavar="COMMIT",
        help="measure millstream as of this git commit (installed into .local/bench/) "
        "instead of the working tree",
    )
    parser.add_argument(
        "--report",
        metavar="RUN_DIR",
        type=Path,
        help="run nothing: print and write the docs from the results.json of an earlier run",
    )
    parser.add_argument("--no-docs", action="store_true", help="leave docs/benchmarks* alone")
    parser.add_argument(
        "--keep-topics", action="store_true", help="keep the run's topics and state"
    )
    args = parser.parse_args(argv)
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario {', '.join(sorted(unknown))}: use {', '.join(SCENARIOS)}")
    args.families = tuple(f.strip() for f in args.contenders.split(",") if f.strip())
    if not args.families or set(args.families) - set(FAMILIES):
        parser.error(f"--contenders takes a subset of {','.join(FAMILIES)}")
    if min(args.records, args.partitions, args.keys, args.repeat) < 1:
        parser.error("--records, --partitions, --keys and --repeat must be positive")
    if args.tasks < 1 or args.round_trips < 1 or args.sink_records < 1:
        parser.error("--tasks, --round-trips and --sink-records must be positive")
    args.pools = tuple(p.strip() for p in args.celery_pools.split(",") if p.strip())
    if not args.pools or not all(_pool_ok(p) for p in args.pools):
        parser.error(f"--celery-pools takes pool:concurrency items, pool one of {CELERY_POOLS}")
    return args


def _pool_ok(item: str) -> bool:
    pool, _, concurrency = item.partition(":")
    return pool in CELERY_POOLS and concurrency.isdigit() and int(concurrency) > 0


def run_tasks(tasks: TaskBench, families: tuple[str, ...], pools: tuple[str, ...]) -> None:
    for result in tasks.run(lineup(TASKS, families, pools)):
        rate = f"median {result.rate:,.0f} tasks/s" if result.rate else ""
        print(f"{TASKS}: {result.label}: {result.status} {rate}", file=sys.stderr)


def run_sinks(config: RunConfig, families: tuple[str, ...], repeat: int) -> list[Result]:
    # Imported here: its PostgreSQL server comes from tests/postgres_support.py, which the
    # other scenarios do without.
    from bench.sinks import SinkBench

    results = SinkBench(config, repeat).run(lineup(SINKS, families))
    for result in results:
        rate = f"median {result.rate:,.0f} records/s" if result.rate else ""
        print(f"{SINKS}: {result.label}: {result.status} {rate}", file=sys.stderr)
    return results


def run(bench: Bench, scenarios: list[str], families: tuple[str, ...], repeat: int) -> None:
    if any(s not in ("restore", TASKS, SINKS) for s in scenarios):
        bench.prefill()
    for scenario in scenarios:
        contenders = lineup(scenario, families)
        broken = bench.prepare_restore() if scenario == "restore" and contenders else None
        first: list[tuple[Contender, Result]] = []
        for contender in contenders:
            print(f"{scenario}: {contender.label} ...", file=sys.stderr)
            if broken:
                bench.results.append(_failed(scenario, contender, broken))
                continue
            result = bench.run(scenario, contender)
            first.append((contender, result))
            rate = f"{result.rate:,.0f} records/s" if result.rate else ""
            print(f"{scenario}: {contender.label}: {result.status} {rate}", file=sys.stderr)
        if scenario in REPEATED:
            _repeat(bench, scenario, first, repeat)


def _repeat(
    bench: Bench, scenario: str, first: list[tuple[Contender, Result]], repeat: int
) -> None:
    """Rounds 2..repeat of the quick contenders, interleaved so that a noisy spell of the
    machine falls on all of them rather than on one."""
    quick = [(c, r) for c, r in first if r.ok and not r.note and (r.wall_s or 0) < REPEAT_UNDER]
    for round_ in range(1, repeat):
        for contender, result in quick:
            bench.repeat(scenario, contender, result, round_)
    for contender, result in quick:
        if len(result.runs) > 1:
            runs = ", ".join(f"{r:,.0f}" for r in result.runs)
            print(
                f"{scenario}: {contender.label}: median {result.rate:,.0f} records/s of {runs}",
                file=sys.stderr,
            )


def _failed(scenario: str, c: Contender, status: str) -> Result:
    return Result.of(scenario, c, 0, status=status)


def publish(results: list[Result], config: RunConfig, args: argparse.Namespace) -> None:
    """The tables on stdout and, unless ``--no-docs``, docs/benchmarks.md and its charts:
    the stream part when stream scenarios ran, the tasks and sinks sections when those ran."""
    streams = [r for r in results if r.scenario not in (TASKS, SINKS)]
    tasks = [r for r in results if r.scenario == TASKS]
    sinks = [r for r in results if r.scenario == SINKS]
    if streams:
        print_table(streams, config)
    if tasks:
        print_task_table(tasks)
    if sinks:
        print_sink_table(sinks)
    if args.no_docs:
        return
    started = datetime.strptime(config.run_dir.name, RUN_ID).replace(tzinfo=UTC)
    if streams:
        env = describe(ROOT, config.bootstrap, _families(streams), config.millstream_ref, started)
        charts = write_charts(ROOT / "docs" / "benchmarks", streams)
        write_markdown(ROOT / "docs" / "benchmarks.md", streams, env, config, charts)
    if tasks:
        env = describe(ROOT, config.bootstrap, _families(tasks), config.millstream_ref, started)
        write_task_docs(ROOT, tasks, env, config, server_version())
    if sinks:
        from bench.postgres_server import server_version as postgres_version

        env = describe(ROOT, config.bootstrap, _families(sinks), config.millstream_ref, started)
        write_sink_docs(ROOT, sinks, env, config, postgres_version())
    print("wrote docs/benchmarks.md and docs/benchmarks/*.png", file=sys.stderr)


def _families(results: list[Result]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(r.family for r in results))


def republish(args: argparse.Namespace) -> int:
    saved = json.loads((args.report / "results.json").read_text())
    fields = saved["config"]
    fields.update(root=Path(fields["root"]), run_dir=Path(fields["run_dir"]))
    if "celery_pools" in fields:
        fields["celery_pools"] = tuple(fields["celery_pools"])
    results = [Result(**r) for r in saved["results"]]
    publish(results, RunConfig(**fields), args)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        return republish(args)
    bootstrap = os.environ.get("MILLSTREAM_BOOTSTRAP_SERVERS")
    if not bootstrap:
        print("error: set MILLSTREAM_BOOTSTRAP_SERVERS (scripts/bench does)", file=sys.stderr)
        return 2
    run_id = datetime.now(UTC).strftime(RUN_ID)
    try:
        # One commit for the whole run, however the branch moves meanwhile.
        ref = commit_of(ROOT, args.millstream_ref) if args.millstream_ref else None
    except PeerUnavailable as exc:
        print(f"error: --millstream-ref: {exc}", file=sys.stderr)
        return 2
    config = RunConfig(
        root=ROOT,
        bootstrap=bootstrap,
        records=args.records,
        partitions=args.partitions,
        keys=args.keys,
        latency_rate=args.latency_rate,
        latency_seconds=args.latency_seconds,
        time_limit=args.time_limit,
        startup_timeout=180.0,
        run_dir=ROOT / ".local" / "bench" / "runs" / run_id,
        prefix=f"bench-{run_id}",
        millstream_ref=ref,
        tasks=args.tasks,
        round_trips=args.round_trips,
        celery_pools=args.pools,
        sink_records=args.sink_records,
    )
    config.run_dir.mkdir(parents=True, exist_ok=True)
    bench = Bench(config)
    tasks = TaskBench(config, args.repeat)
    scenarios = [s for s in SCENARIOS if s in args.scenarios] or list(STREAM_SCENARIOS)
    # SIGTERM unwinds like Ctrl-C: workers, Redis and the run's topics are cleaned up.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    sinks: list[Result] = []
    try:
        run(bench, [s for s in scenarios if s not in (TASKS, SINKS)], args.families, args.repeat)
        if TASKS in scenarios:
            run_tasks(tasks, args.families, args.pools)
        if SINKS in scenarios:
            sinks = run_sinks(config, args.families, args.repeat)
    finally:
        if not args.keep_topics:
            bench.cleanup()
    results = bench.results + tasks.results + sinks
    saved = {"config": asdict(config), "results": [asdict(r) for r in results]}
    (config.run_dir / "results.json").write_text(json.dumps(saved, indent=1, default=str))
    print(f"logs and results.json: {config.run_dir}", file=sys.stderr)
    publish(results, config, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
