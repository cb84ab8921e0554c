"""MQTT: publish every decision record (no images, no local paths) for central collection.

paho-mqtt is imported only when MQTT is enabled. The client reconnects by itself; while the
broker is away, paho keeps up to ``max_queued`` QoS 1/2 messages and sends them on reconnect;
the rest (and QoS 0 messages) are dropped and counted.
A retained status topic says "online", and the broker's last will says "offline" if this
process dies without a clean disconnect.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ..config.sections import MqttSection
from ..errors import ConfigError
from ..log_format import Throttle, log_event
from ..telemetry import Telemetry
from . import Decision

log = logging.getLogger("edge.sinks.mqtt")


def _import_paho():
    try:
        import paho.mqtt.client as mqtt
    except ImportError:
        raise ConfigError("mqtt.enabled is true but paho-mqtt is not installed",
                          hint="pip install 'paho-mqtt>=2' (or: pip install edge-inspect[mqtt])") from None
    return mqtt


class MqttSink:
    name = "mqtt"
    needs_images = False

    def __init__(self, cfg: MqttSection, telemetry: Telemetry, station: str, max_queued: int = 10000):
        mqtt = _import_paho()
        self.cfg = cfg
        self.telemetry = telemetry
        self.station = station
        self.topic = cfg.topic.replace("{station}", station)
        self.status_topic = cfg.status_topic.replace("{station}", station)
        self._throttle = Throttle(10.0)
        self._last = None
        self._no_conn = mqtt.MQTT_ERR_NO_CONN
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=cfg.client_id or f"edge-inspect-{station}")
        if cfg.username:
            password = Path(cfg.password_file).read_text().strip() if cfg.password_file else None
            self.client.username_pw_set(cfg.username, password)
        self.client.will_set(self.status_topic, "offline", qos=1, retain=True)
        self.client.max_queued_messages_set(max_queued)
        self.client.reconnect_delay_set(1, 30)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.connect_async(cfg.host, cfg.port, keepalive=cfg.keepalive_s)
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            log_event(log, logging.ERROR, "MQTT broker refused the connection", reason=str(reason_code))
            return
        log_event(log, logging.INFO, "MQTT connected", host=self.cfg.host, port=self.cfg.port)
        client.publish(self.status_topic, "online", qos=1, retain=True)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        if reason_code != 0:
            log_event(log, logging.WARNING, "MQTT disconnected; reconnecting", reason=str(reason_code))

    @property
    def problem(self) -> str | None:
        """For health: the broker being away (records wait in paho's queue meanwhile)."""
        return None if self.client.is_connected() else f"not connected to {self.cfg.host}:{self.cfg.port}"

    def emit(self, d: Decision) -> None:
        payload = json.dumps({"station": self.station, **d.record.to_dict()}, separators=(",", ":"))
        info = self.client.publish(self.topic, payload, qos=self.cfg.qos)
        offline = info.rc == self._no_conn
        if info.rc != 0 and not (offline and self.cfg.qos > 0):
            # paho's queue is full, or QoS 0 with no connection: this record will not reach the broker
            self.telemetry.inc("mqtt_dropped")
            held = self._throttle.check("drop")
            if held is not None:
                log_event(log, logging.WARNING, "MQTT record dropped", rc=str(info.rc), since_last_report=held)
            return
        self._last = info
        # QoS 1/2 while disconnected: paho keeps the message and sends it after reconnecting
        self.telemetry.inc("mqtt_queued_offline" if offline else "mqtt_published")

    def publish_drift(self, state: str, status: dict) -> None:
        """The drift state, retained on ``drift_topic`` (called when it changes; paho is thread-safe)."""
        topic = self.cfg.drift_topic.replace("{station}", self.station)
        payload = json.dumps({"station": self.station, "state": state, **status}, separators=(",", ":"))
        self.client.publish(topic, payload, qos=1, retain=True)
        self.telemetry.inc("mqtt_drift_published")

    def close(self, timeout_s: float = 5.0) -> None:
        """Wait (briefly) until queued records have reached the broker, then say offline and disconnect."""
        try:
            if self._last is not None and self.client.is_connected():
                self._last.wait_for_publish(timeout_s)
            info = self.client.publish(self.status_topic, "offline", qos=1, retain=True)
            if self.client.is_connected():
                info.wait_for_publish(2.0)
        except (RuntimeError, ValueError):
            pass
        if not self.client.is_connected() and self.telemetry.count("mqtt_queued_offline"):
            log_event(log, logging.WARNING, "MQTT broker unreachable at shutdown: records queued while it was away "
                      "are not sent (the decision log has them)",
                      queued_offline=int(self.telemetry.count("mqtt_queued_offline")))
        self.client.disconnect()
        self.client.loop_stop()
