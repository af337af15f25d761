"""Windows for event-time aggregations: tumbling, hopping, sliding and session.

See docs/windows.md for the exact semantics.
"""

from millstream.processors.windows.definitions import Hopping, Session, Sliding, Tumbling, Window

__all__ = ["Hopping", "Session", "Sliding", "Tumbling", "Window"]
