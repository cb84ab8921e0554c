"""Command hook: run a configured program with the decision record as JSON on stdin.

The program and its arguments come from the config as a list and are never passed through a
shell, so nothing in a record (a file name from an FTP upload, say) can become a command.
The program is killed after ``timeout_s``; failures and timeouts are counted and logged.
"""

from __future__ import annotations

import json
import logging
import subprocess

from ..config.sections import HookSection
from ..log_format import Throttle, log_event
from ..telemetry import Telemetry
from . import Decision

log = logging.getLogger("edge.sinks.hook")


class HookSink:
    name = "hook"
    needs_images = False

    def __init__(self, cfg: HookSection, telemetry: Telemetry, station: str):
        self.cmd = list(cfg.command)
        self.on = set(cfg.on)
        self.timeout_s = cfg.timeout_s
        self.telemetry = telemetry
        self.station = station
        self._throttle = Throttle(10.0)
        self.problem: str | None = None  # the last run's failure, for health; None once a run succeeds

    def payload(self, d: Decision) -> bytes:
        return json.dumps({"station": self.station, **d.record.to_dict()}, separators=(",", ":")).encode()

    def emit(self, d: Decision) -> None:
        if d.record.decision not in self.on:
            return
        try:
            proc = subprocess.run(self.cmd, input=self.payload(d), capture_output=True, timeout=self.timeout_s,
                                  shell=False, check=False)
        except subprocess.TimeoutExpired:
            self._fail("timeout", d, f"killed after {self.timeout_s} s")
            return
        except OSError as e:
            self._fail("start", d, f"{type(e).__name__}: {e}")
            return
        if proc.returncode != 0:
            tail = proc.stderr.decode(errors="replace").strip()[-300:]
            self._fail("exit", d, f"exit status {proc.returncode}: {tail}")
            return
        self.telemetry.inc("hook_runs", result="ok")
        self.problem = None

    def _fail(self, kind: str, d: Decision, why: str) -> None:
        self.telemetry.inc("hook_runs", result=kind)
        self.problem = f"{self.cmd[0]}: {why}"
        held = self._throttle.check(kind)
        if held is not None:
            log_event(log, logging.ERROR, "hook failed", command=self.cmd[0], image=d.record.image, error=why,
                      since_last_report=held)

    def close(self) -> None:
        pass
