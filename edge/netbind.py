"""Where a station may listen on the network, and the token that guards anything beyond loopback.

The one owner of the rule for every listening surface (health/metrics over HTTP, the station page):

- by default a surface is off or on loopback (127.0.0.1, ::1, localhost);
- any other address needs the surface's ``allow_remote = true`` **and** a ``token_file``; then
  every request must carry the token (``Authorization: Bearer TOKEN``, header ``X-Edge-Token``,
  or ``?token=TOKEN`` for a browser), and ``validate-config`` warns that it is reachable.

Config sections call :func:`listen_problems` and :func:`listen_warnings`; servers call
:func:`read_token` when they start and :func:`request_authorized` on each request.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from .errors import ConfigError

MIN_TOKEN_CHARS = 16


@dataclass(frozen=True)
class ListenAddress:
    host: str  # without IPv6 brackets
    port: int

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; a host name or a wildcard (0.0.0.0, ::) is not."""
    h = host.strip("[]").lower()
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def parse_listen(listen: str) -> ListenAddress:
    """``HOST:PORT`` (IPv6 as ``[::1]:PORT``) → :class:`ListenAddress`; ValueError says what is wrong."""
    host, sep, port = listen.rpartition(":")
    host = host.strip()
    if host.startswith("[") != host.endswith("]"):
        raise ValueError(f"expected HOST:PORT, got {listen!r} (write IPv6 as [::1]:PORT)")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"expected 'off' or HOST:PORT, got {listen!r}")
    return ListenAddress(host, int(port))


def listen_problems(listen: str, allow_remote: bool, token_file: str, what: str) -> list[tuple[str, str]]:
    """Config problems as (key, message) for a section with ``listen``/``allow_remote``/``token_file``."""
    if listen == "off":
        return []
    try:
        addr = parse_listen(listen)
    except ValueError as e:
        return [("listen", str(e))]
    if addr.loopback:
        return []
    if not allow_remote:
        return [("listen", f"{addr.host} is not loopback; set allow_remote = true (and a token_file) to expose "
                           f"{what} on the network")]
    if not token_file:
        return [("token_file", f"{what} listens on {addr.host}, beyond loopback: a token is required (a file "
                               f"holding at least {MIN_TOKEN_CHARS} characters, e.g. from `openssl rand -hex 16`)")]
    return []


def listen_warnings(listen: str, what: str) -> list[str]:
    """What validate-config says about a valid but reachable surface."""
    if listen == "off":
        return []
    try:
        addr = parse_listen(listen)
    except ValueError:
        return []
    if addr.loopback:
        return []
    return [f"{what} listens on {addr}, reachable from other machines; every request needs the token"]


def read_token(token_file: str) -> str | None:
    """The token in ``token_file`` (stripped), or None when no file is configured."""
    if not token_file:
        return None
    p = Path(token_file)
    try:
        token = p.read_text().strip()
    except OSError as e:
        raise ConfigError(f"token_file: cannot read {p}: {e.strerror or e}",
                          hint="create it readable by the service user only (chmod 600)") from None
    if len(token) < MIN_TOKEN_CHARS or any(c.isspace() for c in token):
        raise ConfigError(f"token_file: {p} must hold one token of at least {MIN_TOKEN_CHARS} characters "
                          "without spaces", hint="e.g. `openssl rand -hex 16 > FILE`")
    if os.name == "posix" and p.stat().st_mode & 0o077:
        from logging import getLogger

        getLogger("edge.netbind").warning("token file %s is readable by other users; chmod 600 it", p)
    return token


def request_authorized(token: str | None, headers, path: str) -> bool:
    """True when no token is configured, or the request carries it (compared in constant time)."""
    if token is None:
        return True
    offered = []
    auth = headers.get("Authorization") or ""
    if auth.startswith("Bearer "):
        offered.append(auth[len("Bearer "):].strip())
    if headers.get("X-Edge-Token"):
        offered.append(headers.get("X-Edge-Token").strip())
    offered.extend(parse_qs(urlsplit(path).query).get("token", []))
    want = token.encode()
    return any(hmac.compare_digest(o.encode(), want) for o in offered)
