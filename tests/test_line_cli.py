import json

from click.testing import CliRunner

from edge.cli import cli

from .runtime_helpers import gpio_events, records


def test_run_folder_with_simulated_gpio(tiny_inspector_ro, tiny_category, tmp_path):
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["run", "--source", f"folder:{tiny_category / 'test'}", "--inspector",
                                 str(tiny_inspector_ro), "--out", str(out), "--gpio", "sim", "--max-frames", "6"])
    assert r.exit_code == 0, r.output
    assert "capture.drop_policy not set: using 'every'" in r.output
    assert "6 frames captured, 6 decided" in r.output and "against a 100 ms budget" in r.output
    recs = records(out / "decisions.jsonl")
    assert len(recs) == 6
    ev = gpio_events(out / "gpio.jsonl")
    assert {e["line"] for e in ev} == {"ok", "ng", "ready", "reject"}  # the default simulated lines
    ng = sum(r["decision"] == "NG" for r in recs)
    rises = sum(1 for e in ev if e["line"] == "ng" and e.get("active") and not e.get("init"))
    assert (ng == 0 and rises == 0) or 1 <= rises <= ng
    summary = json.loads((out / "run-summary.json").read_text())
    assert summary["captured"] == 6 and summary["budget_metric"] == "trigger_to_gpio"


def test_run_needs_a_source():
    r = CliRunner().invoke(cli, ["run"])
    assert r.exit_code == 2 and "give --camera, --source or --config" in r.output


def test_run_rejects_camera_and_source_together(tmp_path):
    r = CliRunner().invoke(cli, ["run", "--camera", "0", "--source", "synthetic"])
    assert r.exit_code == 2 and "not both" in r.output


def test_run_flags_are_validated_like_the_config(tmp_path):
    r = CliRunner().invoke(cli, ["run", "--source", "usb:3", "--out", str(tmp_path)])
    assert r.exception is not None and "source.uri: 'usb:3' is not a source" in str(r.exception)
