"""Network surfaces: loopback by default, anything else only by config, with a token; the addresses really bound."""

import subprocess
import threading
import urllib.error
import urllib.request

import pytest
from click.testing import CliRunner

from edge.cli import cli
from edge.daemon.http_server import StatusServer
from edge.errors import ConfigError
from edge.netbind import is_loopback, parse_listen, read_token, request_authorized

from .netstat import listening
from .runtime_helpers import free_port, station_dict
from .test_daemon import CLI, finish, line_count, wait_until, write_toml


@pytest.mark.parametrize("host, loop", [("127.0.0.1", True), ("127.8.0.1", True), ("::1", True), ("[::1]", True),
                                        ("localhost", True), ("0.0.0.0", False), ("::", False),
                                        ("192.168.1.20", False), ("line-pc.plant.local", False)])
def test_what_counts_as_loopback(host, loop):
    assert is_loopback(host) is loop


@pytest.mark.parametrize("listen, want", [("127.0.0.1:9108", ("127.0.0.1", 9108)), ("[::1]:0", ("::1", 0)),
                                          ("9108", None), ("127.0.0.1:", None), (":9108", None),
                                          ("127.0.0.1:70000", None), ("[::1:80", None)])
def test_parse_listen(listen, want):
    if want is None:
        with pytest.raises(ValueError):
            parse_listen(listen)
    else:
        a = parse_listen(listen)
        assert (a.host, a.port) == want


def test_validate_config_warns_about_a_reachable_surface(tmp_path):
    token = tmp_path / "token"
    token.write_text("0123456789abcdef0123\n")
    remote = write_toml(tmp_path / "remote.toml", {"http": {"listen": "0.0.0.0:9108", "allow_remote": True,
                                                            "token_file": str(token)},
                                                   "mqtt": {"enabled": True, "host": "mqtt.plant.local"},
                                                   "capture": {"drop_policy": "latest"}})
    local = write_toml(tmp_path / "local.toml", {"http": {"listen": "127.0.0.1:9108"},
                                                 "capture": {"drop_policy": "latest"}})
    no_token = write_toml(tmp_path / "nt.toml", {"http": {"listen": "0.0.0.0:9108", "allow_remote": True}})
    res = CliRunner().invoke(cli, ["validate-config", str(remote), str(local), str(no_token)])
    assert res.exit_code == 5, res.output
    assert f"{remote}: ok\n  warning: http: health and metrics listens on 0.0.0.0:9108, reachable" in res.output
    assert "warning: mqtt: decision records leave this device for mqtt.plant.local:1883 without a password" \
        in res.output
    assert f"{local}: ok\n" in res.output and res.output.count("warning:") == 2
    assert "\n  http.token_file: health and metrics listens on 0.0.0.0" in res.output.split(f"{no_token}:")[1]


@pytest.mark.parametrize("content, ok", [("0123456789abcdef\n", True), ("short", False), ("two words here xx", False),
                                         (None, False)])
def test_token_file_is_checked(tmp_path, content, ok):
    p = tmp_path / "token"
    if content is not None:
        p.write_text(content)
    if ok:
        assert read_token(str(p)) == content.strip()
    else:
        with pytest.raises(ConfigError, match="token_file"):
            read_token(str(p))
    assert read_token("") is None


def _get(url, headers=None, method="GET"):
    req = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_every_request_needs_the_token_when_one_is_set():
    token = "0123456789abcdef"
    srv = StatusServer("127.0.0.1:0", lambda: {"status": "ready"}, lambda: "x 1\n", lambda: True, token=token).start()
    try:
        base = f"http://{srv.address}"
        assert _get(base + "/health") == 401 and _get(base + "/metrics") == 401
        assert _get(base + "/trigger", method="POST") == 401
        assert _get(base + "/health", {"Authorization": "Bearer wrong-token-0000"}) == 401
        assert _get(base + "/health", {"Authorization": f"Bearer {token}"}) == 200
        assert _get(base + "/metrics", {"X-Edge-Token": token}) == 200
        assert _get(base + f"/health?token={token}") == 200
        assert _get(base + "/trigger", {"Authorization": f"Bearer {token}"}, "POST") == 202
    finally:
        srv.close()
    assert request_authorized(None, {}, "/health")  # no token configured: open (loopback only, by config rule)


def test_status_server_binds_exactly_the_configured_address():
    srv = StatusServer("127.0.0.1:0", lambda: {"status": "ready"}, lambda: "").start()
    srv6 = StatusServer("[::1]:0", lambda: {"status": "ready"}, lambda: "").start()
    try:
        bound = listening_self()
        assert ("127.0.0.1", srv.bound.port) in bound and ("::1", srv6.bound.port) in bound
        assert srv6.address == f"[::1]:{srv6.bound.port}"
    finally:
        srv.close()
        srv6.close()


def listening_self():
    import os
    return listening(os.getpid())


def test_a_running_station_listens_only_on_loopback(tiny_inspector_ro, tmp_path):
    """The real process: with health and the station page on, its only listening sockets are theirs on
    127.0.0.1; with defaults, none at all."""
    port, page = free_port(), free_port()
    for name, extra, want in (
            ("on", {"http": {"listen": f"127.0.0.1:{port}"}, "station_page": {"listen": f"127.0.0.1:{page}"}},
             sorted([("127.0.0.1", port), ("127.0.0.1", page)])),
            ("default", {}, [])):
        out = tmp_path / name
        cfg = write_toml(tmp_path / f"{name}.toml", station_dict(
            tiny_inspector_ro, out, source={"synthetic": {"fps": 30}}, **extra))
        proc = subprocess.Popen([*CLI, "run", "--config", str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        try:
            wait_until(lambda: line_count(out / "decisions.jsonl") >= 3 or proc.poll() is not None,
                       what="decisions")
            assert proc.poll() is None
            assert sorted(listening(proc.pid)) == want
        finally:
            proc.terminate()
            rc, _, stderr = finish(proc)
        assert rc == 0, stderr[-2000:]


def test_a_missing_token_file_stops_the_station_before_it_starts(tiny_inspector_ro, tmp_path):
    cfg = write_toml(tmp_path / "s.toml", station_dict(
        tiny_inspector_ro, tmp_path / "o", http={"listen": "0.0.0.0:0", "allow_remote": True,
                                                 "token_file": str(tmp_path / "absent")}))
    proc = subprocess.Popen([*CLI, "run", "--config", str(cfg), "--max-frames", "3"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    rc, _, stderr = finish(proc)
    assert rc == 5 and "token_file: cannot read" in stderr and "Traceback" not in stderr
    assert not (tmp_path / "o" / "decisions.jsonl").exists()


def test_thread_safety_of_two_servers_is_not_shared_state():
    # two servers with different tokens in one process do not see each other's token
    a = StatusServer("127.0.0.1:0", lambda: {"status": "ready"}, lambda: "", token="a" * 16).start()
    b = StatusServer("127.0.0.1:0", lambda: {"status": "ready"}, lambda: "", token="b" * 16).start()
    try:
        results = []
        ts = [threading.Thread(target=lambda s=s, t=t: results.append(
            _get(f"http://{s.address}/health", {"X-Edge-Token": t}))) for s, t in ((a, "a" * 16), (b, "a" * 16))]
        [t.start() for t in ts]
        [t.join() for t in ts]
        assert sorted(results) == [200, 401]
    finally:
        a.close()
        b.close()
