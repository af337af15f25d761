"""millstream: stream processing and a task queue for Python on Apache Kafka.

The public API is what this package exports, and the modules it names::

    from millstream import App, errors, sinks, windows
    from millstream import Task, TaskHandle, current_task   # tasks (docs/tasks.md)

Everything else (``millstream.processors.worker``, ``millstream.kafka``, ...) is the
implementation: importable, but free to change between releases.
"""

from millstream import errors, sinks, windows
from millstream.app import App
from millstream.processors.tasks import Task, TaskHandle, current_task
from millstream.topics import Topic

__version__ = "0.1.0"

__all__ = [
    "App",
    "Task",
    "TaskHandle",
    "Topic",
    "__version__",
    "current_task",
    "errors",
    "sinks",
    "windows",
]
