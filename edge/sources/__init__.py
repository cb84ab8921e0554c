"""Where frames come from. A source is iterable (yielding :class:`Frame`) and has ``close()``,
which may be called from another thread to end the iteration.

    source = open_source(cfg.source)   # camera:0, folder:…, watch:…, file:…, rtsp://…, gst:…, synthetic
    for frame in source: ...
"""

from __future__ import annotations

from typing import Callable, Iterator, Protocol

from ..config.sections import SourceSection
from .frame import Frame
from ..config.source_uri import SourceSpec, parse_source_uri

__all__ = ["Frame", "Source", "SourceSpec", "open_source", "parse_source_uri"]


class Source(Protocol):
    live: bool

    def __iter__(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...


def open_source(cfg: SourceSection, on_state: Callable[[bool, str], None] | None = None,
                wait_for_camera: bool = False) -> Source:
    """Open the configured source.

    A camera that cannot be opened raises :class:`SourceError` at once, unless
    ``wait_for_camera`` (the daemon), in which case it is retried with backoff while
    ``on_state(False, ...)`` reports NOT-READY.
    """
    spec = parse_source_uri(cfg.uri)
    on_state = on_state or (lambda ok, why: None)
    if spec.kind in ("synthetic", "folder", "watch"):
        if spec.kind == "synthetic":
            from .synthetic import SyntheticSource

            src: Source = SyntheticSource(cfg.synthetic)
        elif spec.kind == "folder":
            from .folder import FolderSource

            src = FolderSource(spec.target, loop=cfg.loop)
        else:
            from .watch import WatchSource

            src = WatchSource(spec.target, cfg.watch_poll_ms, cfg.watch_existing)
        on_state(True, "")
        return src
    from .camera import CameraSource

    cam = CameraSource(spec, cfg, on_state)
    if not wait_for_camera:
        cam.open()
    else:
        on_state(False, f"{spec}: connecting")
    return cam
