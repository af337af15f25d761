"""The public surface of millstream.producers is exactly the curated names."""

from __future__ import annotations

import millstream.producers
import millstream.producers.generators


def test_producers_exports() -> None:
    assert sorted(millstream.producers.__all__) == [
        "AsyncPublisher",
        "Delivery",
        "Headers",
        "ProducerRecord",
        "PublishCounts",
        "Publisher",
        "RecordMetadata",
    ]
    for name in millstream.producers.__all__:
        assert getattr(millstream.producers, name) is not None


def test_generators_exports() -> None:
    assert sorted(millstream.producers.generators.__all__) == [
        "COUNTRIES",
        "FraudPattern",
        "HIGH_RISK_COUNTRIES",
        "Transaction",
        "TransactionGenerator",
    ]
