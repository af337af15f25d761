"""A table-keeping test app: a processor that writes every record's value into a table.

TEST_APP_ID, TEST_IN, TEST_OUT: names; TEST_STORE: memory | rocksdb.
Each record {"n": int} sets table[key] = running count of the key and sends
{"key": key, "count": count} to TEST_OUT when TEST_EMIT is set.

On SIGUSR1 the worker hands the heap memory it has freed back to the system
(glibc's malloc_trim) and logs one line ``memory <n>: rss <MB> MB, rocksdb <MB> MB
(memtables <MB> MB)``, counting the requests in <n>. glibc keeps freed memory for
reuse, often more than a hundred megabytes after a million records went through the
producer's queue, and how much depends on how allocations interleaved: RSS after the
trim is what the worker actually holds.
"""

import ctypes
import ctypes.util
import itertools
import os
import re
import signal
from pathlib import Path

from millstream import App
from millstream.processors.state.backends import rocksdb_memory

# A small prefetch: the memory test reads this worker's RSS to see its store, and a
# 64 MB librdkafka queue that fills and drains would drown that out.
app = App(
    os.environ["TEST_APP_ID"],
    commit_interval=1.0,
    batch_size=10000,
    consumer_config={"queued.min.messages": 10000, "queued.max.messages.kbytes": 4096},
)
source = app.topic(os.environ["TEST_IN"], partitions=4)
output = app.topic(os.environ["TEST_OUT"], partitions=4)
counts = app.table("counts", backend=os.environ.get("TEST_STORE", "memory"))
_emit = bool(os.environ.get("TEST_EMIT"))


@app.processor(source, tables=[counts])
def count(record, ctx):
    table = ctx.table("counts")
    total = table.get(record.key, 0) + 1
    table[record.key] = total
    if _emit:
        ctx.send(output, record.key, {"key": record.key, "count": total})


_libc = ctypes.CDLL(ctypes.util.find_library("c"))
_requests = itertools.count(1)
_MB = 1024 * 1024


def _report_memory(_signum, _frame):
    _libc.malloc_trim(0)
    status = Path("/proc/self/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024
    held, memtables = rocksdb_memory()
    print(
        f"memory {next(_requests)}: rss {rss:.1f} MB, rocksdb {held / _MB:.1f} MB "
        f"(memtables {memtables / _MB:.1f} MB)",
        flush=True,
    )


signal.signal(signal.SIGUSR1, _report_memory)
