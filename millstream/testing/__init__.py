"""Testing millstream applications.

- :class:`TestDriver`: runs an app's topology in the test's process, without a
  broker: send records, move the clock, read what the pipelines produced.
- :mod:`millstream.testing.pytest_plugin`: the pytest plugin that installing
  millstream registers (entry point ``pytest11``, name ``millstream``): the
  session fixture ``kafka_bootstrap``, a real Kafka for an application's tests.

docs/testing.md shows it in use.
"""

from millstream.testing.driver import TestDriver, TestRecord

__all__ = ["TestDriver", "TestRecord"]
