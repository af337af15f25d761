"""The restorer asks for a changelog partition's offsets again with a new consumer.

A long-lived consumer can keep a dead broker as a partition's leader and time out
(or answer "unknown partition") long after another broker took over; a new one
looks the leader up afresh. Stand-in consumers fail the way librdkafka does.
"""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from millstream.errors import KafkaError as MillstreamKafkaError
from millstream.processors.state.backends import MemoryBackend
from millstream.processors.state.codec import Codec
from millstream.processors.state.restore import Restorer
from millstream.processors.state.store import StorePartition


class StandIn:
    """Answers watermark queries with ``error`` (a librdkafka error code) or (0, 0)."""

    def __init__(self, error: int | None) -> None:
        self.error = error
        self.closed = False
        self.asked: list[tuple[str, int]] = []

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float) -> tuple[int, int]:
        self.asked.append((tp.topic, tp.partition))
        if self.error is not None:
            raise KafkaException(KafkaError(self.error))
        return 0, 0

    def close(self) -> None:
        self.closed = True


def store() -> StorePartition:
    return StorePartition("counts", 3, MemoryBackend(Codec()), "app-counts-changelog", Codec())


def test_a_failed_offsets_query_is_asked_again_with_a_new_consumer() -> None:
    consumers = [
        StandIn(KafkaError._TIMED_OUT),
        StandIn(KafkaError._UNKNOWN_PARTITION),
        StandIn(None),
    ]
    made = iter(consumers)
    restorer = Restorer(lambda: next(made))  # type: ignore[arg-type, return-value]

    assert restorer.restore([store()]) == 0

    assert [c.asked for c in consumers] == [[("app-counts-changelog", 3)]] * 3
    assert [c.closed for c in consumers] == [True, True, False]


def test_an_error_that_retrying_cannot_mend_is_raised_at_once() -> None:
    consumers = [StandIn(KafkaError.TOPIC_AUTHORIZATION_FAILED), StandIn(None)]
    made = iter(consumers)
    restorer = Restorer(lambda: next(made))  # type: ignore[arg-type, return-value]

    with pytest.raises(
        MillstreamKafkaError, match=r"reading the offsets of app-counts-changelog\[3\]"
    ):
        restorer.restore([store()])
    assert consumers[1].asked == []
