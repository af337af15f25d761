"""millstream: stream processing and a task queue for Python on Apache Kafka."""

from millstream.errors import MillstreamError

__version__ = "0.1.0"

__all__ = ["MillstreamError", "__version__"]
