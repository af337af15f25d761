"""The dashboard's lag per partition is ``millstream status``'s, on a real cluster.

The input is written in a Kafka transaction, so each partition's end offset includes a
commit marker: a group that committed past its last record still lags by one, in both
readings. The group is stopped (offsets set by hand), so nothing moves between them.
"""

from __future__ import annotations

import time
import uuid

import pytest
from support import Names

from millstream.config import Settings
from millstream.dashboard import DashboardModel, Reading
from millstream.dashboard.readers import ClusterReader
from millstream.groups.status import read_status
from millstream.kafka import make_producer
from millstream.kafka.groups import GroupAdmin

pytestmark = pytest.mark.timeout(120)

#: Records written to each partition of the input.
PER_PARTITION = (7, 3, 5)


@pytest.fixture
def input_partitions() -> int:
    return len(PER_PARTITION)


def produce_in_a_transaction(settings: Settings, topic: str) -> None:
    producer = make_producer(settings, **{"transactional.id": f"lag-{uuid.uuid4().hex}"})
    producer.init_transactions(30)
    producer.begin_transaction()
    for partition, count in enumerate(PER_PARTITION):
        for i in range(count):
            producer.produce(topic, f"v{i}".encode(), f"k{i}", partition=partition)
    producer.commit_transaction(30)


def test_the_dashboards_lag_equals_millstream_status(settings: Settings, names: Names) -> None:
    produce_in_a_transaction(settings, names.source)
    # Partition 0 committed past its last record, 1 halfway, 2 never.
    GroupAdmin(settings).alter(names.app, {(names.source, 0): 7, (names.source, 1): 1})

    reading = Reading(time=time.time())
    ClusterReader(settings, names.app, [names.source]).read(reading)
    assert not reading.errors, reading.errors
    model = DashboardModel(names.app, inputs=[names.source], outputs=[], consumed=[names.source])
    model.add(reading)
    page = {
        (r["topic"], r["partition"]): (r["committed"], r["end"], r["lag"]) for r in model.lag_rows()
    }

    status = read_status(settings, names.app, {names.source: "source"})
    cli = {(p.topic, p.partition): (p.committed, p.end, p.lag) for p in status.partitions}

    assert page == cli, f"dashboard {page}, status {cli}"
    # The commit marker takes an offset: end = records + 1 on every partition.
    assert page == {
        (names.source, 0): (7, 8, 1),
        (names.source, 1): (1, 4, 3),
        (names.source, 2): (None, 6, None),
    }
    assert model.snapshot()["lag"]["total"] == status.total_lag == 4
