"""The worker's HTTP endpoints: ``/metrics``, ``/healthz`` and ``/readyz``.

``/healthz`` answers 200 while the processing loop is alive (a liveness probe);
``/readyz`` answers 200 while the worker owns partitions and is not restoring state
(a readiness probe); either answers 503 otherwise. Anything else is 404.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

log = logging.getLogger("millstream.metrics")

__all__ = ["HEALTH_PATH", "METRICS_PATH", "READY_PATH", "STALL_TIMEOUT", "HealthServer", "is_alive"]

METRICS_PATH = "/metrics"
HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
#: /healthz fails when the loop has not come round for this long (a stuck worker).
STALL_TIMEOUT = 30.0


def is_alive(last_loop: float, restoring: bool, now: float) -> bool:
    """What /healthz answers: the loop came round within :data:`STALL_TIMEOUT` of ``now``,
    or a restore (which blocks the loop, and would only start again) is under way."""
    return restoring or now - last_loop < STALL_TIMEOUT


class HealthServer:
    """Serves ``/metrics``, ``/healthz`` (the loop is alive) and ``/readyz`` (the worker
    has partitions and is not restoring) on a background thread."""

    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry,
        healthy: Callable[[], bool],
        ready: Callable[[], bool],
    ) -> None:
        probes = {
            HEALTH_PATH: (healthy, b"ok\n", b"stalled\n"),
            READY_PATH: (ready, b"ready\n", b"not ready\n"),
        }

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                if path == METRICS_PATH:
                    self._send(200, generate_latest(registry), "text/plain; version=0.0.4")
                elif path in probes:
                    check, good, bad = probes[path]
                    ok = check()
                    self._send(200 if ok else 503, good if ok else bad)
                else:
                    self._send(404, b"not found\n")

            def _send(self, code: int, body: bytes, kind: str = "text/plain") -> None:
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        log.info("metrics on http://%s:%d%s", host, self.port, METRICS_PATH)

    def close(self) -> None:
        """Stop serving and free the port."""
        self._httpd.shutdown()
        self._httpd.server_close()
