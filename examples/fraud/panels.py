"""The fraud example's panels for ``millstream dashboard examples.fraud.detectors:app``.

The dashboard calls :func:`examples.fraud.detectors.dashboard_panels` and runs the
panels in its own process: each has a ``title``, ``start()``, ``stop()`` and
``snapshot()`` (a dict the page draws). They share one :class:`FraudFeed`, a
background thread that reads the transactions topic (only the labels in the
headers, and the transaction id) and the alerts topic from the beginning, with a
group-less consumer, so the panels never touch the workers or their offsets.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter, deque
from typing import Any

import orjson

from examples.fraud.rules import REASONS
from examples.fraud.scoring import Scoreboard, percent
from examples.fraud.stream import read_label
from millstream.config import Settings
from millstream.kafka import OFFSET_BEGINNING, Consumer, TopicPartition, make_consumer

log = logging.getLogger("examples.fraud.panels")
LATEST = 15


class FraudFeed:
    """Labels and alerts read so far; thread-safe; started once for all its panels."""

    def __init__(self, settings: Settings, transactions: str, alerts: str) -> None:
        self.settings = settings
        self.topics = (transactions, alerts)
        self.board = Scoreboard()
        self.latest: deque[dict[str, Any]] = deque(maxlen=LATEST)
        self.per_minute: dict[int, Counter[str]] = {}  # minute (epoch s) -> reason -> alerts
        self.lock = threading.Lock()
        self._users = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- what the consumer thread feeds in --------------------------------------------

    def add_transaction(self, value: bytes | None, headers: Any) -> None:
        """A transaction record: its id and the label in its headers."""
        labelled, pattern = read_label(headers)
        tx_id = orjson.loads(value or b"{}").get("transaction_id")
        if labelled and tx_id is not None:
            with self.lock:
                self.board.add_label(tx_id, pattern)

    def add_alert(self, value: bytes | None) -> None:
        alert = orjson.loads(value or b"null")
        if not isinstance(alert, dict) or "transaction_id" not in alert:
            return
        minute = alert.get("event_time", 0) // 60_000 * 60
        with self.lock:
            self.board.add_alert(alert["transaction_id"], alert.get("reasons", []))
            self.latest.appendleft(alert)
            self.per_minute.setdefault(minute, Counter()).update(alert.get("reasons", []))

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        with self.lock:
            self._users += 1
            if self._thread is not None:
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="fraud-feed", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self.lock:
            self._users -= 1
            thread, last = self._thread, self._users <= 0
            if last:
                self._thread = None
        if last and thread is not None:
            self._stop.set()
            thread.join(10)

    def _run(self) -> None:
        consumer: Consumer | None = None
        while not self._stop.is_set():
            try:
                if consumer is None:
                    consumer = self._consumer()
                for message in consumer.consume(2000, 0.5):
                    if message.error() is not None:
                        continue
                    if message.topic() == self.topics[0]:
                        self.add_transaction(message.value(), message.headers())
                    else:
                        self.add_alert(message.value())
            except Exception as exc:  # the view goes on; the next attempt may work
                log.warning("fraud feed: %s; trying again in 2 s", exc)
                if consumer is not None:
                    consumer.close()
                consumer = None
                self._stop.wait(2)
        if consumer is not None:
            consumer.close()

    def _consumer(self) -> Consumer:
        group = f"fraud-dashboard-{uuid.uuid4().hex[:8]}"
        consumer = make_consumer(self.settings, group, **{"group.protocol": "classic"})
        partitions = []
        for topic in self.topics:
            metadata = consumer.list_topics(topic, timeout=self.settings.client_timeout)
            found = metadata.topics[topic].partitions or {}
            partitions += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in found]
        consumer.assign(partitions)
        return consumer


class FeedPanel:
    """A panel over a shared :class:`FraudFeed`."""

    title = ""

    def __init__(self, feed: FraudFeed) -> None:
        self.feed = feed

    def start(self) -> None:
        self.feed.start()

    def stop(self) -> None:
        self.feed.stop()

    def snapshot(self) -> dict[str, Any]:
        with self.feed.lock:
            return self._snapshot()

    def _snapshot(self) -> dict[str, Any]:
        raise NotImplementedError


class AlertsByReason(FeedPanel):
    """Alerts per minute by reason: the last complete minute of event time, or the
    current one while none is complete."""

    title = "Alerts per minute by reason"

    def _snapshot(self) -> dict[str, Any]:
        now_minute = int(time.time()) // 60 * 60
        minutes = sorted(m for m in self.feed.per_minute if m <= now_minute)
        done = [m for m in minutes if m < now_minute]
        shown = self.feed.per_minute[done[-1] if done else now_minute] if minutes else Counter()
        return {"kind": "bars", "items": {reason: shown.get(reason, 0) for reason in REASONS}}


class LatestAlerts(FeedPanel):
    title = "Latest alerts"
    columns = ("time", "card", "amount", "reasons", "score")

    def _snapshot(self) -> dict[str, Any]:
        rows = [
            [
                time.strftime("%H:%M:%S", time.gmtime(a.get("event_time", 0) / 1000)),
                a.get("card_id"),
                a.get("amount"),
                ", ".join(a.get("reasons", [])),
                a.get("score"),
            ]
            for a in self.feed.latest
        ]
        return {"kind": "table", "columns": list(self.columns), "rows": rows}


class PrecisionRecall(FeedPanel):
    title = "Precision and recall so far"
    columns = ("pattern", "fraud", "caught", "recall", "alerts", "precision")

    def _snapshot(self) -> dict[str, Any]:
        rows = [
            [s.pattern, s.fraud, s.caught, percent(s.recall), s.alerted, percent(s.precision)]
            for s in self.feed.board.scores()
        ]
        return {"kind": "table", "columns": list(self.columns), "rows": rows}


def fraud_panels(settings: Settings, transactions: str, alerts: str) -> list[Any]:
    """The three fraud panels, sharing one feed of ``transactions`` and ``alerts``."""
    feed = FraudFeed(settings, transactions, alerts)
    return [AlertsByReason(feed), LatestAlerts(feed), PrecisionRecall(feed)]
