"""Windows for event-time aggregations: tumbling, hopping, sliding and session.

```python
from datetime import timedelta

from millstream import App, windows

app = App("clicks")
(
    app.stream(app.topic("clicks"))
    .group_by_key()
    .window(windows.Tumbling(timedelta(minutes=1), grace=timedelta(seconds=10)))
    .count()
    .to(app.topic("clicks-per-minute"))
)
```

The definitions live in :mod:`millstream.processors.windows`; this module is their
public name. docs/windows.md has the exact semantics.
"""

from millstream.processors.windows import Hopping, Session, Sliding, Tumbling, Window

__all__ = ["Hopping", "Session", "Sliding", "Tumbling", "Window"]
