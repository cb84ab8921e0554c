"""run, daemon, validate-config: the line runtime's commands."""

from __future__ import annotations

import json
from pathlib import Path

import click

from . import cli

SIM_LINES = {"ok": {"line": "OK"}, "ng": {"line": "NG"}, "ready": {"line": "READY"},
             "reject": {"line": "REJECT", "delay_ms": 0.0, "width_ms": 50.0}}


def _run_overrides(raw: dict, camera, source, inspector_dir, out, gpio, drop_policy, backend, device, threads,
                   model_dir=None) -> dict:
    from ..config.source_uri import parse_source_uri

    if camera is not None and source:
        raise click.UsageError("give --camera or --source, not both")
    if inspector_dir and model_dir:
        raise click.UsageError("give --inspector (a PaDiM inspector) or --model (a supervised bundle), not both")
    ov: dict = {}
    if camera is not None:
        ov["source.uri"] = f"camera:{camera}"
    elif source:
        ov["source.uri"] = source
    if model_dir:  # the flag replaces what the config runs; its runtime settings carry over
        insp = raw.pop("inspector", None) or {}
        raw.pop("cascade", None)
        carried = {k: insp[k] for k in ("backend", "device", "precision", "threads") if k in insp}
        raw["model"] = {**carried, **(raw.get("model") or {})}
    elif inspector_dir:
        raw.pop("model", None)
    # the runtime flags go to what runs: [model] when a supervised bundle runs, else [inspector]
    sec = "model" if "model" in raw else "inspector"
    for key, value in ((f"{sec}.path", model_dir or inspector_dir), ("storage.root", out), (f"{sec}.backend", backend),
                       (f"{sec}.device", device), (f"{sec}.threads", threads)):
        if value is not None:
            ov[key] = value
    if gpio == "off":
        ov["gpio.backend"] = "off"
    elif gpio == "sim":
        ov["gpio.backend"] = "sim"
        ov["gpio.sim_log"] = ""  # → STORAGE_ROOT/gpio.jsonl, i.e. OUT/gpio.jsonl
        configured = raw.get("gpio", {})
        if not any(k in configured for k in SIM_LINES):
            ov.update({f"gpio.{k}": v for k, v in SIM_LINES.items()})
    if drop_policy:
        ov["capture.drop_policy"] = drop_policy
    elif "drop_policy" not in raw.get("capture", {}):
        uri = ov.get("source.uri") or raw.get("source", {}).get("uri", "synthetic")
        try:
            live = parse_source_uri(uri).live
        except Exception:
            live = False  # the config check reports the bad URI
        ov["capture.drop_policy"] = "latest" if live else "every"
        click.echo(f"capture.drop_policy not set: using '{ov['capture.drop_policy']}' for {uri} "
                   f"(set it with --drop-policy or in the config)", err=True)
    return ov


@cli.command("run")
@click.option("--camera", type=int, default=None, help="Camera index (/dev/videoN); same as --source camera:N.")
@click.option("--source", default=None, metavar="URI",
              help="folder:PATH | watch:PATH (new files as they land) | file:VIDEO | rtsp://… | gst:PIPELINE | "
                   "synthetic (test pattern with planted defects).")
@click.option("--config", "config_path", type=click.Path(), default=None,
              help="Station config (TOML, see firmware-configs/); flags override it.")
@click.option("--inspector", "inspector_dir", type=click.Path(), default=None, help="Inspector directory.")
@click.option("--cascade", "cascade_file", type=click.Path(), default=None,
              help="Cascade TOML ([[stage]] tables) to run instead of one inspector; see `score --help`.")
@click.option("--model", "model_dir", type=click.Path(), default=None,
              help="Classifier, segmenter or multitask bundle to run instead of an inspector (the config's "
                   "[model] path); its thresholds come from its calibration (`edge-inspect info BUNDLE`).")
@click.option("--out", type=click.Path(), default=None, help="Storage root: decision log, images, gpio.jsonl.")
@click.option("--max-frames", type=int, default=None, help="Stop after this many frames.")
@click.option("--gpio", type=click.Choice(["sim", "off"]), default=None,
              help="sim: record every line change with timestamps to OUT/gpio.jsonl (dry run, no hardware).")
@click.option("--drop-policy", type=click.Choice(["latest", "every"]), default=None,
              help="When inference falls behind: drop the oldest waiting frame, or make capture wait. "
                   "[default: from the config; else latest for live cameras, every for files]")
@click.option("--backend", type=click.Choice(["auto", "onnxruntime", "openvino"]), default=None,
              help="Inference runtime (default: the config's, which defaults to auto).")
@click.option("--device", default=None, help="Runtime device, e.g. cpu, cuda, tensorrt, CPU, GPU.")
@click.option("--threads", type=int, default=None, help="CPU threads for the runtime.")
@click.option("--station", "station_listen", default=None, metavar="HOST:PORT",
              help="Serve the station page (live view, NG gallery, score trend, drift, operator feedback) at "
                   "HOST:PORT, e.g. 127.0.0.1:8765; open http://HOST:PORT/ in a browser. Loopback unless the "
                   "config's [station_page] allows more (then with a token).")
def run_cmd(camera, source, config_path, inspector_dir, cascade_file, model_dir, out, max_frames, gpio, drop_policy,
            backend, device, threads, station_listen):
    """Inspect frames from a camera, stream, folder or test pattern until it ends or Ctrl-C.

    \b
    Every frame gets one record in OUT/decisions.jsonl (fsynced); NG frames get their
    image, mask and heat-map overlay under OUT/images/. Ctrl-C or SIGTERM finishes the
    frames already captured before exiting. The summary at the end gives each stage's
    latency and throughput, and p50/p99 from trigger to GPIO (or to the decision)
    against pipeline.latency_budget_ms.
    \b
    Examples:
      edge-inspect run --camera 0 --inspector ./inspector --out ./line-out --gpio sim
      edge-inspect run --source folder:./todays-images --max-frames 100
      edge-inspect run --source folder:./todays-images --cascade cascade.toml
      edge-inspect run --source folder:./strips --model ./steel-seg --gpio sim
      edge-inspect run --config firmware-configs/dev-laptop-sim.toml
    """
    from ..config import parse_config, read_toml
    from ..daemon import serve
    from ..log_format import setup_logging

    if config_path is None and camera is None and not source:
        raise click.UsageError("give --camera, --source or --config")
    raw = read_toml(config_path) if config_path else {}
    ov = _run_overrides(raw, camera, source, inspector_dir, out, gpio, drop_policy, backend, device, threads,
                        model_dir)
    if station_listen:
        ov["station_page.listen"] = station_listen
    if inspector_dir and cascade_file:
        raise click.UsageError("give --inspector or --cascade, not both")
    if model_dir and cascade_file:
        raise click.UsageError("give --model or --cascade, not both (a cascade names its models in its stages)")
    if cascade_file:
        ov["cascade"] = {"file": cascade_file}
    elif inspector_dir:
        raw.pop("cascade", None)  # the flag replaces the config's cascade with one inspector
    cfg = parse_config(raw, config_path or "flags", ov)
    setup_logging(cfg.log.level)
    summary = serve(cfg, max_frames=max_frames, status_line=_terminal_status(),
                    on_started=lambda rt: rt.station_url and click.echo(f"station page: {rt.station_url}", err=True))
    for line in summary.lines():
        click.echo(line)
    click.echo(f"decisions: {Path(cfg.storage.root) / cfg.storage.log}   summary: "
               f"{Path(cfg.storage.root) / 'run-summary.json'}")
    if summary.decisions_lost:
        raise SystemExit(6)


@cli.command("daemon")
@click.option("--config", "config_path", type=click.Path(), required=True,
              help="Station config, e.g. /etc/edge-inspect/station.toml (see firmware-configs/).")
def daemon_cmd(config_path):
    """Run headless (under systemd; see deploy/edge-inspect.service).

    \b
    Structured log lines on stderr (journald). A camera that is missing or lost is
    retried with backoff while health says not-ready and the READY GPIO line is off.
    SIGTERM/SIGINT: drain and exit. SIGHUP: reload the inspector without dropping frames.
    """
    from ..config import load_config
    from ..daemon import serve
    from ..log_format import setup_logging

    cfg = load_config(config_path)
    setup_logging(cfg.log.level)
    serve(cfg, wait_for_camera=True, status_line=_terminal_status())


def _terminal_status():
    """A status-line printer when stderr is a terminal (a person watching), else None (journald, pipes)."""
    import sys

    if not sys.stderr.isatty():
        return None
    return lambda text: click.echo(text, err=True)


@cli.command("validate-config")
@click.argument("files", nargs=-1, type=click.Path())
@click.option("--explain", is_flag=True, help="List every key with its type, default and meaning.")
@click.option("--json", "as_json", is_flag=True, help="Print the resolved config of each valid file as JSON.")
def validate_config_cmd(files, explain, as_json):
    """Check station configs; every problem is reported as `key.path: message`.

    Unknown keys are errors. Exit status 5 if any file has a problem.
    """
    import dataclasses

    from ..config import config_problems, config_warnings, describe_config, load_config
    from ..errors import ConfigError

    if explain:
        for key, typ, default, doc in describe_config():
            click.echo(f"{key}\n    {typ}, default {default}" + (f"\n    {doc}" if doc else ""))
    if not files and not explain:
        raise click.UsageError("give one or more config files (or --explain)")
    bad = 0
    for f in files:
        try:
            problems = config_problems(f)
        except ConfigError as e:  # missing file or broken TOML: report it and go on to the next file
            problems = [e.message]
        if problems:
            bad += 1
            click.echo(f"{f}: {len(problems)} problem{'s' if len(problems) != 1 else ''}")
            for p in problems:
                click.echo(f"  {p}")
        else:
            click.echo(f"{f}: ok")
            for w in config_warnings(f):
                click.echo(f"  warning: {w}")
            if as_json:
                click.echo(json.dumps(dataclasses.asdict(load_config(f)), indent=2))
    if bad:
        raise SystemExit(5)
