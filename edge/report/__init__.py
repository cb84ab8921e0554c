"""The eval report: one self-contained ``report.html`` (pictures embedded, no network) plus
``roc.png`` and ``scores.png``, drawn from what ``eval`` wrote.

Data-driven: it reads only ``metrics.json``, ``curves.json``, ``scores.jsonl`` and
``gallery.json`` from the eval folder, so ``edge-inspect report EVAL_DIR`` can (re)build it on
another machine. Blocks appear when their data is there: a ``stages`` list in metrics.json (a
cascade) gets one block per stage; ``threshold.expected_frr`` (from fit) is shown when present.

matplotlib is the optional ``report`` extra and is imported only here, lazily: the line runtime
never loads it.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from ..errors import DataError, EdgeError

REPORT_HTML = "report.html"


class ReportUnavailable(EdgeError):
    """matplotlib (the ``report`` extra) is not installed."""

    def __init__(self):
        super().__init__("the eval report needs matplotlib, which is not installed",
                         hint="pip install 'edge-inspect[report]'; metrics.json is written without it, and "
                              "`edge-inspect report EVAL_DIR` builds the report later, on any machine")


def report_available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def read_eval_dir(eval_dir: str | Path) -> dict:
    """metrics, curves, scores and gallery of an eval folder (the last three may be absent)."""
    d = Path(eval_dir)
    if not (d / "metrics.json").is_file():
        raise DataError(f"{d} has no metrics.json", hint="run `edge-inspect eval CATEGORY --out DIR` first")

    def load(name: str, default):
        p = d / name
        return json.loads(p.read_text()) if p.is_file() else default

    scores = []
    if (d / "scores.jsonl").is_file():
        scores = [json.loads(line) for line in (d / "scores.jsonl").read_text().splitlines() if line.strip()]
    return {"metrics": load("metrics.json", {}), "curves": load("curves.json", {}), "scores": scores,
            "gallery": load("gallery.json", {"cases": [], "groups": {}})}


def write_report(eval_dir: str | Path) -> Path:
    """Draw roc.png and scores.png and write report.html into ``eval_dir``; returns its path."""
    if not report_available():
        raise ReportUnavailable()
    from . import page, plots  # matplotlib is imported here, not before

    d = Path(eval_dir)
    data = read_eval_dir(d)
    figures = plots.all_figures(data)
    (d / "roc.png").write_bytes(figures["roc"])
    (d / "scores.png").write_bytes(figures["scores"])
    html = page.render(data, figures, d)
    tmp = d / (REPORT_HTML + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(d / REPORT_HTML)
    return d / REPORT_HTML
