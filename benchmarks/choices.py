"""Measured choices of backbone, d and taps (issue #9) on the real-photo DEV set — never the holdout.

    python -m benchmarks.choices --n 20                      # the four configurations below
    python -m benchmarks.choices --n 80 --config lite0 --config lite1
    python -m benchmarks.choices --n 20 --config lite0-s16b7=/tmp/lite0-s16b7:100   # a bundle with other taps

A configuration is ``LABEL=BACKBONE:D`` (or a preset label): BACKBONE is a bundle folder (or a name
under the default backbone folder), D an embedding size or ``all`` (every channel of the bundle's
taps). The taps are fixed by the bundle, so other taps are another bundle, e.g.
``edge-export backbone efficientnet-lite0 --weights pretrained --taps s4=_blocks.2,s8=_blocks.4,s16=_blocks.7
--out /tmp/lite0-s16b7``.

For every category and configuration the product runs as a user would, with defaults otherwise:
``edge-inspect fit --good DIR --backbone B -d D`` (so ``--mode auto``), then ``edge-inspect eval
CATEGORY --inspector``; rows keep eval's image and pixel AUROC, good parts rejected and defects
caught at the product's threshold, fit's wall time, what fit chose, and the size of the statistics
on disk. Scoring speed is measured after a category's fits, side by side in one process: every
configuration's inspector scores the same test images one at a time (preprocess, backbone,
Mahalanobis, map), interleaved in rotating order (benchmarks/timing.py), median ms per image; the
ratio is against the first configuration of the run. Results accumulate in --out (.md + .json): a
row measured again replaces the old one.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from edge.dataset import load_category
from edge.imageio import read_image
from edge.paths import default_backbone_dir

from .accuracy import _edge, _git_head, chosen_variant, ensure_data
from .choices_report import ChoiceRow, configurations, means_table, per_category_table, verdicts
from .realdata import GROUPS, VERSION, Counts
from .timing import interleaved, summary_ms

HERE = Path(__file__).parent
PRESETS = {  # today's default first: ratios are against the first configuration of a run
    "lite0": "efficientnet-lite0:100",
    "lite1": "efficientnet-lite1:100",
    "lite2": "efficientnet-lite2:100",
    "lite0-all": "efficientnet-lite0:all",
}


def _log(msg: str, t0: float = time.perf_counter()) -> None:
    print(f"[choices {time.perf_counter() - t0:6.0f}s] {msg}", file=sys.stderr, flush=True)


def parse_config(text: str) -> tuple[str, Path, int]:
    """``LABEL=BACKBONE:D`` or a preset label → (label, bundle folder, d)."""
    label, _, spec = text.partition("=") if "=" in text else (text, "", PRESETS.get(text, ""))
    if not spec:
        raise SystemExit(f"--config {text!r}: not a preset ({', '.join(PRESETS)}) nor LABEL=BACKBONE:D")
    where, _, d = spec.rpartition(":")
    bundle = Path(where) if os.sep in where else default_backbone_dir().parent / where
    manifest = json.loads((bundle / "manifest.json").read_text())
    channels = sum(int(t["channels"]) for t in manifest["taps"])
    dim = channels if d == "all" else int(d)
    if dim > channels:
        raise SystemExit(f"--config {text!r}: d={dim} but {bundle.name}'s taps have {channels} channels")
    return label, bundle, dim


def taps_of(bundle: Path) -> str:
    taps = json.loads((bundle / "manifest.json").read_text())["taps"]
    return ", ".join(f"{t['name']}={t['layer']} ({t['channels']} ch)" for t in taps)


def _mb(paths: list[Path]) -> float:
    return sum(p.stat().st_size for p in paths if p.is_file()) / 1e6


def fit_and_eval(cat: Path, n: int, bundle: Path, d: int, work: Path) -> dict:
    good = work / "good"
    good.mkdir(parents=True)
    for p in sorted(load_category(cat).train_good)[:n]:
        os.symlink(p.resolve(), good / p.name)
    insp = work / "inspector"
    t0 = time.perf_counter()
    _edge("fit", "--good", str(good), "--out", str(insp), "--backbone", str(bundle), "-d", str(d))
    fit_s = time.perf_counter() - t0
    _edge("eval", str(cat), "--inspector", str(insp), "--out", str(work / "eval"))
    m = json.loads((work / "eval" / "metrics.json").read_text())
    c, det = m["confusion"], m.get("inspector_details", {})
    chosen = chosen_variant(insp) + (f", {det['aggregate']}x{det['aggregate']}" if det.get("aggregate") else "")
    files = [p for p in insp.iterdir() if p.name != "backbone"]
    return {"image_auroc": m["image_auroc"], "pixel_auroc": m["pixel_auroc"],
            "frr": c["fp"] / max(1, c["fp"] + c["tn"]), "recall": c["tp"] / max(1, c["tp"] + c["fn"]),
            "n_good": c["fp"] + c["tn"], "n_defect": c["tp"] + c["fn"], "chosen": chosen, "fit_s": fit_s,
            "stats_mb": _mb([insp / "stats.npz"]), "inspector_mb": _mb(files)}


def scoring_ms(inspectors: dict[str, Path], cat: Path, reps: int) -> dict[str, float]:
    """Median ms per image of each inspector scoring the same test images one at a time, interleaved."""
    from edge.inspector import Inspector
    from edge.stage import run_stage

    items = load_category(cat).test
    images = [read_image(items[i * len(items) // reps].path) for i in range(reps)]
    loaded = {k: Inspector.load(p) for k, p in inspectors.items()}
    fns = {k: (lambda i, s=s: run_stage(s, [images[i % len(images)]])) for k, s in loaded.items()}
    t = interleaved(fns, reps, warmup=3)
    return {k: summary_ms(v)["median_ms"] for k, v in t.items()}


def measure(data: Path, names: list[str], kinds: dict[str, str], n: int, configs: list[tuple[str, Path, int]],
            reps: int, command: str, keep: Path | None) -> list[ChoiceRow]:
    rows = []
    for name in names:
        tmp = Path(tempfile.mkdtemp(prefix=f"choices-{name}-{n}-", dir=keep))
        try:
            got, inspectors = {}, {}
            for label, bundle, d in configs:
                _log(f"{name} N={n} {label}: fit + eval")
                work = tmp / label.replace(" ", "_").replace("=", "")
                got[label] = fit_and_eval(data / name, n, bundle, d, work)
                inspectors[label] = work / "inspector"
                g = got[label]
                _log(f"{name} N={n} {label}: image AUROC {g['image_auroc']:.3f}, pixel {g['pixel_auroc']:.3f}, "
                     f"good rejected {g['frr']:.1%}, caught {g['recall']:.1%}, chose {g['chosen']}, fit {g['fit_s']:.0f} s")
            _log(f"{name} N={n}: scoring speed, {reps} images per configuration, interleaved")
            ms = scoring_ms(inspectors, data / name, reps)
            first = ms[configs[0][0]]
            for label, bundle, d in configs:
                rows.append(ChoiceRow(label, bundle.name, d, name, kinds[name], n, **got[label],
                                      scoring_ms=ms[label], scoring_ratio=ms[label] / first, run=command,
                                      taps=taps_of(bundle), product=_git_head()))
                _log(f"{name} N={n} {label}: {ms[label]:.1f} ms/image ({ms[label] / first:.2f}x)")
        finally:
            if keep is None:
                shutil.rmtree(tmp, ignore_errors=True)
    return rows


def saved_rows(path: Path, desc: dict) -> list[ChoiceRow]:
    """Rows of an earlier results .json measured on the same data (none from other data)."""
    if not path.is_file():
        return []
    saved = json.loads(path.read_text())
    if saved.get("data") != {k: desc.get(k) for k in ("version", "group", "size", "seed")}:
        return []
    return [ChoiceRow(**r) for r in saved["rows"]]


def merge(old: list[ChoiceRow], new: list[ChoiceRow]) -> list[ChoiceRow]:
    """Old rows, except those measured again (same configuration, category and N), then the new ones."""
    done = {(r.config, r.category, r.n) for r in new}
    return [r for r in old if (r.config, r.category, r.n) not in done] + new


def write_results(rows: list[ChoiceRow], out: Path, data: Path, baseline: str) -> str:
    desc = json.loads((data / "dataset.json").read_text())
    rows = sorted(rows, key=lambda r: r.config != baseline)  # the baseline's rows first, else as measured
    parts = [
        "# Measured choices of backbone, d and taps (issue #9), real-photo dev set", "",
        (f"Data: benchmarks/realdata.py v{VERSION}, group `{desc.get('group')}` ({str(data).replace(str(Path.home()), '~')}), {desc.get('size')}² px, "
         f"seed {desc.get('seed')}: real photographs from the scikit-image/scikit-learn wheels with planted defects, "
         "80 train/good, 30 test/good, 48 defective images per category (see the set's README.txt). Never the "
         "holdout."),
        "",
        ("Each row: `edge-inspect fit --good DIR --backbone B -d D` with every other option at its default "
         "(`--mode auto`, `--aggregate auto`), fitted on the first N good images, then `edge-inspect eval`. "
         "Good rejected / defects caught are at the product's own threshold. fit s: wall time of the fit "
         "(niced, on a 2-core VM shared with other jobs: only rough). Scoring: median ms per image, batch 1, "
         "every configuration of a run interleaved on the same images in one process; × first is the ratio to "
         "the run's first configuration (the one to compare against; the verdicts' speed is this ratio, as ms "
         "from different runs saw different loads). stats MB: stats.npz, what scoring loads."),
        "", ("Configurations (bundles from `edge-export backbone ARCH --weights pretrained`; other taps: "
             "`--taps`, e.g. `--taps s4=_blocks.2,s8=_blocks.4,s16=_blocks.7` for lite0-s16b7):"), "",
        *[f"- {c}" for c in configurations(rows)], ""]
    for n in sorted({r.n for r in rows}):
        sel = [r for r in rows if r.n == n]
        runs = sorted({(r.run, r.product) for r in sel})
        parts += [f"## N={n}", "", *[f"`{c}` (product at `{p or '?'}`)" for c, p in runs], "", "Means over categories:", "", means_table(sel), "",
                  *[f"- {v}" for v in verdicts(sel, baseline)], "", per_category_table(sel), ""]
    parts.append(f"Written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.")
    text = "\n".join(parts) + "\n"
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps(
        {"data": {k: desc.get(k) for k in ("version", "group", "size", "seed")}, "baseline": baseline,
         "rows": [asdict(r) for r in rows]}, indent=1) + "\n")
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.choices", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20, help="good images to fit on (the first N of train/good)")
    ap.add_argument("--config", action="append", default=None, metavar="LABEL[=BACKBONE:D]",
                    help=f"repeatable; the first is the speed baseline. Presets: "
                         f"{', '.join(f'{k} ({v})' for k, v in PRESETS.items())}. Default: all four presets")
    ap.add_argument("--categories", default="", help="comma-separated subset of the dev group")
    ap.add_argument("--data", type=Path, default=Path.home() / ".cache" / "edge-inspect" / "realdata-dev",
                    help="the generated dev set (generated if missing)")
    ap.add_argument("--reps", type=int, default=24, help="images each configuration scores for the speed column")
    ap.add_argument("--baseline", default="lite0", help="configuration the verdicts compare against")
    ap.add_argument("--out", type=Path, default=HERE / "choices_results.md", help="markdown (+ .json); rows accumulate")
    ap.add_argument("--keep", type=Path, default=None, help="keep the inspectors and eval folders under this folder")
    ap.add_argument("--rewrite", action="store_true", help="only write --out's markdown again from its .json")
    a = ap.parse_args(argv)
    command = "python -m benchmarks.choices " + shlex.join(argv if argv is not None else sys.argv[1:])
    specs = {c.name: c for c in GROUPS["dev"]}
    names = [c for c in a.categories.split(",") if c] or list(specs)
    unknown = [x for x in names if x not in specs]
    if unknown:
        ap.error(f"not in the dev group: {', '.join(unknown)} (have {', '.join(specs)})")
    if not a.rewrite:
        ensure_data(a.data, "dev", Counts(), names)
    desc = json.loads((a.data / "dataset.json").read_text())
    if desc.get("group") != "dev":
        ap.error(f"{a.data} holds the {desc.get('group')!r} group: choices are measured on dev only")
    if a.rewrite:
        print(write_results(saved_rows(a.out.with_suffix(".json"), desc), a.out, a.data, a.baseline))
        return 0
    configs = [parse_config(c) for c in (a.config or list(PRESETS))]
    if a.keep:
        a.keep.mkdir(parents=True, exist_ok=True)
    new = measure(a.data, names, {x: specs[x].kind for x in names}, a.n, configs, a.reps, command, a.keep)
    rows = merge(saved_rows(a.out.with_suffix(".json"), desc), new)
    print(write_results(rows, a.out, a.data, a.baseline))
    print(f"written: {a.out} and {a.out.with_suffix('.json')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
