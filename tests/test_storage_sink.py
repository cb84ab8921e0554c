import datetime as dt
import errno
import json
import logging
import os

import numpy as np
import pytest

from edge.config.sections import RetentionSection, StorageSection
from edge.imageio import write_png
from edge.inspector import Inspection
from edge.records import DecisionLog, DecisionRecord, read_records
from edge.sinks import Decision
from edge.sinks.retention import Retention
from edge.sinks.storage_sink import StorageSink
from edge.sources.frame import Frame
from edge.telemetry import Telemetry


def decision(i: int, dec: str = "NG", ts: str | None = None, size: int = 64) -> Decision:
    rng = np.random.default_rng(i)
    img = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)  # noise: PNGs that do not compress
    amap = rng.random((size, size)).astype(np.float32) * 3
    mask = ((amap > 2.5) * 255).astype(np.uint8)
    score = 1.5 if dec == "NG" else 0.5
    res = Inspection(score * 2, score, dec, amap, mask, {})
    ts = ts or dt.datetime(2025, 1, 31, 10, 0, i % 60, tzinfo=dt.timezone.utc).isoformat()
    rec = DecisionRecord(image=f"cam0-{i:06d}", decision=dec, score=score, raw_score=score * 2, timestamp=ts)
    return Decision(rec, 0.0, 0.0, False, Frame(i, rec.image, img, 0.0, 0.0), res, 2.0)


class FakeDisk:
    """A small disk over a real folder: free = capacity - bytes used; a write past it fails with ENOSPC."""

    def __init__(self, root, capacity):
        self.root = root
        self.capacity = capacity

    def used(self):
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())

    def free(self, _path):
        return max(0, self.capacity - self.used())

    def write_image(self, path, img):
        write_png(path, img)
        if self.used() > self.capacity:
            path.unlink()
            raise OSError(errno.ENOSPC, "No space left on device", str(path))


def test_ng_images_masks_overlays_are_saved_and_recorded(tmp_path):
    tel = Telemetry()
    sink = StorageSink(StorageSection(root=str(tmp_path)), tel)
    sink.emit(decision(1, "NG"))
    sink.emit(decision(2, "OK"))
    sink.emit(dataclass_error())
    sink.close()
    recs = read_records(tmp_path / "decisions.jsonl")
    assert [r["decision"] for r in recs] == ["NG", "OK", "ERROR"]
    ng = recs[0]
    for key in ("saved_image", "mask", "overlay"):
        assert os.path.isfile(ng[key]), key
    assert "/images/2025-01-31/10/" in ng["saved_image"]
    assert not any(k in recs[1] for k in ("saved_image", "mask", "overlay"))  # OK: nothing by default
    assert tel.count("images_saved") == 3 and tel.count("decisions_logged") == 3


def dataclass_error():
    rec = DecisionRecord(image="cam0-000009", decision="ERROR", error="inference failed")
    return Decision(rec, 0.0, 0.0)


def test_ok_images_are_sampled_at_the_configured_rate(tmp_path):
    sink = StorageSink(StorageSection(root=str(tmp_path), ok_sample_rate=0.25), Telemetry(), seed=1)
    for i in range(200):
        sink.emit(decision(i, "OK"))
    sink.close()
    saved = [r for r in read_records(tmp_path / "decisions.jsonl") if "saved_image" in r]
    assert 25 <= len(saved) <= 75  # 50 expected; the seeded sampler gives the same count every run


def test_full_disk_deletes_oldest_images_and_never_drops_a_decision(tmp_path):
    root = tmp_path / "store"
    root.mkdir()
    one_ng = 3 * 64 * 64 * 3  # roughly frame + mask + overlay of one NG at 64x64 noise
    disk = FakeDisk(root, capacity=12 * one_ng)
    tel = Telemetry()
    cfg = StorageSection(root=str(root), retention=RetentionSection(min_free_mb=2 * one_ng / 1e6,
                                                                     max_age_days=0))
    sink = StorageSink(cfg, tel, free_bytes=disk.free, write_image=disk.write_image)
    n = 60
    for i in range(n):  # one hour folder per 10 decisions, so whole old folders can go
        hour = 1 + i // 10
        sink.emit(decision(i, "NG", ts=dt.datetime(2025, 1, 31, hour, 0, i % 60, tzinfo=dt.timezone.utc).isoformat()))
    sink.close()
    recs = read_records(root / "decisions.jsonl")
    assert [r["image"] for r in recs] == [f"cam0-{i:06d}" for i in range(n)]  # every decision, in order
    assert disk.used() <= disk.capacity
    assert tel.count("images_deleted") > 0
    kept = sorted(p.parent.name for p in (root / "images").rglob("*.png"))
    assert kept and min(kept) > "01"  # the oldest hour went first
    newest = recs[-1]
    assert os.path.isfile(newest["saved_image"])  # the newest part still has its picture


def test_enospc_on_an_image_write_frees_space_and_retries(tmp_path):
    root = tmp_path / "store"
    root.mkdir()
    disk = FakeDisk(root, capacity=8 * 3 * 64 * 64 * 3)
    tel = Telemetry()
    cfg = StorageSection(root=str(root), retention=RetentionSection(min_free_mb=0, max_age_days=0))
    sink = StorageSink(cfg, tel, free_bytes=disk.free, write_image=disk.write_image)
    for i in range(40):
        sink.emit(decision(i, "NG", ts=f"2025-01-31T{1 + i // 5:02d}:00:00.000+00:00"))
    sink.close()
    assert len(read_records(root / "decisions.jsonl")) == 40
    assert tel.count("images_deleted") > 0 and disk.used() <= disk.capacity
    assert os.path.isfile(read_records(root / "decisions.jsonl")[-1]["overlay"])


def test_a_disk_too_full_for_any_image_still_logs_every_decision(tmp_path):
    root = tmp_path / "store"
    root.mkdir()
    disk = FakeDisk(root, capacity=100)  # not even one PNG fits
    tel = Telemetry()
    cfg = StorageSection(root=str(root), retention=RetentionSection(min_free_mb=0, max_age_days=0))
    sink = StorageSink(cfg, tel, free_bytes=disk.free, write_image=disk.write_image)
    for i in range(10):
        sink.emit(decision(i, "NG"))
    sink.close()
    recs = read_records(root / "decisions.jsonl")
    assert len(recs) == 10 and not any("saved_image" in r for r in recs)
    assert tel.count("images_skipped") == 30 and tel.count("decisions_lost") == 0


class FlakyLog(DecisionLog):
    """A decision log whose disk is full for the first ``fail`` appends."""

    fail = 0

    def append(self, record):
        if FlakyLog.fail > 0:
            FlakyLog.fail -= 1
            raise OSError(errno.ENOSPC, "No space left on device")
        super().append(record)


def test_log_write_failures_are_retried_in_order(tmp_path):
    FlakyLog.fail = 3
    tel = Telemetry()
    sink = StorageSink(StorageSection(root=str(tmp_path)), tel, open_log=FlakyLog)
    for i in range(5):
        sink.emit(decision(i, "OK"))
    sink.close()
    assert [r["image"] for r in read_records(tmp_path / "decisions.jsonl")] == [f"cam0-{i:06d}" for i in range(5)]
    assert tel.count("decisions_lost") == 0


def test_decisions_that_cannot_be_written_are_counted_and_logged_in_full(tmp_path, caplog):
    FlakyLog.fail = 10 ** 6
    tel = Telemetry()
    sink = StorageSink(StorageSection(root=str(tmp_path)), tel, open_log=FlakyLog)
    with caplog.at_level(logging.CRITICAL, logger="edge.sinks.storage"):
        for i in range(3):
            sink.emit(decision(i, "NG"))
        sink.close()
    FlakyLog.fail = 0
    assert tel.count("decisions_lost") == 3
    logged = [json.loads(r.fields["record"]) for r in caplog.records if "record" in getattr(r, "fields", {})]
    assert [r["image"] for r in logged] == ["cam0-000000", "cam0-000001", "cam0-000002"]


def test_a_failed_append_leaves_no_torn_line(tmp_path, monkeypatch):
    path = tmp_path / "d.jsonl"
    log = DecisionLog(path)
    log.append(DecisionRecord(image="a", decision="OK"))
    real_write = os.write

    def half_then_full(fd, data):
        if fd == log._fd:
            real_write(fd, bytes(data)[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr("edge.records.os.write", half_then_full)
    with pytest.raises(OSError):
        log.append(DecisionRecord(image="b", decision="NG", score=2.0))
    monkeypatch.setattr("edge.records.os.write", real_write)
    log.append(DecisionRecord(image="c", decision="OK"))
    log.close()
    assert [r["image"] for r in read_records(path)] == ["a", "c"]


def test_retention_by_age_keeps_recent_and_foreign_folders(tmp_path):
    images = tmp_path / "images"
    for day, hour in (("2025-01-01", "05"), ("2025-01-20", "23"), ("2025-01-31", "09")):
        (images / day / hour).mkdir(parents=True)
        (images / day / hour / "x.png").write_bytes(b"x" * 10)
    (images / "keep-me").mkdir()
    (tmp_path / "decisions-2024-12-01.jsonl").write_text("{}\n")
    (tmp_path / "decisions-2025-01-30.jsonl").write_text("{}\n")
    now = dt.datetime(2025, 1, 31, 10, tzinfo=dt.timezone.utc).timestamp()
    tel = Telemetry()
    r = Retention(tmp_path, RetentionSection(max_age_days=14, min_free_mb=0, keep_logs_days=30), tel,
                  free_bytes=lambda p: 10 ** 12, clock=lambda: now)
    r.run()
    left = sorted(str(p.relative_to(images)) for p in images.rglob("*.png"))
    assert left == ["2025-01-20/23/x.png", "2025-01-31/09/x.png"]
    assert (images / "keep-me").is_dir()
    assert not (tmp_path / "decisions-2024-12-01.jsonl").exists()
    assert (tmp_path / "decisions-2025-01-30.jsonl").exists()
    assert tel.count("images_deleted") == 1


def test_daily_rotation(tmp_path):
    sink = StorageSink(StorageSection(root=str(tmp_path), rotate="daily"), Telemetry())
    sink.emit(decision(1, "OK", ts="2025-01-31T23:59:59.000+00:00"))
    sink.emit(decision(2, "OK", ts="2025-02-01T00:00:01.000+00:00"))
    sink.close()
    assert len(read_records(tmp_path / "decisions-2025-01-31.jsonl")) == 1
    assert len(read_records(tmp_path / "decisions-2025-02-01.jsonl")) == 1
