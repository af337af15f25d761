"""Garbage-collector settings for a running worker.

A worker holds a run of rows (tuples and parsed values) alive while the pipeline goes
through it, and CPython counts every one of them towards its next young-generation
collection. With the default threshold (700) a 1M-record passthrough ran about
1,500 young, 130 middle and a dozen full collections, 0.4 s in all; each full one
walked every object imported at startup. The worker therefore freezes the heap it
built at startup (those objects live as long as the process) and lets many more
allocations pass between young collections; reference counting frees almost all
row objects anyway, the collector only finds cycles.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

#: Net allocations of container objects between young-generation collections.
YOUNG_THRESHOLD = 20_000


@contextmanager
def worker_gc() -> Iterator[None]:
    """Freeze the startup heap and raise the young threshold; restore both on exit."""
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(before[0], YOUNG_THRESHOLD), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
