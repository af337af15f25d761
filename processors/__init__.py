"""Processing: the stream DSL that ``App.stream`` starts, and its windows.

The package exports the DSL only. The runtime behind it (the worker, the topology,
state, checkpoints, exactly-once, dead letters) lives in its own modules,
``millstream.processors.worker`` and so on, and is not part of the public API.
"""

from millstream.processors import windows
from millstream.processors.grouping import GroupedStream, WindowedStream, WindowResults
from millstream.processors.stream import Stream
from millstream.processors.tables import GlobalTable

__all__ = [
    "GlobalTable",
    "GroupedStream",
    "Stream",
    "WindowResults",
    "WindowedStream",
    "windows",
]
