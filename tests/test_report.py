"""The eval report: self-contained, data-driven, and every number equals metrics.json."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from html.parser import HTMLParser

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from edge.cli import cli
from edge.metrics import average_precision, pr_curve
from edge.report import numbers

pytest.importorskip("matplotlib", reason="the report needs the `report` extra (matplotlib)")


class Tagged(HTMLParser):
    """Collects (data-metric path, style, shown text), gallery scores, and every src/href."""

    def __init__(self):
        super().__init__()
        self.metrics: list[tuple[str, str, str]] = []
        self.gallery: list[tuple[str, str]] = []
        self.links: list[str] = []
        self.tags: set[str] = set()
        self._open: list = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.add(tag)
        self.links += [v for k, v in attrs if k in ("src", "href") and v]
        if "data-metric" in a:
            self._open.append(("m", a["data-metric"], a["data-style"], []))
        elif "data-score-of" in a:
            self._open.append(("g", a["data-score-of"], None, []))
        elif tag == "span":
            self._open.append(None)

    def handle_data(self, data):
        for o in self._open:
            if o:
                o[3].append(data)

    def handle_endtag(self, tag):
        if tag == "span" and self._open:
            o = self._open.pop()
            if o and o[0] == "m":
                self.metrics.append((o[1], o[2], "".join(o[3])))
            elif o:
                self.gallery.append((o[1], "".join(o[3])))


def lookup(doc: dict, path: str):
    v = doc
    for part in path.split("."):
        v = v[int(part)] if isinstance(v, list) else v[part]
    return v


def numeric_leaves(doc, prefix=""):
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from numeric_leaves(v, f"{prefix}{k}.")
    elif isinstance(doc, (int, float)) and not isinstance(doc, bool):
        yield prefix[:-1]


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, tiny_bundle, tiny_category):
    out = tmp_path_factory.mktemp("ev") / "ev"
    r = CliRunner().invoke(cli, ["eval", str(tiny_category), "--backbone", str(tiny_bundle), "--out", str(out),
                                 "-d", "20"])
    assert r.exit_code == 0, r.output
    assert f"report: {out / 'report.html'}" in r.output
    return out


def parse(path) -> Tagged:
    p = Tagged()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def test_every_number_in_the_report_equals_metrics_json(evaluated):
    m = json.loads((evaluated / "metrics.json").read_text())
    page = parse(evaluated / "report.html")
    assert len(page.metrics) > 30
    for path, style, text in page.metrics:
        value = lookup(m, path)
        assert text == numbers.fmt(value, style), path
        assert abs(numbers.parse(text, style) - value) <= numbers.tolerance(style), path
    shown = {p for p, _, _ in page.metrics}
    # every headline number, count and rate of metrics.json is on the page
    wanted = [p for p in numeric_leaves(m) if not p.startswith("inspector_details.")]
    assert sorted(set(wanted) - shown) == []


def test_report_is_self_contained(evaluated):
    html = (evaluated / "report.html").read_text(encoding="utf-8")
    page = parse(evaluated / "report.html")
    assert "script" not in page.tags and "link" not in page.tags
    assert page.links and all(u.startswith("data:image/png;base64,") for u in page.links)
    assert not re.search(r"https?://|url\(", html)
    # it still renders with the eval folder gone (a copy on a USB stick is just this file)
    assert len(page.links) >= 4 + 4  # four plots, at least one gallery row of four pictures


def test_report_shows_inspector_curves_histograms_and_gallery(evaluated):
    html = (evaluated / "report.html").read_text(encoding="utf-8")
    m = json.loads((evaluated / "metrics.json").read_text())
    d = m["inspector_details"]
    assert d["d"] == 20 and d["n_images"] == 16 and d["threshold_method"] == "good-crossfit"
    assert "embedding size d</dt><dd>20" in html and "good images (N)</dt><dd>16" in html
    for caption in ("input", "heat map", "predicted mask", "ground truth"):
        assert caption in html
    g = json.loads((evaluated / "gallery.json").read_text())
    scores = {json.loads(line)["image"]: json.loads(line) for line in (evaluated / "scores.jsonl").open()}
    assert g["cases"], "the tiny set has good parts, so at least the closest calls are shown"
    for c in g["cases"]:
        assert c["score"] == pytest.approx(scores[c["image"]]["score"], rel=1e-9)
        for rel in c["pictures"].values():
            assert cv2.imread(str(evaluated / rel)) is not None
    shown = dict(parse(evaluated / "report.html").gallery)
    for c in g["cases"]:
        assert shown[c["image"]] == numbers.fmt(c["score"])


def test_gallery_picks_the_worst_cases():
    from edge.report.gallery import pick_cases

    raw = np.array([0.5, 0.95, 1.2, 3.0, 0.7, 1.05, 0.99, 2.0])
    lab = np.array([0, 0, 0, 1, 1, 1, 1, 1], bool)
    p = pick_cases(raw, lab, 1.0)
    assert p["missed"] == [4, 6]  # lowest-scoring defect first
    assert p["false_reject"] == [2]
    assert p["low_margin"] == [1, 0]
    assert p["hard_catch"] == [5, 7, 3]


def test_plots_are_real_plots(evaluated):
    for name in ("roc.png", "scores.png"):
        img = cv2.imread(str(evaluated / name))
        assert img is not None and img.shape[1] >= 500 and img.shape[0] >= 400
        assert len(np.unique(img.reshape(-1, 3), axis=0)) > 50  # anti-aliased text and curves, not a blank


def test_cascade_stages_and_expected_frr_appear_when_metrics_have_them(evaluated, tmp_path):
    import shutil

    from edge.report import write_report

    d = tmp_path / "ev"
    shutil.copytree(evaluated, d)
    m = json.loads((d / "metrics.json").read_text())
    m["threshold"]["expected_frr"] = {"value": 0.012, "low": 0.004, "high": 0.031, "target": 0.01}
    m["new_metric_from_a_later_change"] = {"recall_at_1pct": 0.8125, "n_regions": 7}
    m["stages"] = [{"name": "gate", "image_auroc": 0.9871, "f1": 0.5, "confusion": {"tp": 5, "fp": 1, "tn": 3, "fn": 0},
                    "per_kind": {"good": {"n": 4, "ng": 1, "false_reject_rate": 0.25}}},
                   {"name": "classifier", "image_auroc": 0.9123}]
    m["alone"] = {"stage": "classifier", "f1": 0.75, "confusion": {"tp": 3, "fp": 2, "tn": 2, "fn": 2}}
    (d / "metrics.json").write_text(json.dumps(m))
    write_report(d)
    html = (d / "report.html").read_text(encoding="utf-8")
    assert "stage 1: gate" in html and "stage 2: classifier" in html
    assert "false rejects fit expected" in html
    page = parse(d / "report.html")
    shown = {p: t for p, _, t in page.metrics}
    assert shown["stages.0.image_auroc"] == "0.9871" and shown["stages.1.image_auroc"] == "0.9123"
    assert shown["stages.0.confusion.fp"] == "1"
    assert shown["threshold.expected_frr.value"] == "1.2%" and shown["threshold.expected_frr.high"] == "3.1%"
    assert "classifier alone, for comparison" in html and shown["alone.confusion.fp"] == "2"
    assert "Other figures in metrics.json" in html  # unknown numbers still appear, with their key
    assert shown["new_metric_from_a_later_change.recall_at_1pct"] == "0.8125"
    assert shown["new_metric_from_a_later_change.n_regions"] == "7"
    for path, style, text in page.metrics:
        assert text == numbers.fmt(lookup(m, path), style)


def test_report_command_rebuilds_and_explains_a_missing_folder(evaluated, tmp_path):
    (evaluated / "report.html").unlink()
    r = CliRunner().invoke(cli, ["report", str(evaluated)])
    assert r.exit_code == 0 and (evaluated / "report.html").is_file()
    empty = tmp_path / "nothing"
    empty.mkdir()
    r = subprocess.run([sys.executable, "-m", "edge", "report", str(empty)], capture_output=True, text=True)
    assert r.returncode == 7 and "no metrics.json" in r.stderr and "edge-inspect eval" in r.stderr


def test_eval_without_matplotlib_writes_metrics_and_says_how(tmp_path, tiny_bundle, tiny_category, monkeypatch):
    import edge.evaluate

    monkeypatch.setattr(edge.evaluate, "report_available", lambda: False)
    out = tmp_path / "ev"
    r = CliRunner().invoke(cli, ["eval", str(tiny_category), "--backbone", str(tiny_bundle), "--out", str(out),
                                 "-d", "20"])
    assert r.exit_code == 0, r.output
    assert (out / "metrics.json").is_file() and (out / "gallery.json").is_file()
    assert not (out / "report.html").exists()
    assert "edge-inspect[report]" in r.output and "edge-inspect report" in r.output


def test_the_line_runtime_never_imports_matplotlib(tiny_inspector_ro, tmp_path):
    code = ("import sys\nfrom click.testing import CliRunner\nfrom edge.cli import cli\n"
            f"r = CliRunner().invoke(cli, ['run', '--source', 'synthetic', '--inspector', {str(tiny_inspector_ro)!r},"
            f" '--out', {str(tmp_path / 'o')!r}, '--max-frames', '4', '--gpio', 'sim'])\n"
            "assert r.exit_code == 0, r.output\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]"


def test_average_precision_and_pr_curve_by_hand():
    s = [0.9, 0.8, 0.7, 0.6]
    y = [1, 0, 1, 0]
    # thresholds: 0.9 → P 1, R .5; 0.8 → P .5; 0.7 → P 2/3, R 1
    assert average_precision(s, y) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    prec, rec = pr_curve(s, y)
    assert rec[0] == 0 and rec[-1] == 1 and prec[-1] == 0.5
    assert average_precision([1, 1, 0], [1, 0, 0]) == pytest.approx(0.5)  # a tie counts as one threshold


def test_supervised_report_has_a_mask_block_with_per_class_dice_and_iou(tmp_path, evaluated):
    from .tiny_supervised import make_square_category, make_supervised_bundle

    cat = make_square_category(tmp_path / "squares")
    b = make_supervised_bundle(tmp_path / "seg", "segmenter")
    out = tmp_path / "ev"
    r = CliRunner().invoke(cli, ["eval", str(cat), "--model", str(b), "--out", str(out)])
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    html = (out / "report.html").read_text(encoding="utf-8")
    page = parse(out / "report.html")
    shown = {p: t for p, _, t in page.metrics}
    assert "<h3>Defect masks</h3>" in html and "judged on" in html
    for c in ("bright", "dark"):
        for k in ("dice", "iou", "n_images"):
            assert f"per_class.{c}.{k}" in shown
        assert f"threshold.min_area.{c}" in shown
        assert f'<td class="l">test/{c}</td>' in html  # each class judged on its own folder
    assert shown["dice"] == numbers.fmt(m["dice"]) and shown["n_segmented"] == str(m["n_segmented"])
    for k in ("tp", "fp", "tn", "fn"):  # the confusion counts
        assert shown[f"confusion.{k}"] == str(m["confusion"][k])
    for path, style, text in page.metrics:
        assert text == numbers.fmt(lookup(m, path), style), path
    assert "Other figures in metrics.json" not in html  # every number has its block
    assert "defect area in pixels" in html and "Mahalanobis" not in html and "<h2>The model</h2>" in html
    # a PaDiM report has no mask block (it has no Dice)
    assert "Defect masks" not in (evaluated / "report.html").read_text(encoding="utf-8")
