"""Progress for people watching: fit's bar and summary, run/daemon's status line on a terminal."""

from __future__ import annotations

import io

from click.testing import CliRunner

from edge.cli import cli, progress_bar
from edge.config import parse_config
from edge.daemon import serve

from .runtime_helpers import station_dict


def test_fit_summary_says_images_rate_and_memory(tmp_path, tiny_bundle, tiny_category):
    r = CliRunner().invoke(cli, ["fit", "--good", str(tiny_category / "train" / "good"), "--backbone",
                                 str(tiny_bundle), "--out", str(tmp_path / "i"), "-d", "20"])
    assert r.exit_code == 0, r.output
    assert "16 images read in" in r.output and "images/s), peak memory" in r.output


def test_progress_bar_shows_rate_and_eta(monkeypatch):
    out = io.StringIO()
    out.isatty = lambda: True  # click draws the bar only for a terminal
    monkeypatch.setattr("sys.stderr", out)
    with progress_bar(10, "fitting") as update:
        for _ in range(5):
            update(2)
    text = out.getvalue()
    assert "fitting" in text and "10/10" in text and "images/s" in text


def test_run_prints_a_status_line_every_few_seconds(tiny_inspector_ro, tmp_path):
    lines: list[str] = []
    cfg = parse_config(station_dict(tiny_inspector_ro, tmp_path, source={"synthetic": {"fps": 20}}))
    serve(cfg, max_frames=30, status_line=lines.append, status_every_s=0.3)
    assert lines, "no status line during a 1.5 s run"
    last = lines[-1]
    for part in ("READY", "fps", "NG rate", "p99", "drift"):
        assert part in last, last


def test_no_status_line_when_not_on_a_terminal(tiny_inspector_ro, tmp_path):
    r = CliRunner().invoke(cli, ["run", "--source", "synthetic", "--inspector", str(tiny_inspector_ro), "--out",
                                 str(tmp_path), "--max-frames", "5"])
    assert r.exit_code == 0 and " fps " not in r.output  # journald and pipes get log lines, not a ticker
