"""Default locations, so `edge-inspect fit --good DIR` works with no other flags after set-up."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_ARCH = "efficientnet-lite0"


def data_home() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "edge-inspect"


def default_backbone_dir(arch: str = DEFAULT_ARCH) -> Path:
    """Where `edge-export backbone` writes and `edge-inspect fit` looks, unless told otherwise.

    ``EDGE_INSPECT_BACKBONE`` overrides it (e.g. on a device where bundles live in /opt).
    """
    env = os.environ.get("EDGE_INSPECT_BACKBONE")
    if env:
        return Path(env)
    return data_home() / "backbones" / arch
