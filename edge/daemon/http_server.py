"""Health, metrics and the software trigger over HTTP (standard library only).

    GET  /health    200 {"status": "ready", ...} or 503 {"status": "not-ready", ...}
    GET  /metrics   Prometheus text format
    POST /trigger   one software trigger (trigger.mode = "software"); 404 otherwise

Off by default; loopback unless ``http.allow_remote`` is set. There is no authentication, which
is why anything beyond loopback needs that explicit opt-in.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from ..errors import ConfigError
from ..log_format import log_event

log = logging.getLogger("edge.daemon.http")


class StatusServer:
    def __init__(self, listen: str, health: Callable[[], dict], metrics: Callable[[], str],
                 trigger: Callable[[], bool] | None = None):
        host, _, port = listen.rpartition(":")
        host = host.strip("[]")
        get_health, get_metrics = health, metrics

        class Handler(BaseHTTPRequestHandler):
            server_version = "edge-inspect"

            def _send(self, code: int, body: str, ctype: str) -> None:
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802 (http.server's naming)
                if self.path == "/health":
                    h = get_health()
                    self._send(200 if h.get("status") == "ready" else 503, json.dumps(h), "application/json")
                elif self.path == "/metrics":
                    self._send(200, get_metrics(), "text/plain; version=0.0.4")
                else:
                    self._send(404, "not found\n", "text/plain")

            def do_POST(self):  # noqa: N802
                if self.path == "/trigger" and trigger is not None:
                    ok = trigger()
                    self._send(202 if ok else 429, json.dumps({"accepted": ok}), "application/json")
                else:
                    self._send(404, "not found\n", "text/plain")

            def log_message(self, fmt, *args):  # requests are not worth a log line each
                pass

        try:
            self.httpd = ThreadingHTTPServer((host, int(port)), Handler)
        except OSError as e:
            raise ConfigError(f"http.listen: cannot listen on {listen}: {e}") from None
        self.httpd.daemon_threads = True
        self.address = f"{host}:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="http", daemon=True)

    def start(self) -> "StatusServer":
        self._thread.start()
        log_event(log, logging.INFO, "health and metrics served", address=self.address)
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
