"""Accuracy on the real-photo set: the product with its defaults against the paper-faithful torch PaDiM.

    python -m benchmarks.accuracy --group holdout              # the final table (N=20 and N=80)
    python -m benchmarks.accuracy --group dev --n 20           # while designing methods
    python -m benchmarks.accuracy --quick                      # smoke run: 2 small categories, a few minutes

For every category and N it fits on the first N of CATEGORY/train/good exactly as a user would,
``edge-inspect fit --good DIR`` with no other flags, then ``edge-inspect eval CATEGORY --inspector``,
and reads eval's metrics.json (image and pixel AUROC, good parts rejected and defects caught at the
product's own threshold) and the inspector's calibration.json (the false-reject rate fit expected,
with its interval, when fit records one). The reference (benchmarks/torch_reference.py) is PaDiM as
the paper's code does it, on the same images: the same Lite0 backbone at 256², the same d=100
channels (seed 0), every embedding kept, covariance + 0.01·I. It has no threshold of its own, so
only its AUROCs are shown. The data set is generated (benchmarks/realdata.py) into --data if it is
not there. Results: a table on stdout, --out (markdown) and the same name with .json.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np

from edge.dataset import load_category
from edge.imageio import read_image, read_mask
from edge.metrics import auroc

from .accuracy_report import Row, per_kind_table, table, verdicts
from .realdata import GROUPS, VERSION, Counts, generate

HERE = Path(__file__).parent


def _log(msg: str, t0: float = time.perf_counter()) -> None:
    print(f"[accuracy {time.perf_counter() - t0:6.0f}s] {msg}", file=sys.stderr, flush=True)


def ensure_data(data: Path, group: str, counts: Counts, names: list[str], only: list[str] | None = None) -> None:
    """Generate the group (or ``only`` those) into ``data`` unless dataset.json says ``names`` are there."""
    desc = data / "dataset.json"
    if desc.is_file():
        d = json.loads(desc.read_text())
        have = {c["name"] for c in d.get("categories", [])}
        if d.get("version") == VERSION and d.get("size") == 256 and set(names) <= have:
            return
    _log(f"generating the {group} set into {data}")
    generate(data, group, 256, counts, only=only, log=_log)


def _edge(*args: str) -> str:
    """Run the product's CLI as a user would (this interpreter, so PYTHONPATH's edge runs)."""
    r = subprocess.run([sys.executable, "-m", "edge", *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"edge-inspect {' '.join(args)} failed ({r.returncode}):\n{r.stdout[-2000:]}"
                           f"\n{r.stderr[-3000:]}")
    return r.stdout


def expected_frr(cal: dict) -> tuple[float | None, float | None, float | None]:
    """(estimate, low, high) of the false-reject rate fit expected, from calibration.json, when it has one."""
    for key in ("expected_frr", "expected_false_reject_rate", "expected_false_reject"):
        v = cal.get(key)
        if isinstance(v, (int, float)):
            lo, hi = cal.get(key + "_interval") or cal.get("frr_interval") or (None, None)
            return float(v), lo, hi
        if isinstance(v, dict):
            est = v.get("estimate", v.get("value", v.get("rate")))
            iv = v.get("interval") or [v.get("low", v.get("lo")), v.get("high", v.get("hi"))]
            return (None if est is None else float(est), iv[0], iv[1])
    return None, None, None


def chosen_variant(insp: Path) -> str:
    """The model fit chose for the part (e.g. aligned or texture), when the inspector records a choice."""
    cal = json.loads((insp / "calibration.json").read_text())
    choice = cal.get("model_choice")
    if isinstance(choice, dict) and choice.get("mode"):
        return str(choice["mode"])
    padim = json.loads((insp / "manifest.json").read_text()).get("padim", {})
    return str(padim["mode"]) if "mode" in padim else ""


def run_product(cat: Path, n: int, work: Path) -> dict:
    good = work / "good"
    good.mkdir(parents=True)
    for p in sorted(load_category(cat).train_good)[:n]:
        os.symlink(p.resolve(), good / p.name)
    fit_out = _edge("fit", "--good", str(good), "--out", str(work / "inspector"))
    _edge("eval", str(cat), "--inspector", str(work / "inspector"), "--out", str(work / "eval"))
    m = json.loads((work / "eval" / "metrics.json").read_text())
    cal = json.loads((work / "inspector" / "calibration.json").read_text())
    c = m["confusion"]
    est, lo, hi = expected_frr(cal)
    return {"image_auroc": m["image_auroc"], "pixel_auroc": m["pixel_auroc"],
            "frr": c["fp"] / max(1, c["fp"] + c["tn"]), "recall": c["tp"] / max(1, c["tp"] + c["fn"]),
            "n_good": c["fp"] + c["tn"], "n_defect": c["tp"] + c["fn"],
            "expected_frr": est, "expected_lo": lo, "expected_hi": hi, "chosen": chosen_variant(work / "inspector"),
            "per_kind": tuple((k, v["detection_rate"]) for k, v in sorted(m["per_kind"].items()) if k != "good"),
            "fit_stdout": fit_out}


class Reference:
    """The torch PaDiM reference with the default bundle's backbone, input and channel subset."""

    def __init__(self, d: int = 100, seed: int = 0):
        from edge.bundle import load_bundle
        from edge.padim.embed import make_spec
        from edge.paths import default_backbone_dir

        from .backbones import module_for

        self.bundle = load_bundle(default_backbone_dir())
        inp = self.bundle.input
        self.spec = make_spec(self.bundle.taps, (inp.height, inp.width), d, seed)
        self.module = module_for(self.bundle.manifest["arch"])

    def run(self, cat: Path, n: int, batch: int = 8) -> dict:
        from edge.preprocess import batch_tensor

        from .torch_reference import TorchPadim

        c = load_category(cat)
        train = sorted(c.train_good)[:n]
        ref = TorchPadim(self.module, self.spec.channel_idx)
        ref.fit(batch_tensor([read_image(p) for p in train[i:i + batch]], self.bundle.input)
                for i in range(0, len(train), batch))
        scores, maps, masks = [], [], []
        for i in range(0, len(c.test), batch):
            items = c.test[i:i + batch]
            imgs = [read_image(t.path) for t in items]
            m, s = ref.score(batch_tensor(imgs, self.bundle.input))
            for t, img, mm, ss in zip(items, imgs, m, s):
                mm = cv2.resize(mm, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR)
                maps.append(mm.ravel())
                masks.append((read_mask(t.mask, img.shape[:2]) if t.mask else np.zeros(img.shape[:2], bool)).ravel())
                scores.append(float(ss))
        labels = [t.is_defect for t in c.test]
        return {"ref_image_auroc": auroc(scores, labels),
                "ref_pixel_auroc": auroc(np.concatenate(maps), np.concatenate(masks))}


def load_reference(path: Path, data: Path) -> dict[tuple[str, int], dict]:
    """Reference AUROCs from an earlier results .json on the same data (the reference does not change)."""
    saved = json.loads(path.read_text())
    here = json.loads((data / "dataset.json").read_text())
    if saved.get("data") != {k: here.get(k) for k in ("version", "group", "size", "seed")}:
        raise SystemExit(f"{path} was measured on other data ({saved.get('data')}); run the reference again")
    return {(r["category"], r["n"]): {"ref_image_auroc": r["ref_image_auroc"], "ref_pixel_auroc": r["ref_pixel_auroc"]}
            for r in saved["rows"]}


def evaluate(data: Path, names: list[str], kinds: dict[str, str], ns: list[int], reference: bool = True,
             saved_reference: dict[tuple[str, int], dict] | None = None) -> list[Row]:
    ref = Reference() if reference and saved_reference is None else None
    rows = []
    for name in names:
        for n in ns:
            with tempfile.TemporaryDirectory(prefix=f"acc-{name}-{n}-") as tmp:
                _log(f"{name}: product fit on {n} + eval")
                p = run_product(data / name, n, Path(tmp))
            p.pop("fit_stdout")
            r = {"ref_image_auroc": float("nan"), "ref_pixel_auroc": float("nan")}
            if saved_reference is not None:
                if (name, n) not in saved_reference:
                    raise SystemExit(f"the saved reference has no {name} at N={n}")
                r = saved_reference[(name, n)]
            elif ref is not None:
                _log(f"{name}: reference fit on {n} + score")
                r = ref.run(data / name, n)
            rows.append(Row(name, kinds[name], n, **p, **r))
            _log(f"{name} N={n}: image AUROC {p['image_auroc']:.3f} (reference {r['ref_image_auroc']:.3f}), "
                 f"good rejected {p['frr']:.1%}, defects caught {p['recall']:.1%}")
    return rows


def _git_head() -> str:
    r = subprocess.run(["git", "-C", str(HERE), "log", "-1", "--format=%h (%cs)"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(HERE), "status", "--porcelain", "--", "../edge"], capture_output=True,
                           text=True).stdout.strip()
    return (r.stdout.strip() or "unknown") + (" + uncommitted edge/ changes" if dirty else "")


def write_results(rows: list[Row], out: Path, title: str, command: str, data: Path, ref_note: str = "") -> str:
    text = "\n".join([
        f"# {title}", "",
        f"`{command}` — product at `{_git_head()}`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"data: benchmarks/realdata.py v{VERSION} ({data.name}). Product: `edge-inspect fit --good DIR` with "
        "no flags, then `edge-inspect eval`; good rejected / defects caught are at the product's own "
        "threshold. Reference: paper-faithful torch PaDiM, same Lite0 backbone at 256², d=100, seed 0"
        + (f" ({ref_note})" if ref_note else "") + ".", "",
        table(rows), "", "Targets of #9 (means over categories):", "",
        *([f"- {v}" for v in verdicts(rows)] or ["- (the targets are for N=20 and N=80)"]), "",
        "Defects caught per kind (product, at its threshold):", "",
        per_kind_table(rows), ""])
    out.write_text(text)
    desc = json.loads((data / "dataset.json").read_text())
    out.with_suffix(".json").write_text(json.dumps(
        {"command": command, "product": _git_head(), "data": {k: desc.get(k) for k in ("version", "group", "size", "seed")},
         "rows": [asdict(r) for r in rows]}, indent=1) + "\n")
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.accuracy", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--group", choices=["dev", "holdout"], default="holdout")
    ap.add_argument("--n", default="20,80", help="numbers of good images to fit on (default 20,80)")
    ap.add_argument("--data", type=Path, default=None,
                    help="the generated set (default ~/.cache/edge-inspect/realdata-GROUP; generated if missing)")
    ap.add_argument("--categories", default="", help="comma-separated subset of the group")
    ap.add_argument("--out", type=Path, default=HERE / "accuracy_results.md", help="markdown table (+ .json)")
    ap.add_argument("--title", default=None, help="the results page's heading")
    ap.add_argument("--no-reference", action="store_true", help="skip the torch reference (faster)")
    ap.add_argument("--reference-from", type=Path, default=None,
                    help="take the reference's AUROCs from an earlier results .json on the same data instead of "
                         "running it again (it is deterministic and does not depend on the product)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 2 dev categories, 12 train / 6 good / 8 defective images, N=10, into a temp dir")
    a = ap.parse_args(argv)
    command = "python -m benchmarks.accuracy " + shlex.join(argv if argv is not None else sys.argv[1:])
    specs = {c.name: c for c in GROUPS["dev" if a.quick else a.group]}
    names = ["coins", "brick"] if a.quick else [c for c in a.categories.split(",") if c] or list(specs)
    unknown = [n for n in names if n not in specs]
    if unknown:
        ap.error(f"not in group {a.group}: {', '.join(unknown)} (have {', '.join(specs)})")
    ns = [10] if a.quick else [int(v) for v in a.n.split(",")]
    counts = Counts(12, 6, 8) if a.quick else Counts()
    if max(ns) > counts.train:
        ap.error(f"--n {max(ns)} is more than the {counts.train} train images")
    tmp = tempfile.TemporaryDirectory(prefix="acc-quick-") if a.quick else None
    data = Path(tmp.name) if tmp else (a.data or Path.home() / ".cache" / "edge-inspect" / f"realdata-{a.group}")
    ensure_data(data, "dev" if a.quick else a.group, counts, names, names if a.quick else None)
    saved = load_reference(a.reference_from, data) if a.reference_from else None
    rows = evaluate(data, names, {n: specs[n].kind for n in names}, ns, not a.no_reference, saved)
    note = f"AUROCs from {a.reference_from.name}, same data" if saved else ""
    out = Path(tmp.name) / "accuracy_results.md" if tmp else a.out
    title = a.title or f"Accuracy on the real-photo {'dev (quick)' if a.quick else a.group} set"
    print(write_results(rows, out, title, command, data, note))
    print(f"written: {out} and {out.with_suffix('.json')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
