"""The live dashboard of a millstream app: ``millstream dashboard module:app``.

A web page of the app's throughput in and out, consumer lag per partition, the
members of its group and the app's custom panels, read from Kafka and the workers'
/metrics (docs/dashboard.md). Custom panels follow :class:`Panel`. The web server
(Starlette and uvicorn, the ``dashboard`` extra) is imported only to serve.
"""

from millstream.dashboard.model import DashboardModel, RateSeries, Reading, WorkerMetrics
from millstream.dashboard.panels import Panel, checked_snapshot, load_panels

__all__ = [
    "DashboardModel",
    "Panel",
    "RateSeries",
    "Reading",
    "WorkerMetrics",
    "checked_snapshot",
    "load_panels",
]
