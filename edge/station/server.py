"""The station page's HTTP server (standard library; loopback by default, a token beyond it).

    GET  /                       the page (inline CSS and script; nothing from the network)
    GET  /api/state              counters, rates, latency, READY, latest part, NG gallery, trend, drift, feedback
    GET  /live.jpg               the latest frame with its heat map
    GET  /part/SEQ               one part: its pictures, full record and the feedback buttons
    GET  /part/SEQ/overlay.jpg | image.png | mask.png     what storage kept of it (typed by the kept file)
    POST /part/SEQ/good | /part/SEQ/missed                 feedback (form fields: operator, note)
    POST /refit | /undo                                     refit with the marked-good parts; undo it

The rule for where it may listen and when a token is needed belongs to :mod:`edge.netbind`.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from ..errors import ConfigError, EdgeError
from ..log_format import log_event
from ..netbind import parse_listen, request_authorized
from . import page
from .feedback import Feedback
from .state import StationState

log = logging.getLogger("edge.station")
PART = re.compile(r"^/part/(\d+)(?:/(overlay|image|mask)\.(?:png|jpg)|/(good|missed))?$")
MAX_FORM = 16_384


class StationServer:
    def __init__(self, listen: str, state: StationState, feedback: Feedback | None, token: str | None = None,
                 station: str = "line", refresh_ms: int = 1000):
        addr = parse_listen(listen)
        self.state, self.feedback, self.token = state, feedback, token
        srv = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "edge-inspect-station"

            def _send(self, code: int, body: bytes | str, ctype: str, extra: dict | None = None) -> None:
                data = body.encode() if isinstance(body, str) else body
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                self.send_header("X-Content-Type-Options", "nosniff")
                self.send_header("Content-Security-Policy", "default-src 'self'; img-src 'self' blob:; "
                                 "style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'")
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the browser went on to a newer picture

            def _authorized(self) -> bool:
                if request_authorized(srv.token, self.headers, self.path):
                    return True
                self._send(401, "a token is required: open the page as /?token=TOKEN\n", "text/plain")
                return False

            def do_GET(self):  # noqa: N802
                if not self._authorized():
                    return
                path = urlsplit(self.path).path
                if path == "/":
                    self._send(200, page.station_page(station, refresh_ms), "text/html; charset=utf-8")
                elif path == "/api/state":
                    snap = srv.state.snapshot()
                    snap["feedback"] = srv.feedback.status() if srv.feedback else None
                    self._send(200, json.dumps(snap), "application/json")
                elif path == "/live.jpg":
                    live = srv.state.live_jpeg()
                    if not live or not live[1]:
                        self._send(404, "no frame yet\n", "text/plain")
                    else:
                        self._send(200, live[1], "image/jpeg", {"X-Part": str(live[0])})
                elif (m := PART.match(path)) and not m.group(3):
                    self._part(int(m.group(1)), m.group(2))
                else:
                    self._send(404, "not found\n", "text/plain")

            def _part(self, seq: int, kind: str | None) -> None:
                part = srv.state.part(seq)
                if part is None:
                    self._send(404, f"part {seq} is no longer held by the station page\n", "text/plain")
                    return
                if kind is None:
                    self._send(200, page.part_page(part, srv.feedback is not None, _query_token(self.path)),
                               "text/html; charset=utf-8")
                    return
                rec = part.record
                file = {"overlay": rec.overlay, "image": rec.saved_image, "mask": rec.mask}[kind]
                if not file or not Path(file).is_file():
                    self._send(404, f"storage kept no {kind} of part {seq}\n", "text/plain")
                    return
                kept = Path(file)
                self._send(200, kept.read_bytes(),
                           "image/jpeg" if kept.suffix.lower() in (".jpg", ".jpeg") else "image/png")

            def do_POST(self):  # noqa: N802
                if not self._authorized():
                    return
                n = int(self.headers.get("Content-Length") or 0)
                if n > MAX_FORM:
                    self._send(413, "form too large\n", "text/plain")
                    return
                form = {k: v[0][:500] for k, v in parse_qs(self.rfile.read(n).decode("utf-8", "replace")).items()}
                path = urlsplit(self.path).path
                fb = srv.feedback
                if fb is None:
                    self._send(404, "feedback is off on this station\n", "text/plain")
                    return
                op, note = form.get("operator", ""), form.get("note", "")
                try:
                    if (m := PART.match(path)) and m.group(3):
                        act = fb.mark_good if m.group(3) == "good" else fb.mark_missed
                        result = act(int(m.group(1)), op, note)
                    elif path == "/refit":
                        result = fb.refit(op, note)
                    elif path == "/undo":
                        result = fb.undo(op, note)
                    else:
                        self._send(404, "not found\n", "text/plain")
                        return
                except EdgeError as e:
                    self._reply(form, 409, {"ok": False, "error": str(e)})
                    return
                self._reply(form, 200, {"ok": True, **result})

            def _reply(self, form: dict, code: int, body: dict) -> None:
                if form.get("from") == "form":  # a plain HTML form (no script): back to the page with a message
                    self._send(code, page.message_page(body, _query_token(self.path)), "text/html; charset=utf-8")
                else:
                    self._send(code, json.dumps(body), "application/json")

            def log_message(self, fmt, *args):
                pass

        try:
            self.httpd = ThreadingHTTPServer((addr.host, addr.port), Handler)
        except OSError as e:
            raise ConfigError(f"station_page.listen: cannot listen on {listen}: {e}") from None
        self.httpd.daemon_threads = True
        self.address = f"{addr.host}:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="station-http", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.address}/"

    def start(self) -> "StationServer":
        self._thread.start()
        log_event(log, logging.INFO, "station page served", url=self.url, token=self.token is not None)
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _query_token(path: str) -> str:
    return parse_qs(urlsplit(path).query).get("token", [""])[0]
