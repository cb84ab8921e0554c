"""MQTT against a real Mosquitto broker on loopback (started here; skipped if mosquitto is not installed)."""

import json
import os
import shutil
import socket
import subprocess
import threading
import time

import pytest

from edge.config.sections import MqttSection
from edge.records import DecisionRecord
from edge.sinks import Decision
from edge.sinks.mqtt_sink import MqttSink
from edge.telemetry import Telemetry

from .runtime_helpers import free_port

mqtt = pytest.importorskip("paho.mqtt.client", reason="paho-mqtt not installed")


@pytest.fixture
def broker(tmp_path):
    exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
    if not exe:
        pytest.skip("mosquitto is not installed (apt-get install -y mosquitto)")
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"mosquitto did not start: {proc.stdout.read().decode(errors='replace')}")
            time.sleep(0.05)
    yield port
    proc.terminate()
    proc.wait(10)


def subscribe(port, topic):
    got, ready = [], threading.Event()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-sub")
    c.on_connect = lambda cl, u, f, rc, p: cl.subscribe(topic, qos=1)
    c.on_subscribe = lambda cl, u, mid, rcs, p: ready.set()
    c.on_message = lambda cl, u, msg: got.append((msg.topic, msg.payload.decode(), msg.retain))
    c.connect("127.0.0.1", port)
    c.loop_start()
    assert ready.wait(10), "subscription not acknowledged"
    return c, got


def wait_for(pred, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


def test_decisions_are_published_to_a_real_broker(broker):
    sub, got = subscribe(broker, "edge-inspect/#")
    tel = Telemetry()
    sink = MqttSink(MqttSection(enabled=True, port=broker, qos=1), tel, station="cell7")
    assert wait_for(lambda: sink.client.is_connected())
    recs = [DecisionRecord(image=f"cam0-{i:06d}", decision=d, score=s, raw_score=s * 5, inspector="abc123")
            for i, (d, s) in enumerate([("OK", 0.4), ("NG", 1.7), ("OK", 0.2)])]
    for r in recs:
        sink.emit(Decision(r, 0.0, 0.0))
    sink.close()
    decisions = lambda: [json.loads(p) for t, p, _ in got if t == "edge-inspect/cell7/decisions"]  # noqa: E731
    assert wait_for(lambda: len(decisions()) == 3)
    for sent, recv in zip(recs, decisions()):
        assert recv == {"station": "cell7", **sent.to_dict()}
    status = [p for t, p, _ in got if t == "edge-inspect/cell7/status"]
    assert status[0] == "online" and wait_for(lambda: [p for t, p, _ in got if t.endswith("/status")][-1] == "offline")
    assert tel.count("mqtt_published") == 3
    sub.loop_stop()
    sub.disconnect()


def test_missing_paho_is_a_config_error(monkeypatch):
    import sys

    from edge.errors import ConfigError

    monkeypatch.setitem(sys.modules, "paho.mqtt.client", None)
    monkeypatch.setitem(sys.modules, "paho", None)
    with pytest.raises(ConfigError, match="paho-mqtt"):
        MqttSink(MqttSection(enabled=True), Telemetry(), "s")


def test_records_are_kept_for_a_broker_that_is_away():
    tel = Telemetry()
    sink = MqttSink(MqttSection(enabled=True, port=free_port(), qos=1), tel, station="cell7")
    for i in range(3):
        sink.emit(Decision(DecisionRecord(image=f"f{i}", decision="OK"), 0.0, 0.0))
    done = threading.Event()
    threading.Thread(target=lambda: (sink.close(), done.set()), daemon=True).start()
    assert done.wait(30), "close() hung without a broker"
    assert tel.count("mqtt_queued_offline") == 3 and tel.count("mqtt_dropped") == 0
