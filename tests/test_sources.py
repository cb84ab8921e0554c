import os
import threading
import time

import cv2
import numpy as np
import pytest

from edge.config.sections import SourceSection, SyntheticSection
from edge.errors import ConfigError, SourceError
from edge.imageio import write_png
from edge.sources import open_source, parse_source_uri
from edge.sources.camera import CameraSource
from edge.sources.frame import Frame
from edge.sources.synthetic import SyntheticSource
from edge.sources.trigger import TriggeredSource, TriggerQueue
from edge.sources.watch import WatchSource


@pytest.mark.parametrize("uri,kind,target,live", [
    ("camera:0", "camera", "0", True),
    ("folder:/data/in", "folder", "/data/in", False),
    ("watch:/srv/ftp", "watch", "/srv/ftp", False),
    ("file:/v/a.mp4", "file", "/v/a.mp4", False),
    ("rtsp://10.0.0.2:554/s1", "rtsp", "rtsp://10.0.0.2:554/s1", True),
    ("gst:videotestsrc ! appsink", "gst", "videotestsrc ! appsink", True),
    ("synthetic", "synthetic", "", False),
])
def test_source_uris(uri, kind, target, live):
    spec = parse_source_uri(uri)
    assert (spec.kind, spec.target, spec.live) == (kind, target, live)


@pytest.mark.parametrize("uri", ["usb:0", "camera:", "camera:x", "folder:", "http://cam/stream", ""])
def test_bad_source_uris(uri):
    with pytest.raises(ConfigError):
        parse_source_uri(uri)


def test_frame_validates_its_image():
    with pytest.raises(ValueError):
        Frame(0, "x", np.zeros((32, 32), np.uint8), 0.0, 0.0)
    with pytest.raises(ValueError):
        Frame(0, "x", None, 0.0, 0.0)
    f = Frame(0, "x", np.zeros((32, 32, 3), np.uint8), 1.0, 1.0, required=True)
    g = f.failed("gone")
    assert g.image is None and g.error == "gone" and g.required


def test_synthetic_is_deterministic_and_plants_defects():
    cfg = SyntheticSection(size=(64, 64), defect_rate=0.5, seed=3)
    a = [f for f, _ in zip(SyntheticSource(cfg), range(20))]
    b = [f for f, _ in zip(SyntheticSource(cfg), range(20))]
    assert [f.id for f in a] == [f.id for f in b]
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b))
    planted = [f for f in a if f.id.count("-") == 2]
    assert 0 < len(planted) < 20
    assert a[0].image.shape == (64, 64, 3) and a[0].image.dtype == np.uint8


def test_missing_camera_fails_fast_with_a_clear_message():
    with pytest.raises(SourceError) as e:
        open_source(SourceSection(uri="camera:57"))
    assert "camera 57" in e.value.message and e.value.exit_code == 8


def test_missing_folder_and_video(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        open_source(SourceSection(uri=f"folder:{tmp_path / 'nope'}"))
    with pytest.raises(SourceError, match="does not exist"):
        open_source(SourceSection(uri=f"file:{tmp_path / 'nope.avi'}"))


def test_folder_source_reads_every_file_and_reports_unreadable_ones(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        write_png(tmp_path / f"{i}.png", rng.integers(0, 255, (40, 40, 3), dtype=np.uint8))
    (tmp_path / "broken.png").write_bytes(b"not a png")
    frames = list(open_source(SourceSection(uri=f"folder:{tmp_path}")))
    assert [os.path.basename(f.id) for f in frames] == ["0.png", "1.png", "2.png", "broken.png"]
    assert all(f.required for f in frames)
    assert frames[3].image is None and "cannot decode" in frames[3].error


def test_video_file_source(tmp_path):
    path = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(7):
        w.write(np.full((48, 64, 3), 30 * i, np.uint8))
    w.release()
    frames = list(open_source(SourceSection(uri=f"file:{path}")))
    assert len(frames) == 7
    assert frames[0].image.shape == (48, 64, 3)
    assert [f.id for f in frames][:2] == ["clip-000000", "clip-000001"]


def test_watch_takes_only_files_whose_size_is_stable(tmp_path):
    write_png(tmp_path / "old.png", np.zeros((16, 16, 3), np.uint8))
    w = WatchSource(str(tmp_path), poll_ms=10, existing="skip")
    assert w.ready_files() == []
    part = tmp_path / "new.png"
    part.write_bytes(b"\x89PNG partial")
    (tmp_path / "upload.png.part").write_bytes(b"x")
    (tmp_path / ".hidden.png").write_bytes(b"x")
    assert w.ready_files() == []  # first sighting
    with open(part, "ab") as f:
        f.write(b"more bytes")  # still growing
    assert w.ready_files() == []
    assert w.ready_files() == ["new.png"]  # unchanged since the last poll
    assert w.ready_files() == []


def test_watch_source_yields_new_files(tmp_path):
    w = WatchSource(str(tmp_path), poll_ms=10, existing="process")
    got = []

    def consume():
        for f in w:
            got.append(f)
            if len(got) == 2:
                w.close()

    t = threading.Thread(target=consume)
    t.start()
    for i in range(2):
        write_png(tmp_path / f"{i}.png", np.full((20, 20, 3), i * 50, np.uint8))
    t.join(20)
    assert not t.is_alive()
    assert sorted(os.path.basename(f.id) for f in got) == ["0.png", "1.png"]
    assert all(f.image is not None for f in got)


class FakeCapture:
    """A camera that gives ``n_ok`` frames and then fails every read (unplugged)."""

    def __init__(self, n_ok, value):
        self.left = n_ok
        self.value = value
        self.released = False

    def read(self):
        if self.left <= 0:
            return False, None
        self.left -= 1
        return True, np.full((24, 32, 3), self.value, np.uint8)

    def release(self):
        self.released = True


def test_camera_that_disconnects_and_comes_back_is_recovered():
    script = [FakeCapture(3, 10), SourceError("gone"), SourceError("still gone"), FakeCapture(4, 20)]
    opened = []

    def opener(spec, cfg):
        step = script.pop(0)
        if isinstance(step, Exception):
            raise step
        opened.append(step)
        return step

    states = []
    cfg = SourceSection(uri="camera:0", reconnect_initial_s=0.01, reconnect_max_s=0.02)
    cam = CameraSource(parse_source_uri(cfg.uri), cfg, on_state=lambda ok, why: states.append(ok), opener=opener)
    cam.open()
    frames = []
    for f in cam:
        frames.append(f)
        if len(frames) == 7:
            cam.close()
    assert [int(f.image[0, 0, 0]) for f in frames] == [10] * 3 + [20] * 4
    assert [f.id for f in frames] == [f"cam0-{i:06d}" for i in range(7)]
    assert states == [True, False, True]
    assert cam.reconnects == 1 and opened[0].released and opened[1].released
    assert not script


def test_software_triggers_take_one_frame_each_in_order():
    q = TriggerQueue(debounce_ms=5)
    src = TriggeredSource(SyntheticSource(SyntheticSection(size=(32, 32), defect_rate=0)), q)
    t0 = time.monotonic()
    assert q.fire(t0) and not q.fire(t0 + 0.001)  # debounced
    assert q.fire(t0 + 0.010) and q.fire(t0 + 0.020)
    it = iter(src)
    frames = [next(it) for _ in range(3)]
    assert [f.t_trigger for f in frames] == [t0, t0 + 0.010, t0 + 0.020]
    assert all(f.required for f in frames) and q.debounced == 1
    src.close()
    assert next(it, None) is None


class LiveFake:
    """A live source producing a frame every 5 ms, timestamped at capture."""

    live = True

    def __init__(self):
        self._stop = threading.Event()

    def __iter__(self):
        i = 0
        while not self._stop.wait(0.005):
            t = time.monotonic()
            yield Frame(i, f"live-{i}", np.full((16, 16, 3), i % 255, np.uint8), t, t)
            i += 1

    def close(self):
        self._stop.set()


def test_triggered_live_camera_takes_the_first_frame_after_the_trigger():
    q = TriggerQueue()
    src = TriggeredSource(LiveFake(), q, max_frame_delay_s=5.0)
    it = iter(src)
    time.sleep(0.03)
    t = time.monotonic()
    q.fire(t)
    f = next(it)
    assert f.t_capture >= t and f.t_trigger == t and f.image is not None
    # a trigger handled far too late becomes an error frame rather than a picture of the wrong part
    src.max_frame_delay_s = 0.001
    q.fire(time.monotonic() - 1.0)
    late = next(it)
    assert late.image is None and "the part was missed" in late.error and late.required
    src.close()
