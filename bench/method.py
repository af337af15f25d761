"""The fixed part of docs/benchmarks.md: what each contender does and how it is measured."""

METHOD = """
## How to run

```
scripts/bench                                  # everything, 1M records (~25 min)
scripts/bench passthrough --records 100000     # one scenario, smaller
scripts/bench --contenders plain,millstream    # no peers (nothing to install)
scripts/bench --millstream-ref HEAD            # millstream as committed, not the work tree
scripts/bench --report .local/bench/runs/<id>  # re-print and re-write from a saved run
```

The script starts the local cluster unless `MILLSTREAM_BOOTSTRAP_SERVERS` is set, installs
Quix Streams and faust-streaming into their own virtualenvs under `.local/bench/` on first
use, and keeps every contender's log and a `results.json` under `.local/bench/runs/<id>/`.
A peer that cannot be installed, or crashes, gets a row saying so and the run goes on.

## What each contender does

### Scenarios

- **passthrough**: consume, parse the JSON value, serialize it again, produce it.
- **stateless**: the same with a filter (`amount >= 25`, keeps 75%) and a map that adds
  two fields.
- **window**: group by the record key (the input is partitioned by it: no repartition),
  10 s tumbling windows of event time (the Kafka timestamp), count and sum of `amount`,
  final results only.
- **restore**: a fresh worker (empty state directory) restores a changelog of N keys.

### Contenders

- **plain confluent-kafka loop** (the limit for passthrough and stateless): `consume(5000,
  0.2)`, `orjson.loads`/`orjson.dumps`, `produce` per record, `poll(0)` per batch, and every
  second `flush()` then a synchronous commit (at-least-once). Same producer settings as
  millstream (idempotent, `acks=all`, lz4, `linger.ms=5`), the same prefetch (100,000
  records per partition, 64 MB) and KIP-848 consumer group, and like millstream it reads
  `read_committed` (librdkafka's default).
- **millstream**: `app.stream(src).to(out)`; `.filter(keep).map(enrich).to(out)`;
  `.group_by_key().window(Tumbling(10 s), backend=...).aggregate(lambda: [0, 0.0], add)
  .final().to(out)`; for restore, `@app.processor` writing `table[key] = amount` into an
  `app.table(...)`. JSON values, str keys (the defaults), `commit_interval=1 s`, default
  batch size (5000), at-least-once or exactly-once (one transaction per commit).
- **Quix Streams**: `sdf.to_topic(out)`; `sdf.filter(keep).apply(enrich).to_topic(out)`;
  `sdf.tumbling_window(10 s).agg(count=Count(), sum=Sum("amount"))
  .final(closing_strategy="partition")` (windows close on partition stream time, like
  millstream's). State is RocksDB, Quix's only store, with changelog topics.
  `commit_interval=1 s` (its default is 5 s); other settings are Quix's defaults
  (librdkafka's `linger.ms=5`, classic group protocol).
- **faust-streaming**: an agent `async for key, value in stream.items(): await
  out.send(...)` (with the filter and map for stateless). Window: a
  `Table(...).tumbling(10, expires=10 s).relative_to_stream()` (the record timestamp)
  holding `[count, sum]` per key in faust's memory store with its changelog; results are
  sent from `on_window_close`. faust closes windows by *wall clock*, not stream time,
  so its window output is not comparable record for record; the window scenario
  measures input consumption for everyone. `broker_commit_interval=1 s`,
  `table_cleanup_interval=1 s` and `producer_linger=5 ms` (its default, 0, sends a
  produce request per record; 5 ms is what the other three use), otherwise defaults
  (aiokafka, classic group protocol).

## How it is measured

- **Input**: one topic per run, pre-filled once, read by every contender: ~150-byte JSON
  values, keys `k00000`...`k09999` in turn, `amount` cycling 0.00-99.99. Kafka timestamps
  (event time) rise evenly over N/10 ms ending at the prefill (1M records: 100 s, about
  ten windows, no late records); the value's `ts` is its produce time.
- **One at a time**: each contender runs alone as a subprocess (the peers in their own
  virtualenvs) with a fresh consumer group from the earliest offset and a fresh output
  topic, and gets SIGTERM when done.
- **records/s**: progress is sampled every 100 ms from outside the contender: records in
  the output topic (passthrough, stateless) or the group's committed offsets on the input
  (window). The rate is the records done between the first sample that showed any
  progress and the sample that showed all, over the time between them: process start,
  imports, group join and the first batch are excluded, the same way for everyone. For
  the window scenario progress moves in commit steps (every contender commits every
  second), so the rate can be off by up to one commit interval over the run.
- **repeats**: in passthrough and stateless every contender that finishes within 60 s
  runs `--repeat` times (3), in interleaved rounds (plain, millstream, ..., plain,
  millstream, ...), each time with a fresh group and output topic. The table shows the
  median records/s and CPU us/record, with the range of the runs after it; on a shared
  two-CPU machine a single run of a few seconds can be 30% off. Latency is measured once.
- **time limit**: a contender still running 120 s after its first progress
  (`--time-limit`) is stopped there; its rate covers the part it processed (marked `*`).
- **CPU s**: user + system time of the contender process, all threads (librdkafka's
  included), from `/proc/<pid>/stat` when the input is done, startup included.
  **CPU us/record** is the steady state: CPU time between the first progress sample and
  the last, over the input records processed between them (for restore: CPU s over the
  records restored). It depends much less on what else runs on the machine than
  records/s does, and compares runs stopped by the time limit too. **peak RSS**: `VmHWM`
  when the input is done.
- **wall s**: process start to all input done; **startup s**: process start to the first
  progress. **load**: the machine's 1-minute load average when the contender finished
  (everything runnable, the broker and any other work on the machine included): a load
  well above the CPU count means the contender shared its CPUs.
- **latency**: a second process of the contender on an empty input topic, warmed up until
  its output appears, then fed at 20,000 records/s for 10 s (`--latency-rate`,
  `--latency-seconds`; half its measured throughput when that is below 25,000/s, shown
  as "at N/s"). Output topics use `message.timestamp.type=LogAppendTime`; latency is the
  output record's append time minus the input value's `ts` (one clock, millisecond
  resolution), p50 and p99 over every output of the paced phase. The window scenario has
  no latency ("-"): a final result comes when its window closes.
- **restore**: a millstream table app builds a changelog of N distinct keys (12
  partitions); then a fresh worker of the same app with an empty state directory restores
  the partitions it is assigned, all together. records/s = changelog records restored
  over the time the restores took (assignment to the end of every partition, the first
  fetch included), from the worker's log lines `restored N changelog records of K store
  partitions in Xs`. Quix's restore is not compared.

## Caveats

- Everything shares one small machine (see Setup): the broker, the harness's sampling
  and the load generator take CPU from the contender. The numbers compare contenders on
  this machine; they are not a capacity figure for a real cluster.
- One broker with replication factor 1: `acks=all` costs little here.
- Group protocols differ (millstream and the plain loop KIP-848, Quix and faust classic);
  joins are excluded from the rate but show in `startup s`.
- The batch-oriented loops (plain and millstream) wait in `consume(5000, 0.2 s)` for a
  batch to fill: at 20,000 records/s that is ~200 ms per batch, which dominates their
  p50. A latency-sensitive app would use a smaller `batch_size`.
- Exactly-once rows commit a transaction every second; a longer `commit_interval` makes
  exactly-once cheaper.
- Output counting stops at the expected number of records: duplicates (at-least-once,
  after a failure or a rebalance) would make a rate look higher, never lower. The logs
  under `.local/bench/runs/<id>/` show whether a contender rebalanced or restarted.
"""

TASKS_METHOD = """
### How to run

```
scripts/bench tasks                              # millstream and Celery (~5 min here)
scripts/bench tasks --tasks 5000 --round-trips 200 --repeat 1   # smaller
scripts/bench tasks --celery-pools prefork:2,threads:16         # more Celery rows
scripts/bench tasks --contenders millstream      # no Celery, no Redis
```

The script installs Celery (`celery[redis]==5.6.3` and `redis`) into its own virtualenv
under `.local/bench/celery` on first use, and Debian's `redis-server` with `apt-get` when
`/usr/bin/redis-server` is missing. Each Celery row gets a redis-server of its own, started
on a free port of 127.0.0.1 (its directory and log under `.local/bench/redis/<id>/`),
stopped after the row, also when the run fails or is interrupted. All traffic stays on
127.0.0.1.

### What each contender does

- **The task**: `noop(i)` returns `i`; the client checks every result equals its argument.
- **millstream**: `@app.task def noop(i)` with the decorator's defaults (its topic
  `{app_id}-task-noop` with 8 partitions, `concurrency=16` per partition, sync functions on
  the worker's thread pool, at-least-once). The worker is `app.run()` in one process; the
  client calls `noop.send(i)` and `handle.result(timeout=...)` (docs/tasks.md).
- **Celery**: `@celery.task(name="noop") def noop(i)`, Redis as broker (database 0) and
  result backend (database 1). One worker started with `app.worker_main` and
  `--pool`/`--concurrency` as in its row (default `prefork:2`, Celery's own default
  concurrency on a 2-CPU machine: one process per CPU), `--loglevel=WARNING` (at INFO
  Celery logs two lines per task), Celery's defaults otherwise (prefetch multiplier 4,
  acknowledgement on receipt). The client calls `noop.delay(i)` and
  `AsyncResult.get(timeout=...)`.

### How it is measured

- **One client at a time**: each row gets a fresh worker process (and for Celery a fresh
  Redis), started and warmed up in turn; then one client process per phase, each started
  after the previous one ended, while the other rows' workers idle:
  1. **warm**: one round trip, waiting up to 180 s for the worker to be ready (a client
     that fails meanwhile, as while the worker still creates its topics, is started
     again);
  2. **throughput**, in `--repeat` rounds (3) that go round the rows (millstream, Celery,
     millstream, ...) so that a busy spell of the machine falls on both: one untimed round
     trip, then `--tasks` sends in a loop and a wait for every result in send order.
     **tasks/s** is the tasks over the time from the first send to the last result; the
     table shows the median of the runs with their range;
  3. **latency**, once per row after the rounds: one untimed round trip, then
     `--round-trips` sequential round trips (send, wait for that result), each timed in
     the client with `time.perf_counter`: **p50 / p99 / mean** over them (the p99 of 500
     round trips is the 5th slowest).
- **worker CPU us/task**: user + system CPU time of the worker and every process in its
  session (a prefork pool's children too), read from `/proc` before and after each
  throughput client process, over the tasks of that run (the client's start-up and its
  untimed round trip included; median of the runs). Neither Kafka's nor Redis's CPU time
  is included.
- **client CPU us/task**: the publishing client's process CPU time over the timed part
  of a throughput run, over its tasks (median of the runs).
- **worker memory MB**: proportional set size (`Pss` of `/proc/<pid>/smaps_rollup`),
  summed over the worker's processes after the last throughput run; pages that forked
  children share with their parent count once.
- **startup s**: worker process start until the warm round trip returned (the client's
  interpreter start and imports included).
  **load**: the machine's 1-minute load average when the row finished.
- **Bounded waits**: a throughput run stops after `--time-limit` s (120; its rate then
  covers the results that came, marked `*`), a round trip after 10 s, the warm-up after
  180 s; a client process still running past its limits, or a worker that exits, fails
  the row with the reason in the table, and the run goes on.

### Caveats

- One machine with 2 CPUs runs the broker (Kafka or Redis), the worker and the client:
  the figures compare the two queues on it, they are not capacity figures.
- The two queues do not promise the same: millstream's tasks are Kafka records committed
  at least once, Celery acknowledges a message when the worker receives it (its default).
- The throughput client publishes as fast as it can and then waits: the figure includes
  the client's own cost of sending and of receiving results, as an application would pay.
- Both clients wait for results in send order; a result that comes early waits for the
  ones before it to be read, which does not change the time of the last one.
"""
