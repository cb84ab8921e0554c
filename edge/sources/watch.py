"""``watch:PATH``: images as they land in a folder (cameras that drop files over FTP or SMB).

Poll-based, so it works on network mounts where inotify does not, and needs no extra package.
A file is taken once its size and modification time are unchanged between two polls, so a
half-uploaded file is never read. Hidden files and upload temporaries (.part, .tmp, .filepart)
are ignored. Each file is inspected once per run.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Iterator

from ..errors import SourceError
from ..imageio import IMAGE_SUFFIXES
from .folder import read_frame
from .frame import Frame

_TEMP_SUFFIXES = (".part", ".tmp", ".filepart", ".crdownload", ".partial")


class WatchSource:
    live = False

    def __init__(self, root: str, poll_ms: float = 200.0, existing: str = "skip", clock=time.monotonic):
        self.root = Path(root)
        if not self.root.is_dir():
            raise SourceError(f"watch folder {root} does not exist or is not a folder",
                              hint="create it, or check the FTP/SMB mount")
        self.poll_s = poll_ms / 1000.0
        self.clock = clock
        self._stop = threading.Event()
        self._done: set[str] = set()
        self._pending: dict[str, tuple[int, int]] = {}  # name -> (size, mtime_ns) at the last poll
        if existing == "skip":
            self._done = {name for name, _ in self._scan()}

    def _scan(self) -> list[tuple[str, os.stat_result]]:
        out = []
        try:
            with os.scandir(self.root) as it:
                for e in it:
                    name = e.name
                    if name.startswith(".") or name.lower().endswith(_TEMP_SUFFIXES):
                        continue
                    if os.path.splitext(name)[1].lower() not in IMAGE_SUFFIXES:
                        continue
                    try:
                        if e.is_file():
                            out.append((name, e.stat()))
                    except FileNotFoundError:
                        continue
        except OSError as e:
            raise SourceError(f"cannot list watch folder {self.root}: {e}") from None
        return sorted(out)

    def ready_files(self) -> list[str]:
        """One poll: names whose size and mtime held still since the previous poll."""
        ready, present = [], set()
        for name, st in self._scan():
            present.add(name)
            if name in self._done:
                continue
            sig = (st.st_size, st.st_mtime_ns)
            if st.st_size > 0 and self._pending.get(name) == sig:
                ready.append(name)
                self._pending.pop(name)
            else:
                self._pending[name] = sig
        self._done &= present  # forget files that were removed, so a new file of that name is seen
        for name in list(self._pending):
            if name not in present:
                del self._pending[name]
        return ready

    def __iter__(self) -> Iterator[Frame]:
        seq = 0
        while not self._stop.is_set():
            for name in self.ready_files():
                self._done.add(name)
                yield read_frame(self.root / name, seq, self.clock)
                seq += 1
                if self._stop.is_set():
                    return
            self._stop.wait(self.poll_s)

    def close(self) -> None:
        self._stop.set()
