"""kill -9 at the worst moments: the previous inspector stays intact and scoring; logs stay parseable;
a restart appends; leftovers of a killed writer are cleaned up on the next run."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge.bundle import OWNER_FILE, AtomicDir, recover_dir
from edge.inspector import Inspector
from edge.records import DecisionLog, DecisionRecord, read_records

from .runtime_helpers import records, station_dict
from .test_daemon import CLI, line_count, wait_until, write_toml

# Runs the CLI in a child that SIGKILLs itself at one chosen point: deterministic, and exactly what a
# kill -9 (or a power cut, for what is in memory) does there: no cleanup, no finally, no atexit.
CHILD = r"""
import os, signal, sys
point = os.environ["KILL_AT"]

def die(*_a, **_k):
    os.kill(os.getpid(), signal.SIGKILL)

import edge.bundle as bundle
import edge.padim.stats as stats
if point == "mid-build":  # the new inspector half written in its temp dir
    real_save = stats.GaussianStats.save
    def save(self, path, *a, **k):
        real_save(self, path, *a, **k)
        die()
    stats.GaussianStats.save = save
elif point == "before-swap":  # the new inspector complete, not yet renamed in
    bundle._exchange = die
elif point == "between-renames":  # no atomic swap on this OS: killed after moving the old one aside
    bundle._exchange = lambda a, b: False
    real_replace = os.replace
    calls = []
    def replace(a, b):
        real_replace(a, b)
        calls.append(b)
        if str(b).endswith(".old"):
            die()
    bundle.os.replace = replace
from edge.cli import main
sys.argv = ["edge-inspect"] + sys.argv[1:]
main()
"""


def child(args, point, timeout=120):
    env = {**os.environ, "KILL_AT": point}
    return subprocess.run([sys.executable, "-c", CHILD, *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=timeout)


def scores_of(insp_dir: Path, images: list[Path]) -> list[float]:
    insp = Inspector.load(insp_dir)
    from edge.imageio import read_image
    return [r.raw_score for r in insp.inspect([read_image(p) for p in images])]


SLOW = pytest.mark.slow


@pytest.mark.parametrize("update, point", [
    (False, "before-swap"), (True, "mid-build"), (False, "between-renames"),
    pytest.param(False, "mid-build", marks=SLOW), pytest.param(True, "before-swap", marks=SLOW),
    pytest.param(True, "between-renames", marks=SLOW)], ids=lambda v: {False: "fit", True: "fit-update"}.get(v, v))
def test_kill9_during_a_refit_leaves_the_old_inspector_scoring(tiny_inspector, tiny_bundle, tiny_category, point,
                                                               update):
    test_imgs = sorted((tiny_category / "test").rglob("*.png"))
    manifest_before = (tiny_inspector / "manifest.json").read_bytes()
    before = scores_of(tiny_inspector, test_imgs)
    good = tiny_category / "test" / "good"
    args = ["fit", "--good", good, "--out", tiny_inspector] + (["--update"] if update else
                                                               ["--backbone", tiny_bundle, "-d", 16])
    r = child(args, point)
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
    leftovers = sorted(p.name for p in tiny_inspector.parent.glob(".inspector.*"))
    assert leftovers, "the kill should leave the killed writer's temp dir or .old behind"
    # the old inspector is there and scores exactly as before (restored from .old where the kill left it there)
    assert scores_of(tiny_inspector, test_imgs) == before
    assert (tiny_inspector / "manifest.json").read_bytes() == manifest_before
    # the next fit cleans up what the killed one left, and succeeds
    r = subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert sorted(p.name for p in tiny_inspector.parent.glob(".inspector.*")) == []
    assert (tiny_inspector / "manifest.json").read_bytes() != manifest_before


def test_a_live_writers_temp_dir_is_left_alone_and_a_dead_ones_is_removed(tmp_path):
    dest = tmp_path / "inspector"
    dest.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / ".inspector.dead1"
    stale.mkdir()
    (stale / OWNER_FILE).write_text(str(dead.pid))
    live = tmp_path / ".inspector.live1"
    live.mkdir()
    (live / OWNER_FILE).write_text(str(os.getpid()))
    unknown_new = tmp_path / ".inspector.nopid"
    unknown_new.mkdir()
    assert recover_dir(dest) == [stale]
    assert live.exists() and unknown_new.exists() and dest.exists()
    old = time.time() - 7200
    os.utime(unknown_new, (old, old))
    assert recover_dir(dest) == [unknown_new]


def test_atomic_dir_swaps_in_one_step_and_leaves_nothing(tmp_path):
    dest = tmp_path / "d"
    with AtomicDir(dest) as t:
        (t / "a").write_text("1")
    with AtomicDir(dest) as t:
        (t / "a").write_text("2")
    assert (dest / "a").read_text() == "2" and sorted(os.listdir(tmp_path)) == ["d"]
    assert not (dest / OWNER_FILE).exists()


def _kill_run_midway(cfg_path: Path, out: Path, at_least: int):
    proc = subprocess.Popen([*CLI, "run", "--config", str(cfg_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    wait_until(lambda: line_count(out / "decisions.jsonl") >= at_least or proc.poll() is not None,
               what="decisions")
    assert proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    return proc.returncode


def test_kill9_during_a_line_run_leaves_a_log_that_parses_and_a_restart_appends(tiny_inspector_ro, tmp_path):
    out = tmp_path / "out"
    cfg = write_toml(tmp_path / "s.toml", station_dict(
        tiny_inspector_ro, out, source={"synthetic": {"fps": 100}}, capture={"drop_policy": "every", "batch_size": 2}))
    assert _kill_run_midway(cfg, out, 10) == -signal.SIGKILL
    first = records(out / "decisions.jsonl")  # parses fully; the last line is whole
    first_bytes = (out / "decisions.jsonl").read_bytes()
    assert len(first) >= 10
    # frames are numbered from 0 and none is recorded twice; at most the frames in flight are missing
    seqs = [int(r["image"].split("-")[1]) for r in first]
    assert len(set(seqs)) == len(seqs) and sorted(seqs) == list(range(len(seqs)))
    proc = subprocess.run([*CLI, "run", "--config", str(cfg), "--max-frames", "5"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    after = (out / "decisions.jsonl").read_bytes()
    assert after.startswith(first_bytes)  # appended, nothing overwritten
    assert len(records(out / "decisions.jsonl")) == len(first) + 5


def test_kill9_during_score_leaves_results_that_parse_and_a_rerun_appends(tiny_inspector_ro, tiny_category, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    imgs = sorted((tiny_category / "test").rglob("*.png"))
    for k in range(30):  # enough images that the kill lands mid-run
        for p in imgs:
            shutil.copy(p, src / f"{k:02d}-{p.parent.name}-{p.name}")
    out = tmp_path / "out"
    proc = subprocess.Popen([*CLI, "score", str(src), "--inspector", str(tiny_inspector_ro), "--out", str(out),
                             "--batch-size", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: line_count(out / "results.jsonl") >= 6 or proc.poll() is not None, what="results")
    assert proc.poll() is None, "score finished before the kill; give it more images"
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    data = (out / "results.jsonl").read_bytes()
    assert data.endswith(b"\n")
    first = [json.loads(x) for x in data.decode().splitlines()]
    n_total = len(list(src.iterdir()))
    assert 6 <= len(first) < n_total
    r = subprocess.run([*CLI, "score", str(src), "--inspector", str(tiny_inspector_ro), "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (out / "results.jsonl").read_bytes().startswith(data)
    assert len(read_records(out / "results.jsonl")) == len(first) + n_total


def test_a_torn_last_line_from_a_power_cut_is_repaired_when_the_station_starts(tiny_inspector_ro, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with DecisionLog(out / "decisions.jsonl") as log:
        log.append(DecisionRecord(image="before-the-cut", decision="OK", score=0.5, raw_score=1.0))
    with open(out / "decisions.jsonl", "ab") as f:
        f.write(b'{"image":"half-writ')  # the power went mid-write
    cfg = write_toml(tmp_path / "s.toml", station_dict(tiny_inspector_ro, out))
    r = subprocess.run([*CLI, "run", "--config", str(cfg), "--max-frames", "3"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    recs = records(out / "decisions.jsonl")
    assert [x["image"] for x in recs][0] == "before-the-cut" and len(recs) == 4
    assert b"half-writ" not in (out / "decisions.jsonl").read_bytes()
    assert "cut a torn last line (19 bytes)" in r.stderr
