"""A latency histogram cheap enough to observe once per batch on the worker's thread
(the worker's processing and commit times, and the task metrics' wait and run times).

prometheus_client's Histogram takes a lock per observation; this one is a list of
bucket counts the worker alone writes and the metrics server reads when scraped
(a scrape may see one observation half-counted, which the next scrape corrects).
"""

from __future__ import annotations

from bisect import bisect_left

__all__ = ["DEFAULT_BUCKETS", "LatencyHistogram"]

#: Upper bounds in seconds: a batch or a commit takes from a millisecond to many seconds.
DEFAULT_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)


class LatencyHistogram:
    """Counts of observed durations per bucket (non-cumulative), their sum and count."""

    def __init__(self, buckets: tuple[float, ...] = DEFAULT_BUCKETS) -> None:
        if list(buckets) != sorted(set(buckets)) or not buckets:
            raise ValueError("buckets must be distinct and ascending")
        self.bounds = buckets
        #: One count per bound, and the last for durations above every bound.
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        """Count one duration of ``seconds``."""
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.sum += seconds
        self.count += 1

    def buckets(self) -> list[tuple[str, float]]:
        """Prometheus buckets: (``le`` bound, observations at or below it), ending with +Inf."""
        buckets, running = [], 0
        for bound, count in zip(self.bounds, self.counts, strict=False):
            running += count
            buckets.append((_format(bound), float(running)))
        buckets.append(("+Inf", float(running + self.counts[-1])))
        return buckets


def _format(bound: float) -> str:
    return repr(float(bound))
