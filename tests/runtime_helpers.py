"""Shared bits for the line-runtime tests: a station config around the tiny inspector, and readers."""

from __future__ import annotations

import copy
import json
import socket
from pathlib import Path

from edge.config import RuntimeConfig, parse_config


def merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def station_dict(inspector: Path, out: Path, **extra) -> dict:
    """A station on the tiny 64x64 inspector and a synthetic metal source (30% planted defects)."""
    base = {
        "station": "test",
        "inspector": {"path": str(inspector)},
        "source": {"uri": "synthetic", "synthetic": {"texture": "metal", "size": [64, 64], "defect_rate": 0.3,
                                                      "seed": 7}},
        "capture": {"drop_policy": "every", "batch_size": 2},
        "storage": {"root": str(out), "retention": {"min_free_mb": 0}},
    }
    return merge(base, extra)


def station(inspector: Path, out: Path, **extra) -> RuntimeConfig:
    return parse_config(station_dict(inspector, out, **extra), "test")


def records(path: Path) -> list[dict]:
    """Decision log lines; asserts the file ends with a complete line."""
    data = Path(path).read_bytes()
    assert data == b"" or data.endswith(b"\n"), "last line of the decision log is torn"
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]


def gpio_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seq_of(image_id: str) -> int:
    """synthetic-000012-spot -> 12"""
    return int(image_id.split("-")[1])
