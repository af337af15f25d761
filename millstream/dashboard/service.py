"""One app's dashboard without the web server: read, update the model, snapshot panels."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from types import ModuleType
from typing import Any

from millstream.app import App
from millstream.dashboard.model import DashboardModel
from millstream.dashboard.panels import Panel, checked_snapshot, load_panels
from millstream.dashboard.readers import (
    ClusterReader,
    MetricsScraper,
    MetricsTargets,
    take_reading,
)

log = logging.getLogger("millstream.dashboard")


class DashboardService:
    """Gathers one snapshot of an app per :meth:`refresh`.

    Blocking: :meth:`refresh` makes a few admin requests and HTTP requests, each
    bounded (the settings' ``client_timeout``, one second per /metrics). Call it from
    one thread at a time.
    """

    def __init__(
        self,
        model: DashboardModel,
        cluster: ClusterReader,
        scraper: MetricsScraper,
        panels: list[Panel],
        targets: MetricsTargets,
    ) -> None:
        self.model = model
        self.panels = panels
        self.targets = targets
        self._cluster = cluster
        self._scraper = scraper
        self._started: list[Panel] = []

    @classmethod
    def for_app(
        cls, app: App, module: ModuleType, metrics_urls: Iterable[str] = ()
    ) -> DashboardService:
        """The dashboard of ``app``, with the custom panels its ``module`` declares.

        Raises:
            ConfigurationError: the module's ``dashboard_panels`` is not a valid one.
        """
        topology = app.topology
        consumed = set(topology.sources)
        written = {topic.name for topic in topology.outputs}
        model = DashboardModel(
            app.app_id,
            inputs=consumed - written,
            outputs=written - consumed,
            consumed=consumed,
        )
        targets = MetricsTargets.for_settings(app.settings, metrics_urls)
        return cls(
            model,
            ClusterReader(app.settings, app.app_id, consumed | written),
            MetricsScraper(app.app_id, targets),
            load_panels(module, app.settings),
            targets,
        )

    def start(self) -> None:
        """Start the custom panels; one that fails to start is shown with its error."""
        for panel in self.panels:
            try:
                panel.start()
            except Exception:
                log.exception("custom panel %r failed to start", panel.title)
                continue
            self._started.append(panel)

    def stop(self) -> None:
        """Stop the custom panels that started, each once."""
        while self._started:
            panel = self._started.pop()
            try:
                panel.stop()
            except Exception:
                log.exception("custom panel %r failed to stop", panel.title)

    def refresh(self) -> dict[str, Any]:
        """Read everything once and return the page's new state."""
        self.model.add(take_reading(self._cluster, self._scraper))
        return self.model.snapshot(self.panel_snapshots())

    def panel_snapshots(self) -> list[dict[str, Any]]:
        """Each custom panel's title with its snapshot, or with the error it gave."""
        out: list[dict[str, Any]] = []
        for panel in self.panels:
            entry: dict[str, Any] = {"title": panel.title}
            if panel not in self._started:
                entry["error"] = "did not start (see the dashboard's log)"
            else:
                try:
                    entry["snapshot"] = checked_snapshot(panel.snapshot())
                except Exception as exc:
                    entry["error"] = f"{type(exc).__name__}: {exc}"
            out.append(entry)
        return out
