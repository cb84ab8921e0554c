"""Source URIs: what `--source` and ``source.uri`` accept."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import ConfigError

Kind = Literal["camera", "folder", "watch", "file", "rtsp", "gst", "synthetic"]

FORMS = ("camera:INDEX", "folder:PATH", "watch:PATH", "file:VIDEO", "rtsp://HOST/PATH", "gst:PIPELINE",
         "synthetic")


@dataclass(frozen=True)
class SourceSpec:
    kind: Kind
    target: str  # index, path, URL or pipeline; "" for synthetic

    @property
    def live(self) -> bool:
        """Live sources keep producing frames whether or not anyone reads them."""
        return self.kind in ("camera", "rtsp", "gst")

    def __str__(self) -> str:
        if self.kind == "synthetic":
            return "synthetic"
        return self.target if self.kind == "rtsp" else f"{self.kind}:{self.target}"


def parse_source_uri(uri: str) -> SourceSpec:
    u = uri.strip()
    if u == "synthetic":
        return SourceSpec("synthetic", "")
    if u.startswith(("rtsp://", "rtsps://")):
        return SourceSpec("rtsp", u)
    kind, sep, rest = u.partition(":")
    if not sep or kind not in ("camera", "folder", "watch", "file", "gst"):
        raise ConfigError(f"{uri!r} is not a source; use one of: {', '.join(FORMS)}")
    if not rest:
        raise ConfigError(f"{uri!r}: nothing after '{kind}:'")
    if kind == "camera" and not rest.isdigit():
        raise ConfigError(f"{uri!r}: the camera index must be a number such as camera:0")
    return SourceSpec(kind, rest)  # type: ignore[arg-type]
