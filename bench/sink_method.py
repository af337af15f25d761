"""The sinks scenario's fixed text in docs/benchmarks.md: how to run it, what each
contender does and how it is measured."""

SINKS_METHOD = """
### How to run

```
scripts/bench sinks                                   # millstream and Quix Streams (~6 min here)
scripts/bench sinks --sink-records 100000 --repeat 1  # smaller (~1 min)
scripts/bench sinks --contenders millstream           # no Quix Streams
scripts/bench sinks --millstream-ref HEAD             # millstream as committed
```

The script installs Quix Streams with its `postgresql` and `parquet` extras
(`quixstreams[postgresql,parquet]==3.28.1`: psycopg2-binary and pyarrow) into its
virtualenv under `.local/bench/quix` on first use, and Debian's `postgresql` with apt-get
when `initdb` is missing. The run starts one PostgreSQL server of its own
(`tests/postgres_support.py`'s: `initdb` as the `postgres` user, its data under
`.local/bench/postgres/<run id>/`, a free port of 127.0.0.1) and stops it when the
scenario ends, also when the run fails or is interrupted; its data is removed, its log
kept as `postgres.log` in the run's directory. All traffic stays on 127.0.0.1.

### What each contender does

Every contender is one process reading the input topic from the earliest offset with a
consumer group of its own, committing every second (`commit_interval=1`; Quix's default
is 5 s), at-least-once, with its framework's defaults otherwise. Both frameworks write a
sink's buffered records at each checkpoint, before they commit the offsets.

- **millstream**, `app.stream(topic).sink(sink)`:
  - PostgreSQL append: `PostgresSink(dsn, table)`. At each flush, one transaction: COPY
    of the buffered records into a temporary staging table, then
    `INSERT ... SELECT ... ON CONFLICT (_topic, _partition, _offset) DO NOTHING`. Rows
    carry the record's topic, partition and offset (unique together): a replay after a
    crash adds nothing, so the table holds each record once.
  - PostgreSQL upsert: `PostgresSink(dsn, table, key=["key"])`: the same, with
    `SELECT DISTINCT ON` the key (the last record of a key wins) and
    `ON CONFLICT (key) DO UPDATE`; a replay converges to the same table.
  - The table is created at the first flush with the types of the first batch's values;
    the worker hands the sink each consumed batch (up to 5,000 records) partition by
    partition, and the sink flushes on its own once 50,000 wait.
  - Parquet: `FileSink(directory, format="parquet")`: one file per source partition per
    flush (at most 100,000 rows, row groups of 65,536), written under a hidden temporary
    name, fsynced, and renamed into place at the flush; a writer that resumes a partition
    removes files from the resumed offset on, so the visible files hold each record once.
- **Quix Streams 3.28.1**, `app.dataframe(topic).sink(sink)`; its batching sinks collect
  each partition's records and write them at the checkpoint, one batch per partition:
  - PostgreSQL append: `PostgreSQLSink(host, port, dbname, user, password,
    table_name)`: per batch, one psycopg2 transaction that checks the table and each of
    its columns (`CREATE TABLE IF NOT EXISTS`, `ALTER TABLE ... ADD COLUMN IF NOT
    EXISTS`) and inserts with `execute_values` (psycopg2's default page of 100 rows per
    `INSERT`); rows get Quix's `__key` and `timestamp` columns and no unique key, so a
    replay after a crash adds the records again.
  - PostgreSQL upsert: the same with `primary_key_columns="key",
    upsert_on_primary_key=True`: the batch is reduced to the last record of each key and
    inserted with `ON CONFLICT (key) DO UPDATE`.
  - Parquet: `LocalFileSink(directory=..., format="parquet")` (Quix's `FileSink` is the
    abstract base of its local, S3 and Azure sinks): per batch, `pyarrow.Table.from_pylist`
    and one file named after the batch's first offset, snappy-compressed, written
    straight to its final name; a replay writes the same file name again.

### How it is measured

- **Input**: one topic per run, pre-filled once and read by every contender: ~150-byte
  JSON objects of 9 fields (`id`, `key`, `ts`, `amount`, `currency`, `merchant`,
  `country`, `channel`, `status`), `id` = the record's number, `key` cycling through
  `--keys` values (10,000), the Kafka key equal to it (so a key lives in one partition),
  12 partitions. Upserts go by the `key` field: with the defaults (500,000 records),
  each of 10,000 rows is written 50 times.
- **One at a time**: contenders run in turn, each run with a fresh consumer group and a
  fresh table or directory; `--repeat` rounds (3) go round the contenders (millstream
  append, Quix append, millstream upsert, ...), so a busy spell of the machine falls on
  all of them. The table shows the median records/s with the range of the runs.
- **records/s**: the group's committed offsets on the input, sampled every 100 ms from
  outside the contender. Both frameworks commit only after their sinks' flush returned,
  so a committed offset means every record before it is in the table or in a file. The
  rate is the records committed between the first sample that showed a commit (the
  first flush done) and the sample that showed the whole input committed (the last
  flush done), over the time between them: process start, imports, group join and the
  first flush interval are excluded the same way for every contender. The last flush
  comes at the first checkpoint after the input ran out, up to one commit interval (1 s)
  after the last record was read, so on a finite input this figure charges each
  contender up to a second of waiting, which weighs more on the faster one.
- **records/s, last flush left out**: the same from the first commit to the last commit
  before the one that covered the whole input, while the contender was still reading;
  needs three commits or more. Each run's commits are in
  `.local/bench/runs/<id>/sinks-<contender>-r<n>-commits.json` (seconds since the
  process started, records committed).
- **vs Quix Streams**: a millstream row's records/s over Quix's on the same destination,
  then in parentheses the same for records/s with the last flush left out.
- **The destination is checked** after each run, once the contender has stopped:
  append, `SELECT count(*), count(DISTINCT id)` must both equal the records; upsert,
  the table must hold one row per key and the sum of its `id`s must be the sum of each
  key's last `id` (a row left with an older record shows); Parquet, the visible files'
  rows read with pyarrow, and their distinct `id`s, must equal the records. A run that
  fails the check fails its row. The table or directory is then dropped.
- **contender CPU us/record**: user + system CPU time of the contender process (all its
  threads) between the first commit sample and the end, over the records committed in
  between (median of the runs). **PostgreSQL CPU us/record**: the same for the server
  (the postmaster with its reaped children and its live processes: the contender's
  backend, WAL writer, checkpointer), over the same records.
- **peak RSS** (`VmHWM`) and **startup s** (process start to the first commit) are the
  last run's; **load (max)** is the machine's 1-minute load average at the end of a run,
  the highest of the row's runs (everything runnable: Kafka, PostgreSQL and any other
  work on the machine).
- **Bounded waits**: a contender that has not committed 180 s after its start fails its
  row; one still running `--time-limit` s (120) after its first commit is stopped there
  and its rate covers what it committed (marked `*`, its destination not checked).

### Caveats

- One machine with 2 CPUs runs Kafka, PostgreSQL, the harness and the contender: the
  figures compare the two frameworks' sinks on it; they are not capacity figures.
- PostgreSQL runs with its durable defaults on the machine's own disk; each flush is one
  (millstream) or one per partition (Quix) committed transaction.
- The guarantees differ: millstream's PostgreSQL append skips replayed records (a unique
  index on the source position, which costs index maintenance on every insert), Quix's
  appends them again; Quix's Parquet files are written in place, millstream's renamed
  into place after an fsync. The rates measure each sink as it ships.
"""
