"""report.html: one page, inline CSS, pictures as data: URLs; no script, no font, no network.

Every number taken from metrics.json is written as ``<span data-metric="a.b.c" data-style=…>``
(the path into metrics.json and how it is formatted), so a test can check each against the file.
"""

from __future__ import annotations

import base64
import datetime as _dt
from html import escape
from pathlib import Path

from ..supervised.calibration import DECIDE_BY
from .numbers import fmt

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;color:#1a1a1a;
background:#f4f5f7;line-height:1.4}
main{max-width:1180px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:26px;margin:8px 0 4px}h2{font-size:20px;margin:28px 0 8px;border-bottom:2px solid #d0d4da}
h3{font-size:16px;margin:18px 0 6px}
.sub{color:#555;margin:0 0 12px}.card{background:#fff;border:1px solid #d9dce1;border-radius:6px;padding:12px 16px;
margin:10px 0}
.verdict{font-size:18px}.kpis{display:flex;flex-wrap:wrap;gap:10px}
.kpi{background:#fff;border:1px solid #d9dce1;border-radius:6px;padding:8px 14px;min-width:120px}
.kpi b{display:block;font-size:24px}.kpi small{color:#555}
table{border-collapse:collapse;background:#fff}td,th{border:1px solid #d0d4da;padding:5px 10px;text-align:right}
th{background:#eef0f3}td.l,th.l{text-align:left}
.cm td{width:130px;height:48px;text-align:center;font-size:18px}.cm .ok{background:#e3f2e5}.cm .bad{background:#fbe3e3}
.figs{display:flex;flex-wrap:wrap;gap:12px}.figs img{background:#fff;border:1px solid #d9dce1;max-width:100%}
.case{background:#fff;border:1px solid #d9dce1;border-radius:6px;padding:8px;margin:8px 0}
.case .pics{display:flex;gap:6px;flex-wrap:wrap}.case figure{margin:0;text-align:center}
.case figcaption{font-size:12px;color:#444}.case img{display:block;width:224px;image-rendering:pixelated}
.muted{color:#666}.warn{color:#a33}dl{display:grid;grid-template-columns:max-content auto;gap:2px 16px;margin:0}
dt{color:#555}dd{margin:0}
"""

KEY_NUMBERS = [
    ("image_auroc", "image AUROC", "num", "Separates good from defective images, whatever the threshold (1 = perfect, "
                                          "0.5 = chance)."),
    ("image_auroc_area_only", "image AUROC, area only", "num", "A segmenter's image AUROC ranked by the defect "
                                                              "area alone (parts with no mask all tie)."),
    ("image_ap", "image AP", "num", "Average precision of flagging defective images (1 = perfect)."),
    ("pixel_auroc", "pixel AUROC", "num", "The same for pixels inside vs outside the ground-truth masks."),
    ("pixel_ap", "pixel AP", "num", "Average precision of defect pixels (harder than pixel AUROC when defects "
                                    "are small)."),
    ("pro", "PRO", "num", "Average overlap with each defect region, up to 30% false-positive rate."),
    ("f1", "F1 (NG)", "num", "At the threshold: balance of catching defects and not flagging good parts."),
    ("macro_f1", "macro-F1", "num", "Mean of the F1 of the OK and the NG class."),
    ("dice", "Dice", "num", "Overlap of predicted and true defect masks (1 = identical)."),
    ("iou", "IoU", "num", "Intersection over union of predicted and true defect masks."),
    ("ran", "parts it ran on", "int", "How many parts reached this stage."),
    ("share_ran", "share it ran on", "pct", "Share of all parts that reached this stage."),
    ("defects_not_reached", "defects not reached", "int", "Defective parts an earlier stage passed, so this "
                                                          "stage never saw them."),
    ("gate_pass_share", "passed the gate", "pct", "Share of parts the first stage sent on to the next."),
    ("n_images", "images scored", "int", "Test images with a decision."),
    ("n_errors", "ERROR", "int", "Test images that got an ERROR record: unreadable, or refused by the capture check (not in the numbers above)."),
]

RAW_SCORE = {
    "padim": "Mahalanobis distance of the most unusual spot of the image from the good parts' statistics.",
    "classifier": "P(NG): the classifier's probability that the part is defective.",
    "multitask": "P(NG) from the class head, which decides; the masks say where.",
    "multitask-area": "the defect area in pixels at the model's input size, from the mask head, which decides (the "
                      "trainer found it ranked its validation images better than the class head); P(NG) is reported.",
    "segmenter": "the defect area in pixels at the model's input size (the largest class; with one minimum "
                 "area per class, the largest class's share of its own minimum, times the smallest minimum).",
    "peak": "the largest defect probability of any pixel, from the mask head, which decides (the trainer's "
            "choice when it ranked its validation images best, or `calibrate --decide-by peak`); the masks and "
            "their areas are reported.",
}
GLOSSARY = [
    ("score", "raw score ÷ image threshold: 1.0 is the line between OK and NG, on every inspector."),
    ("raw score", RAW_SCORE["padim"]),
    ("false reject", "a good part rejected as NG (costs scrap or re-inspection)."),
    ("missed defect", "a defective part passed as OK (reaches the customer)."),
    ("heat map", "red and hotter = more unusual than the pixel threshold; blue = like the good parts."),
]


_shown: set[str] = set()  # paths rendered by the page being built (render() resets it)


def m(path: str, value, style: str = "num") -> str:
    """A number from metrics.json, tagged with where it came from."""
    _shown.add(path)
    return f'<span data-metric="{escape(path)}" data-style="{style}">{escape(fmt(value, style))}</span>'


def _leaves(doc, prefix: str = ""):
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _leaves(v, f"{prefix}{k}.")
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _leaves(v, f"{prefix}{i}.")
    elif isinstance(doc, (int, float)) and not isinstance(doc, bool):
        yield prefix[:-1], doc


def _other_numbers(metrics: dict) -> str:
    """Numbers metrics.json has that no block above shows (new metrics appear here until they get a home)."""
    rest = [(p, v) for p, v in _leaves(metrics) if p not in _shown and not p.startswith("inspector_details.")]
    if not rest:
        return ""
    rows = "".join(f'<tr><td class="l">{escape(p)}</td><td>{m(p, v, "int" if isinstance(v, int) else "num")}</td></tr>'
                   for p, v in rest)
    return f'<h2>Other figures in metrics.json</h2><table><tr><th class="l">key</th><th>value</th></tr>{rows}</table>'


def _img(png: bytes, alt: str, width: int | None = None) -> str:
    w = f' width="{width}"' if width else ""
    return f'<img alt="{escape(alt)}"{w} src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _kpis(metrics: dict, prefix: str) -> str:
    cells = []
    for key, label, style, tip in KEY_NUMBERS:
        if key in metrics:
            cells.append(f'<div class="kpi" title="{escape(tip)}"><small>{escape(label)}</small>'
                         f'{_b(m(prefix + key, metrics[key], style))}</div>')
    return f'<div class="kpis">{"".join(cells)}</div>'


def _b(s: str) -> str:
    return f"<b>{s}</b>"


def _verdict(metrics: dict, prefix: str) -> str:
    c = metrics.get("confusion")
    if not c:
        return ""
    n_bad, n_good = c["tp"] + c["fn"], c["tn"] + c["fp"]
    p = prefix + "confusion."
    return (f'<p class="verdict">At the threshold: caught {m(p + "tp", c["tp"], "int")} of '
            f'{n_bad} defective parts, missed {m(p + "fn", c["fn"], "int")}; rejected '
            f'{m(p + "fp", c["fp"], "int")} of {n_good} good parts.</p>')


def _confusion(metrics: dict, prefix: str) -> str:
    c = metrics.get("confusion")
    if not c:
        return ""
    p = prefix + "confusion."
    return ('<table class="cm"><tr><th></th><th>decided OK</th><th>decided NG</th></tr>'
            f'<tr><th class="l">good part</th><td class="ok">{m(p + "tn", c["tn"], "int")}<br><small>passed</small>'
            f'</td><td class="bad">{m(p + "fp", c["fp"], "int")}<br><small>false reject</small></td></tr>'
            f'<tr><th class="l">defective part</th><td class="bad">{m(p + "fn", c["fn"], "int")}<br>'
            f'<small>missed</small></td><td class="ok">{m(p + "tp", c["tp"], "int")}<br><small>caught</small>'
            '</td></tr></table>')


def _per_kind(metrics: dict, prefix: str) -> str:
    pk = metrics.get("per_kind")
    if not pk:
        return ""
    spread = [c for c in ("score_min", "score_median", "score_max") if any(c in v for v in pk.values())]
    rows = []
    for k, v in sorted(pk.items(), key=lambda kv: (kv[0] != "good", kv[0])):
        p = f"{prefix}per_kind.{k}."
        rate_key = "false_reject_rate" if "false_reject_rate" in v else "detection_rate"
        what = "falsely rejected" if rate_key == "false_reject_rate" else "detected"
        cells = [f'<td class="l">{escape(k)}</td>', f"<td>{m(p + 'n', v.get('n'), 'int')}</td>",
                 f"<td>{m(p + 'ng', v.get('ng'), 'int')}</td>",
                 f'<td class="l">{m(p + rate_key, v.get(rate_key), "pct")} {what}</td>']
        for c in spread:
            cells.append(f"<td>{m(p + c, v[c]) if c in v else ''}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    heads = {"score_min": "lowest score", "score_median": "median score", "score_max": "highest score"}
    return ('<table><tr><th class="l">kind</th><th>images</th><th>decided NG</th><th>rate</th>'
            + "".join(f"<th>{heads[c]}</th>" for c in spread) + f'</tr>{"".join(rows)}</table>')


def _threshold(metrics: dict, prefix: str) -> str:
    t = metrics.get("threshold")
    if not t:
        return ""
    p = prefix + "threshold."
    items = [("image threshold (raw)", m(p + "image", t.get("image"), "raw")),
             ("pixel threshold (raw)", m(p + "pixel", t.get("pixel"), "raw")) if "pixel" in t else None,
             ("set by", escape(str(t.get("method", "?"))))]
    e = t.get("expected_frr")
    if isinstance(e, dict):
        txt = m(p + "expected_frr.value", e.get("value"), "pct")
        if e.get("low") is not None and e.get("high") is not None:
            txt += (f" (likely between {m(p + 'expected_frr.low', e['low'], 'pct')} and "
                    f"{m(p + 'expected_frr.high', e['high'], 'pct')})")
        if e.get("target") is not None:
            txt += f", target {m(p + 'expected_frr.target', e['target'], 'pct')}"
        if e.get("n") is not None:
            txt += f"; from {m(p + 'expected_frr.n', e['n'], 'int')} good images scored by statistics that never saw them"
            if e.get("observed_held_out") is not None:
                txt += (f", {m(p + 'expected_frr.observed_held_out', e['observed_held_out'], 'pct')} of them at or "
                        "above the threshold")
        items.append(("false rejects fit expected", txt))
    good = metrics.get("per_kind", {}).get("good", {})
    a = metrics.get("at_threshold") or {}
    q = prefix + "at_threshold."
    if a.get("false_reject_rate") is not None:
        txt = (m(q + "false_reject_rate", a["false_reject_rate"], "pct") + " of "
               + m(q + "n_good", a["n_good"], "int") + " good test images")
        if "consistent_with_expected" in a:
            txt += " (" + ("consistent with" if a["consistent_with_expected"] else "NOT consistent with") + \
                " what fit expected, given so few images)"
        if a.get("advice"):
            txt += ": " + escape(a["advice"])
        items.append(("false rejects measured here", txt))
    elif "false_reject_rate" in good:
        items.append(("false rejects measured here",
                      m(f"{prefix}per_kind.good.false_reject_rate", good["false_reject_rate"], "pct")
                      + f" of {good.get('n', '?')} good test images"))
    if a.get("recall") is not None:
        items.append(("defects caught at this threshold", m(q + "recall", a["recall"], "pct") + " of "
                      + m(q + "n_defect", a["n_defect"], "int") + " defective test images"))
    return "<dl>" + "".join(f"<dt>{a}</dt><dd>{b}</dd>" for a, b in filter(None, items)) + "</dl>"


def _inspector(metrics: dict) -> str:
    d = metrics.get("inspector_details")
    if not d:
        d = {k: metrics[k] for k in ("inspector", "model", "cascade", "stage_names", "vote") if metrics.get(k)}
    labels = {"id": "id", "backbone": "backbone", "input": "input size", "fitted_with": "model variant",
              "d": "embedding size d", "mode": "statistics mode", "tiles": "tiling", "n_images": "good images (N)",
              "shrinkage": "covariance shrinkage", "eps": "eps", "threshold_method": "threshold method",
              "quantile": "threshold quantile", "margin": "threshold margin", "inspector": "inspector",
              "model": "model", "cascade": "cascade", "stage_names": "stages", "vote": "vote"}
    rows = []
    for k, v in d.items():
        shown = (" → " if k == "stage_names" else "×").join(map(str, v)) if isinstance(v, list) else str(v)
        rows.append(f"<dt>{escape(labels.get(k, k))}</dt><dd>{escape(shown)}</dd>")
    return "<dl>" + "".join(rows) + "</dl>"


def _gallery(gallery: dict, root: Path) -> str:
    cases = gallery.get("cases", [])
    groups = gallery.get("groups", {})
    if not groups:
        return '<p class="muted">This evaluation wrote no gallery (gallery.json).</p>'
    out = []
    captions = {"input": "input", "heat": "heat map", "predicted": "predicted mask (red)",
                "truth": "ground truth (green)"}
    for g, title in groups.items():
        mine = [c for c in cases if c["group"] == g]
        out.append(f"<h3>{escape(title)}</h3>")
        if not mine:
            out.append('<p class="muted">none</p>')
            continue
        for c in mine:
            pics = []
            for what, rel in c["pictures"].items():
                p = root / rel
                cap = captions.get(what, what)
                if what in ("predicted", "truth") and not c.get(f"{what}_pixels", 1):
                    cap += ": none" if what == "predicted" else ": no defect"
                if p.is_file():
                    pics.append(f"<figure>{_img(p.read_bytes(), cap)}<figcaption>{escape(cap)}</figcaption></figure>")
            out.append(f'<div class="case"><div><b>{escape(c["kind"])}</b> · score '
                       f'<span data-score-of="{escape(c["image"])}">{fmt(c["score"])}</span> '
                       f'(raw {fmt(c["raw_score"], "raw")}) · <span class="muted">{escape(c["image"])}</span></div>'
                       f'<div class="pics">{"".join(pics)}</div></div>')
    return "".join(out)


def _masks(metrics: dict, prefix: str) -> str:
    """A model with masks: Dice and IoU over the defective images, and per defect class."""
    if metrics.get("dice") is None and not metrics.get("per_class"):
        return ""
    out = []
    if metrics.get("dice") is not None:
        txt = f"Dice {m(prefix + 'dice', metrics['dice'])}"
        if metrics.get("iou") is not None:
            txt += f", IoU {m(prefix + 'iou', metrics['iou'])}"
        n = metrics.get("n_segmented")
        txt += (f", mean over {m(prefix + 'n_segmented', n, 'int')} defective images" if n is not None
                else ", mean over the defective images")
        out.append(f"<p>Predicted defect mask (every class together) against the true mask: {txt}. "
                   "1 = the same pixels, 0 = no overlap.</p>")
    pc = metrics.get("per_class") or {}
    if pc:
        rows = []
        for c, v in pc.items():
            q = f"{prefix}per_class.{c}."
            rows.append(f'<tr><td class="l">{escape(str(c))}</td><td class="l">{escape(str(v.get("judged_on", "?")))}'
                        f'</td><td>{m(q + "n_images", v.get("n_images"), "int")}</td>'
                        f'<td>{m(q + "dice", v.get("dice"))}</td><td>{m(q + "iou", v.get("iou"))}</td></tr>')
        out.append('<table><tr><th class="l">defect class</th><th class="l">judged on</th><th>images</th>'
                   f'<th>Dice</th><th>IoU</th></tr>{"".join(rows)}</table>')
    th = metrics.get("threshold") or {}
    mins = th.get("min_area")
    if th.get("decides_by") == "peak" and isinstance(th.get("peak"), (int, float)):
        out.append(f'<p class="muted">A part is NG when a class\'s largest mask probability reaches '
                   f"{m(prefix + 'threshold.peak', th['peak'])}.</p>")
    elif isinstance(mins, dict) and mins:
        cells = ", ".join(f"{escape(str(c))} {m(f'{prefix}threshold.min_area.{c}', a, 'int')} px"
                          for c, a in mins.items())
        out.append(f'<p class="muted">A part is NG when a class covers at least its minimum area (pixels at the '
                   f"model's input size): {cells}.</p>")
    return "".join(out)


def _section(title: str, body: str) -> str:
    return f"<h3>{title}</h3>{body}" if body else ""


def _block(metrics: dict, prefix: str) -> str:
    return (_verdict(metrics, prefix) + _kpis(metrics, prefix) + _section("Threshold", _threshold(metrics, prefix))
            + _section("Confusion at the threshold", _confusion(metrics, prefix))
            + _section("Defect masks", _masks(metrics, prefix))
            + _section("Per defect kind", _per_kind(metrics, prefix)))


def _comparisons(metrics: dict) -> str:
    """Blocks of the same shape nested in metrics.json (e.g. a cascade's last stage run alone)."""
    out = []
    for key, v in metrics.items():
        if key != "stages" and isinstance(v, dict) and "confusion" in v:
            what = f"{v['stage']} alone, for comparison" if key == "alone" and v.get("stage") else key
            out.append(f'<div class="card"><h3>{escape(str(what))}</h3>{_block(v, key + ".")}</div>')
    return "".join(out)


def _model_kind(metrics: dict) -> str:
    details = metrics.get("inspector_details") or {}
    kind = details.get("kind")
    rule = {words: r for r, words in DECIDE_BY.items()}.get(details.get("decides_by"))
    if kind in ("segmenter", "multitask") and rule == "peak":
        return "peak"
    if kind == "multitask" and rule == "area":
        return "multitask-area"
    return kind if kind in RAW_SCORE else "padim"


def _glossary(metrics: dict) -> list[tuple[str, str]]:
    """The words, with what "raw score" means for this model (a cascade's is its deciding stage's)."""
    raw = RAW_SCORE[_model_kind(metrics)] if not metrics.get("stages") else \
        "the deciding stage's own score (see each stage); the score is on the same 1.0 = threshold scale."
    return [(a, raw if a == "raw score" else b) for a, b in GLOSSARY]


def _identity(metrics: dict) -> str:
    for key in ("inspector", "cascade", "model"):
        if metrics.get(key):
            return f"{key} {metrics[key]}"
    return "model ?"


def _stages(metrics: dict) -> str:
    stages = metrics.get("stages")
    if not isinstance(stages, list) or not stages:
        return ""
    out = ["<h2>Per stage</h2>"]
    for i, st in enumerate(stages):
        out.append(f'<div class="card"><h3>stage {i + 1}: {escape(str(st.get("name", "?")))}</h3>'
                   f'{_block(st, f"stages.{i}.")}</div>')
    return "".join(out)


def render(data: dict, figures: dict[str, bytes], root: Path) -> str:
    metrics = data["metrics"]
    _shown.clear()
    top, stages, comparisons = _block(metrics, ""), _stages(metrics), _comparisons(metrics)
    when = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    figs_curves = "".join(_img(figures[k], k) for k in ("roc", "pr") if k in figures)
    figs_scores = "".join(_img(figures[k], k) for k in ("scores", "scores_by_kind") if k in figures)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>edge-inspect eval: {escape(str(metrics.get("category", "")))}</title><style>{CSS}</style></head>
<body><main>
<h1>Evaluation of {escape(Path(str(metrics.get("category", "?"))).name)}</h1>
<p class="sub">{escape(str(metrics.get("category", "")))} · {escape(_identity(metrics))}
 · report written {when} · every number here is from metrics.json in this folder</p>
<div class="card">{top}</div>
<h2>How well the score separates good from defective</h2>
<p>Left: ROC (higher and further left is better). Right: precision against recall. <i>image</i> judges whole
parts, <i>pixel</i> judges where the defect is.</p>
<div class="figs">{figs_curves}</div>
<h2>Scores of good and defective parts</h2>
<p>The black line is the threshold: parts to its right are rejected. Good parts (green) right of it are false
rejects; defects left of it are missed.</p>
<div class="figs">{figs_scores}</div>
{stages}
{comparisons}
{_other_numbers(metrics)}
<h2>Worst cases</h2>
<p>Each row: the part, its heat map, the mask the inspector predicted and the true defect mask.</p>
{_gallery(data["gallery"], root)}
<h2>The {"model" if _model_kind(metrics) != "padim" else "inspector"}</h2>
<div class="card">{_inspector(metrics)}</div>
<h2>Words used here</h2>
<dl>{"".join(f"<dt>{escape(a)}</dt><dd>{escape(b)}</dd>" for a, b in _glossary(metrics))}</dl>
</main></body></html>
"""
