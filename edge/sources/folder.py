"""``folder:PATH``: every image in a folder (recursively, sorted), once or in a loop."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Iterator

from ..errors import ImageError, SourceError
from ..imageio import list_images, read_image
from .frame import Frame


def read_frame(path: Path, seq: int, clock=time.monotonic) -> Frame:
    """A file as a required frame; an unreadable one becomes an error frame (and an ERROR record)."""
    try:
        img = read_image(path)
    except ImageError as e:
        t = clock()
        return Frame(seq, str(path), None, t, t, required=True, error=e.message)
    except Exception as e:  # a decoder crash must become a record, not end the run
        t = clock()
        return Frame(seq, str(path), None, t, t, required=True, error=f"{path}: {type(e).__name__}: {e}")
    t = clock()
    return Frame(seq, str(path), img, t, t, required=True)


class FolderSource:
    live = False

    def __init__(self, root: str, loop: bool = False, clock=time.monotonic):
        self.root = Path(root)
        if not self.root.is_dir():
            raise SourceError(f"folder {root} does not exist or is not a folder")
        self.paths = list_images([self.root])
        if not self.paths:
            raise SourceError(f"folder {root} has no images")
        self.loop = loop
        self.clock = clock
        self._stop = threading.Event()

    def __iter__(self) -> Iterator[Frame]:
        seq = 0
        while not self._stop.is_set():
            for p in self.paths:
                if self._stop.is_set():
                    return
                yield read_frame(p, seq, self.clock)
                seq += 1
            if not self.loop:
                return

    def close(self) -> None:
        self._stop.set()
