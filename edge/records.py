"""The decision record, and the append-only, fsynced JSON Lines log it goes to."""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

DECISIONS = ("OK", "NG", "ERROR")


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class DecisionRecord:
    """One image or frame's outcome. ``score`` is normalised: 1.0 is the image threshold."""

    image: str
    decision: str
    score: float | None = None
    raw_score: float | None = None
    mask: str | None = None
    anomaly_map: str | None = None
    overlay: str | None = None
    inspector: str | None = None
    timestamp: str = field(default_factory=utc_now)
    timings_ms: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    saved_image: str | None = None  # the line runtime's copy of the frame, when it keeps one
    # supervised models and cascades (absent for PaDiM): predicted class, per-class scores,
    # defect area per class in pixels, per-class mask files, and one entry per cascade stage
    label: str | None = None
    classes: dict[str, float] = field(default_factory=dict)
    areas: dict[str, int] = field(default_factory=dict)
    class_masks: dict[str, str] = field(default_factory=dict)
    stages: list[dict] = field(default_factory=list)

    def __post_init__(self):
        if self.decision not in DECISIONS:
            raise ValueError(f"decision must be one of {DECISIONS}, not {self.decision!r}")
        if self.decision == "ERROR" and not self.error:
            raise ValueError("an ERROR record needs an error message")

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None and v != {} and v != []}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))


class DecisionLog:
    """Append-only JSON Lines file; each record is written whole, flushed and fsynced.

    A power cut loses at most the record being written. On open, a torn last line left by an
    earlier crash is cut off (and counted in ``repaired_bytes``) so the file stays valid JSONL.
    """

    def __init__(self, path: str | os.PathLike, fsync: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self.repaired_bytes = _repair_tail(self.path)
        if self.repaired_bytes:
            logging.getLogger("edge.records").warning(
                "%s: cut a torn last line (%d bytes) left by a crash or power cut; every whole record is kept",
                self.path, self.repaired_bytes)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.count = 0

    def append(self, record: DecisionRecord) -> None:
        data = (record.to_json() + "\n").encode()
        start = os.lseek(self._fd, 0, os.SEEK_END)
        try:
            view = memoryview(data)
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
            if self.fsync:
                os.fsync(self._fd)
        except OSError:
            # a failed write (a full disk) must not leave half a line for the next record to follow
            try:
                os.ftruncate(self._fd, start)
            except OSError:
                pass
            raise
        self.count += 1

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "DecisionLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _repair_tail(path: Path) -> int:
    """Truncate a partial last line (no trailing newline). Returns bytes removed."""
    if not path.exists() or path.stat().st_size == 0:
        return 0
    with open(path, "rb+") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        back = min(size, 1 << 20)
        f.seek(size - back)
        tail = f.read()
        if tail.endswith(b"\n"):
            return 0
        cut = tail.rfind(b"\n")
        keep = size - back + cut + 1 if cut >= 0 else 0
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
        return size - keep


def read_records(path: str | os.PathLike) -> list[dict]:
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                out.append(json.loads(line))
    return out
