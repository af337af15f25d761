"""Benchmarks: millstream against a plain confluent-kafka loop, Quix Streams and faust.

Run with ``scripts/bench``. This package is not part of the ``millstream`` distribution.
``bench.contenders`` modules also run inside the peers' own virtualenvs, so this
``__init__`` and ``bench.contenders.common`` import nothing outside the standard library.
"""
