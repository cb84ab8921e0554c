import dataclasses
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge.cli import cli
from edge.config import config_problems, describe_config, load_config, parse_config, read_toml
from edge.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
MIN = {"capture": {"drop_policy": "every"}}

CASES = [
    # (extra settings, expected problem or None)
    ({}, None),
    ({"capture": {"drop_policy": "latest", "queue_size": 8, "batch_size": 4}}, None),
    ({"capture": {}}, "capture.drop_policy: is required"),
    ({"capture": {"drop_policy": "newest"}}, "capture.drop_policy: must be one of 'latest', 'every'"),
    ({"capture": {"drop_policy": "every", "queue": 3}}, "capture.queue: unknown key"),
    ({"bogus": 1}, "bogus: unknown key"),
    ({"source": {"uri": "usb:0"}}, "source.uri: 'usb:0' is not a source"),
    ({"source": {"uri": "camera:front"}}, "source.uri: 'camera:front': the camera index must be a number"),
    ({"source": {"uri": "rtsp://10.0.0.5/stream1"}}, None),
    ({"source": {"uri": "gst:nvarguscamerasrc ! appsink"}}, None),
    ({"source": {"synthetic": {"size": [64]}}}, "source.synthetic.size: expected 2 values, got 1"),
    ({"source": {"read_timeout_s": 0}}, "source.read_timeout_s: must be >= 0.1"),
    ({"source": {"reconnect_initial_s": 5, "reconnect_max_s": 1}}, "source.reconnect_max_s: must be >="),
    ({"inspector": {"threads": "4"}}, "inspector.threads: expected an integer, got '4'"),
    ({"inspector": {"threads": True}}, "inspector.threads: expected an integer, got True"),
    ({"inspector": {"backend": "onnxruntime", "device": "GPU"}}, "inspector.device: 'GPU' is not a onnxruntime device"),
    ({"inspector": {"device": "GPU"}}, None),  # backend auto: OpenVINO knows GPU
    ({"inspector": {"roi_polygon": [[0, 0], [10, 0], [10, 10]]}}, None),
    ({"inspector": {"roi_polygon": [[0, 0], [10, 0]]}}, "inspector.roi_polygon: needs at least 3 points"),
    ({"inspector": {"roi": "r.png", "roi_polygon": [[0, 0], [10, 0], [5, 5]]}}, "inspector.roi: give roi or"),
    ({"inspector": {"device": "fpga"}}, "inspector.device: 'fpga' is not a auto device"),
    ({"inspector": {"backend": "openvino", "device": "GPU.1"}}, None),
    ({"inspector": {"image_threshold": 0}}, "inspector.image_threshold: must be > 0"),
    ({"gpio": {"backend": "sim", "reject": {"line": 4}}}, None),
    ({"gpio": {"backend": "sim", "reject": {"line": 4, "delay_msec": 5}}}, "gpio.reject.delay_msec: unknown key"),
    ({"gpio": {"backend": "sim", "reject": {"line": 4, "width_ms": 0}}}, "gpio.reject.width_ms: must be > 0"),
    ({"gpio": {"backend": "sim", "ok": {"line": 4}, "reject": {"line": 4}}},
     "gpio.reject.line: line 4 is already used by gpio.ok"),
    ({"gpio": {"backend": "jetson", "ok": {"line": "GPIO17"}}}, "gpio.ok.line: Jetson.GPIO needs a pin number"),
    ({"gpio": {"backend": "sim", "ready": {"line": 1, "width_ms": 5}}},
     "gpio.ready.width_ms: the ready line is a level"),
    ({"trigger": {"mode": "gpio"}}, "trigger.mode: 'gpio' needs a GPIO backend"),
    ({"trigger": {"mode": "gpio"}, "gpio": {"backend": "sim"}}, "trigger.line: is required"),
    ({"trigger": {"mode": "gpio", "line": 2}, "gpio": {"backend": "sim", "ng": {"line": 2}}},
     "trigger.line: line 2 is already an output (gpio.ng)"),
    ({"trigger": {"mode": "software"}}, "trigger.mode: 'software' triggers arrive as POST /trigger"),
    ({"trigger": {"mode": "software"}, "http": {"listen": "127.0.0.1:9108"}}, None),
    ({"trigger": {"sim_interval_ms": 100}}, "trigger.sim_interval_ms: only applies to trigger.mode = 'gpio'"),
    ({"http": {"listen": "0.0.0.0:9108"}}, "http.listen: 0.0.0.0 is not loopback"),
    ({"http": {"listen": "0.0.0.0:9108", "allow_remote": True}}, "http.token_file: health and metrics listens on "
                                                                 "0.0.0.0, beyond loopback: a token is required"),
    ({"http": {"listen": "0.0.0.0:9108", "allow_remote": True, "token_file": "/etc/edge/token"}}, None),
    ({"http": {"listen": "[::1]:9108"}}, None),
    ({"http": {"listen": "[::]:9108"}}, "http.listen: :: is not loopback"),
    ({"http": {"listen": "9108"}}, "http.listen: expected 'off' or HOST:PORT"),
    ({"storage": {"log": "../x.jsonl"}}, "storage.log: must be a plain file name"),
    ({"storage": {"ok_sample_rate": 1.5}}, "storage.ok_sample_rate: must be <= 1"),
    ({"hook": {"command": "notify-send NG"}}, "hook.command: expected a list of a string"),
    ({"hook": {"command": ["/usr/bin/logger", "-t", "edge"], "on": ["NG", "MAYBE"]}}, "hook.on[1]: must be one of"),
    ({"mqtt": {"enabled": True, "port": 70000}}, "mqtt.port: must be <= 65535"),
]


def _merge(extra):
    return extra if "capture" in extra else {**MIN, **extra}


@pytest.mark.parametrize("extra,problem", CASES)
def test_config_cases(extra, problem):
    data = _merge(extra)
    if problem is None:
        parse_config(data)
        return
    with pytest.raises(ConfigError) as e:
        parse_config(data)
    assert problem in str(e.value), str(e.value)


def test_every_problem_is_reported_at_once():
    data = {"capture": {"drop_policy": "every", "queue_size": 0}, "typo": {},
            "gpio": {"backend": "gpiod", "reject": {"line": 1, "delay": 2}},
            "source": {"uri": "nope"}, "trigger": {"mode": "gpio"}}
    with pytest.raises(ConfigError) as e:
        parse_config(data)
    text = str(e.value)
    for want in ("capture.queue_size: must be >= 1", "gpio.reject.delay: unknown key", "source.uri:",
                 "typo: unknown key", "trigger.line: is required"):
        assert want in text
    # every line of the message (after the header) has the key.path: message form
    lines = [ln.strip() for ln in text.splitlines()[1:] if ln.strip() and not ln.strip().startswith("hint:")]
    assert all(": " in ln and " " not in ln.split(": ")[0] for ln in lines), lines


def test_overrides_take_precedence(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text('[capture]\ndrop_policy = "every"\n[source]\nuri = "folder:/data"\n')
    cfg = load_config(f, {"source.uri": "camera:1", "storage.root": "/tmp/x"})
    assert cfg.source.uri == "camera:1" and cfg.storage.root == "/tmp/x"
    assert cfg.capture.drop_policy == "every"


def test_config_objects_are_frozen():
    cfg = parse_config(MIN)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.capture.queue_size = 3  # type: ignore[misc]


def test_broken_toml_names_the_file(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text("[capture\n")
    with pytest.raises(ConfigError, match="bad.toml: not valid TOML"):
        load_config(f)


def test_explain_documents_every_key():
    rows = describe_config()
    keys = {r[0] for r in rows}
    assert {"capture.drop_policy", "gpio.reject.delay_ms", "storage.retention.min_free_mb",
            "source.synthetic.defect_rate", "http.listen"} <= keys
    assert all(r[3] for r in rows), [r[0] for r in rows if not r[3]]


DEVICE_CONFIGS = ["jetson-orin-nano.toml", "jetson-xavier-nx.toml", "intel-nuc-openvino.toml", "generic-x86.toml",
                  "dev-laptop-sim.toml"]


@pytest.mark.parametrize("name", DEVICE_CONFIGS)
def test_shipped_device_configs_are_valid(name):
    path = ROOT / "firmware-configs" / name
    assert config_problems(path) == []
    cfg = load_config(path)
    raw = read_toml(path)
    for section, key in (("inspector", "backend"), ("inspector", "device"), ("inspector", "precision"),
                         ("source", "uri"), ("capture", "drop_policy"), ("trigger", "mode"), ("gpio", "backend"),
                         ("storage", "root"), ("storage", "retention")):
        assert key in raw.get(section, {}), f"{name} does not set {section}.{key}"
    assert cfg.http.listen == "off" or cfg.http.listen.startswith("127.0.0.1:")


def test_validate_config_cli(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[capture]\ndrop_policy = "every"\nbatch = 2\n[gpio]\nbackend = "gpiod"\n[gpio.ng]\nline = 3\n'
                   'active = false\n')
    files = [str(ROOT / "firmware-configs" / n) for n in DEVICE_CONFIGS]
    r = CliRunner().invoke(cli, ["validate-config", *files])
    assert r.exit_code == 0, r.output
    assert r.output.count(": ok") == len(files)
    r = CliRunner().invoke(cli, ["validate-config", str(bad), str(tmp_path / "missing.toml")])
    assert r.exit_code == 5
    assert "capture.batch: unknown key" in r.output
    assert "gpio.ng.active: unknown key" in r.output
    assert "missing.toml: no such config file" in r.output


def test_docs_list_every_key():
    text = (ROOT / "docs" / "runtime.md").read_text()
    missing = [key for key, *_ in describe_config() if f"| `{key}` |" not in text]
    assert not missing, f"docs/runtime.md lacks: {missing}"
