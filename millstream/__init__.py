"""millstream: stream processing and a task queue for Python on Apache Kafka."""

from millstream.app import App
from millstream.errors import (
    BrokerUnreachableError,
    ConfigurationError,
    DeliveryError,
    MillstreamError,
    SerializationError,
    TopicNotFoundError,
)
from millstream.topics import Topic

__version__ = "0.1.0"

__all__ = [
    "App",
    "BrokerUnreachableError",
    "ConfigurationError",
    "DeliveryError",
    "MillstreamError",
    "SerializationError",
    "Topic",
    "TopicNotFoundError",
    "__version__",
]
