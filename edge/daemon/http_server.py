"""Health, metrics and the software trigger over HTTP (standard library only).

    GET  /health    200 {"status": "ready", ...} or 503 {"status": "not-ready", ...}
    GET  /metrics   Prometheus text format
    POST /trigger   one software trigger (trigger.mode = "software"); 404 otherwise

Off by default; loopback unless ``http.allow_remote`` is set, and then every request must carry
the token from ``http.token_file`` (see :mod:`edge.netbind`, the one owner of that rule); a request
without it gets 401.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import urlsplit

from ..errors import ConfigError
from ..log_format import log_event
from ..netbind import ListenAddress, parse_listen, request_authorized

log = logging.getLogger("edge.daemon.http")


class _ServerV6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class StatusServer:
    def __init__(self, listen: str, health: Callable[[], dict], metrics: Callable[[], str],
                 trigger: Callable[[], bool] | None = None, token: str | None = None):
        try:
            addr = parse_listen(listen)
        except ValueError as e:
            raise ConfigError(f"http.listen: {e}") from None
        host, port = addr.host, addr.port
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

            def _route(self) -> str | None:
                """The request's path, or None after answering 401 to a request without the token."""
                if not request_authorized(token, self.headers, self.path):
                    self._send(401, "token required\n", "text/plain")
                    return None
                return urlsplit(self.path).path

            def do_GET(self):  # noqa: N802 (http.server's naming)
                route = self._route()
                if route is None:
                    return
                if route == "/health":
                    h = get_health()
                    self._send(200 if h.get("status") == "ready" else 503, json.dumps(h), "application/json")
                elif route == "/metrics":
                    self._send(200, get_metrics(), "text/plain; version=0.0.4")
                else:
                    self._send(404, "not found\n", "text/plain")

            def do_POST(self):  # noqa: N802
                route = self._route()
                if route is None:
                    return
                if route == "/trigger" and trigger is not None:
                    ok = trigger()
                    self._send(202 if ok else 429, json.dumps({"accepted": ok}), "application/json")
                else:
                    self._send(404, "not found\n", "text/plain")

            def log_message(self, fmt, *args):  # requests are not worth a log line each
                pass

        try:
            server_cls = _ServerV6 if ":" in host else ThreadingHTTPServer
            self.httpd = server_cls((host, int(port)), Handler)
        except OSError as e:
            raise ConfigError(f"http.listen: cannot listen on {listen}: {e}") from None
        self.httpd.daemon_threads = True
        self.bound = ListenAddress(host, self.httpd.server_address[1])
        self.address = str(self.bound)
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="http", daemon=True)

    def start(self) -> "StatusServer":
        self._thread.start()
        log_event(log, logging.INFO, "health and metrics served", address=self.address)
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
