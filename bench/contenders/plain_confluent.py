"""The limit: a hand-written confluent-kafka loop, as fast as one can write it in Python.

Batch ``consume(num_messages)``, orjson parse/serialize, ``produce`` per record with
one ``poll(0)`` per batch, and every second flush the producer then commit (at-least-once).
Client settings are millstream's defaults, so the comparison is of the processing
loop alone. Runs in millstream's virtualenv (confluent-kafka and orjson).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer

from bench.contenders.common import COMMIT_INTERVAL, enrich, keep, parse_args

BATCH = 5000

PRODUCER_CONFIG: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 5,
    "batch.num.messages": 10000,
    "compression.type": "lz4",
    "queue.buffering.max.messages": 500000,
    "queue.buffering.max.kbytes": 262144,
}
CONSUMER_CONFIG: dict[str, Any] = {
    "enable.auto.commit": False,
    "auto.offset.reset": "earliest",
    "fetch.wait.max.ms": 100,
    "queued.min.messages": 100000,
    "group.protocol": "consumer",
}


def transform(scenario: str) -> Callable[[dict[str, Any]], dict[str, Any] | None]:
    if scenario == "passthrough":
        return lambda value: value
    if scenario == "stateless":
        return lambda value: enrich(value) if keep(value) else None
    raise SystemExit(f"the plain loop runs passthrough and stateless, not {scenario}")


def main() -> None:
    args = parse_args(__doc__ or "")
    work = transform(args.scenario)
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    producer = Producer({"bootstrap.servers": args.bootstrap, **PRODUCER_CONFIG})
    consumer = Consumer(
        {"bootstrap.servers": args.bootstrap, "group.id": args.group, **CONSUMER_CONFIG}
    )
    consumer.subscribe([args.input])
    output, loads, dumps = args.output, orjson.loads, orjson.dumps
    produce, poll = producer.produce, producer.poll
    next_commit = time.monotonic() + COMMIT_INTERVAL
    pending = False
    while not stopping:
        batch = consumer.consume(BATCH, 0.2)
        for message in batch:
            value = message.value()
            if value is None or message.error():
                continue
            result = work(loads(value))
            if result is None:
                continue
            while True:
                try:
                    produce(output, dumps(result), message.key())
                    break
                except BufferError:
                    poll(0.05)
        pending = pending or bool(batch)
        poll(0)
        if pending and time.monotonic() >= next_commit:
            producer.flush()
            consumer.commit(asynchronous=False)
            next_commit = time.monotonic() + COMMIT_INTERVAL
            pending = False
    producer.flush()
    if pending:
        consumer.commit(asynchronous=False)
    consumer.close()


if __name__ == "__main__":
    main()
