"""A table-keeping test app: a processor that writes every record's value into a table.

TEST_APP_ID, TEST_IN, TEST_OUT: names; TEST_STORE: memory | rocksdb.
Each record {"n": int} sets table[key] = running count of the key and sends
{"key": key, "count": count} to TEST_OUT when TEST_EMIT is set.
"""

import os

from millstream import App

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
