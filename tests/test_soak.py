"""Long runs: `edge-inspect run --source synthetic --max-frames N` keeps RSS flat, leaks no file handles or
threads, decides every frame once, and retention keeps free space above its floor throughout.

The default suite runs a short version; `pytest -m soak` runs 10,000 frames (`slow` too, so the
default selection leaves it out)."""

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .runtime_helpers import station_dict
from .test_daemon import write_toml

FLOOR_MB = 2.0
ROOM = 200_000  # bytes of images the virtual disk holds above the floor before retention must act
LOG_BYTES_PER_RECORD = 500  # upper bound used to size the disk so the decision log always fits (checked)

# The station runs on a virtual disk: shutil.disk_usage reports CAP minus what is under the storage root,
# so the free-space floor is reached within seconds and retention has to hold it there.
CHILD = r"""
import os, shutil, sys
from collections import namedtuple
root, cap = os.path.realpath(sys.argv[1]), int(sys.argv[2])
Usage = namedtuple("usage", "total used free")
real = shutil.disk_usage

def du(path):
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total

def fake(path):
    if os.path.realpath(path).startswith(root):
        used = du(root)
        return Usage(cap, used, max(0, cap - used))
    return real(path)

shutil.disk_usage = fake
from edge.cli import main
sys.argv = ["edge-inspect"] + sys.argv[3:]
main()
"""


def du(path: Path) -> int:
    """Bytes under ``path`` while the runtime writes and prunes it: a file removed between the listing
    and its stat counts as gone (it is)."""
    total = 0
    for p in path.rglob("*"):
        try:
            st = p.lstat()
        except FileNotFoundError:
            continue
        if stat.S_ISREG(st.st_mode):
            total += st.st_size
    return total


def proc_stats(pid: int) -> dict:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {"rss_kb": int(fields["VmRSS"].split()[0]), "threads": int(fields["Threads"]),
            "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def soak(tiny_inspector, tmp_path: Path, n: int, warmup: float = 0.3, fps: float = 400.0):
    """Run n synthetic frames at a steady rate (so an idle machine still gives enough samples) and sample
    the child's RSS, threads and open files every 20 ms."""
    out = tmp_path / "out"
    out.mkdir()
    cap = n * LOG_BYTES_PER_RECORD + int(FLOOR_MB * 1e6) + ROOM
    cfg = write_toml(tmp_path / "soak.toml", station_dict(
        tiny_inspector, out, source={"synthetic": {"defect_rate": 0.3, "fps": fps}},
        capture={"drop_policy": "every", "batch_size": 4},
        storage={"queue_size": 256, "retention": {"min_free_mb": FLOOR_MB, "check_interval_s": 1}}))
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(out), str(cap), "run", "--config", str(cfg),
                             "--max-frames", str(n)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    samples, warm = [], None
    log = out / "decisions.jsonl"
    try:
        while proc.poll() is None:
            time.sleep(0.02)
            try:
                st = proc_stats(proc.pid)
            except (FileNotFoundError, ProcessLookupError, KeyError):
                break
            done = log.read_bytes().count(b"\n") if log.exists() else 0
            st.update(done=done, free=cap - du(out))
            samples.append(st)
            if warm is None and done >= warmup * n:
                warm = st
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr[-3000:]
    return out, cap, samples, warm, stdout, stderr


def check(out: Path, cap: int, samples: list[dict], warm: dict, n: int, max_growth: float = 0.05) -> dict:
    recs = [json.loads(x) for x in (out / "decisions.jsonl").read_text().splitlines()]
    # every frame decided exactly once
    seqs = sorted(int(r["image"].split("-")[1]) for r in recs)
    assert seqs == list(range(n))
    summary = json.loads((out / "run-summary.json").read_text())
    assert summary["captured"] == summary["decided"] == n and summary["decisions_lost"] == 0
    assert (out / "decisions.jsonl").stat().st_size / n < LOG_BYTES_PER_RECORD  # the disk was sized honestly
    # flat memory, no leaked handles or threads, after warm-up
    assert warm is not None, "the run ended before warm-up"
    steady = [s for s in samples if warm["done"] <= s["done"] < n]  # after warm-up, before the drain
    assert len(steady) >= 6, "too few samples after warm-up"
    peak = max(s["rss_kb"] for s in steady)
    growth = peak / warm["rss_kb"] - 1
    assert growth < max_growth, f"RSS grew {growth:.1%} after warm-up ({warm['rss_kb']} -> {peak} kB)"
    # a leak grows with the frames: the last third of the run holds at most 2 more than the first third
    # (bounded pools, onnxruntime/OpenVINO and the scoring kernel, may start a thread late; a leak of one
    # per part, per image or per reconnect would be hundreds here)
    third = len(steady) // 3
    first, last = steady[:third], steady[-third:]
    for what in ("fds", "threads"):
        a, b = max(s[what] for s in first), max(s[what] for s in last)
        assert b <= a + 2, f"{what} grew from {a} to {b} over the run"
    end = samples[-1]
    # retention held the free-space floor the whole time (within one decision's images of slack)
    low = min(s["free"] for s in samples)
    assert low >= FLOOR_MB * 1e6 - 100_000, f"free space fell to {low / 1e6:.2f} MB, floor {FLOOR_MB} MB"
    assert cap - du(out) >= FLOOR_MB * 1e6 - 100_000
    ng = sum(r["decision"] == "NG" for r in recs)
    kept = len(list((out / "images").rglob("*_overlay.jpg"))) if (out / "images").exists() else 0
    assert ng > 0 and kept < ng, "the floor was never reached: the soak did not exercise retention"
    return {"growth": growth, "fds": (warm["fds"], end["fds"]), "threads": (warm["threads"], end["threads"]),
            "ng": ng, "kept": kept, "low_free": low}


def test_short_soak_run_is_flat_and_decides_every_frame(tiny_inspector_ro, tmp_path):
    n = 400
    out, cap, samples, warm, stdout, _ = soak(tiny_inspector_ro, tmp_path, n)
    # one second of frames: what is made lazily (a late thread's malloc arena, the backend's throughput
    # streams on its first batch of several rows) may still settle after warm-up: +2-3% on an idle
    # machine, +5.4% seen once in ci-local. The 10,000-frame soak below holds a leak to 5%.
    check(out, cap, samples, warm, n, max_growth=0.08)
    assert f"{n} frames captured, {n} decided" in stdout


@pytest.mark.slow
@pytest.mark.soak
def test_soak_10000_frames(tiny_inspector_ro, tmp_path):
    n = int(os.environ.get("EDGE_INSPECT_SOAK_FRAMES", 10_000))
    out, cap, samples, warm, _, _ = soak(tiny_inspector_ro, tmp_path, n)
    res = check(out, cap, samples, warm, n)
    print(f"soak {n} frames: RSS {res['growth']:+.2%} after warm-up, fds {res['fds']}, threads {res['threads']}, "
          f"NG {res['ng']}, "
          f"images kept {res['kept']}, lowest free {res['low_free'] / 1e6:.2f} MB")
