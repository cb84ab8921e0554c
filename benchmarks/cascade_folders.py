"""Issue #10's "Done when" on several unseen folders of one part, not one.

    python -m benchmarks.cascade_folders --segmenter W/segmenter --train-data W/train-data \\
        --work /tmp/folders --line-seeds 2,3,4,5,6

Between two unseen folders of the same part (270 good and 32 defective images each) one trained
model moved by 0.045 image AUROC and 0.085 Dice, about the distance from the targets; so one folder
cannot say whether a model meets them. This runs `benchmarks.cascade_realdata` with the same trained
bundle on every LINE seed (each folder gets its own gate, fitted on its own good images and picked
as that benchmark picks it, on the trainer's validation split), then prints each folder's
numbers, their mean and their worst, and on how many folders each target held. Nothing is
retrained and nothing is chosen from these folders. Results: ``cascade_folders.json`` in --work,
and ``--append`` adds the run to benchmarks/cascade_realdata_results.json.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
from pathlib import Path

from . import cascade_realdata

RESULTS = Path(__file__).with_name("cascade_realdata_results.json")


def folder_row(r: dict) -> dict:
    """One folder's figures from a cascade_realdata.json."""
    seg, casc = r["segmenter_alone"], r["cascade"]
    c = seg["confusion"]
    return {"line_seed": r["line_seed"], "image_auroc": seg["image_auroc"], "dice": seg["dice"],
            "caught_alone": c["tp"], "n_defect": c["tp"] + c["fn"], "good_rejected_alone": c["fp"],
            "n_good": c["fp"] + c["tn"], "cascade_caught": casc["confusion"]["tp"],
            "alone_caught_in_cascade_run": (r.get("alone_in_cascade_run") or {}).get("tp"),
            "share": casc["gate_pass_share"], "time_ratio": casc["time_ms_per_image"]["ratio"],
            "gate": r["gate"], "met": {v["target"]: v["met"] for v in r["verdicts"]}}


def summary(rows: list[dict]) -> dict:
    """Mean and worst of each figure over the folders, and on how many each target held."""
    def mean(k):
        return sum(r[k] for r in rows) / len(rows)

    targets = list(rows[0]["met"]) if rows else []
    return {"n_folders": len(rows),
            "mean": {k: mean(k) for k in ("image_auroc", "dice", "share", "time_ratio")},
            "worst": {"image_auroc": min(r["image_auroc"] for r in rows), "dice": min(r["dice"] for r in rows),
                      "share": max(r["share"] for r in rows), "time_ratio": max(r["time_ratio"] for r in rows)},
            "met_on": {t: sum(bool(r["met"].get(t)) for r in rows) for t in targets}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.cascade_folders", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--segmenter", type=Path, required=True, help="the trained bundle (segmenter or multitask)")
    ap.add_argument("--train-data", type=Path, required=True,
                    help="the folder it was trained from (cascade_realdata's W/train-data): the gate is picked on "
                         "its validation split")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--line-seeds", default="2,3,4,5,6")
    ap.add_argument("--label", default="", help="a name for the run in the results file")
    ap.add_argument("--append", action="store_true", help=f"add the run to {RESULTS.name}")
    a, rest = ap.parse_known_args(argv)  # the rest goes to cascade_realdata (e.g. --gate-rule keep)
    seeds = [int(s) for s in a.line_seeds.split(",") if s.strip()]
    rows = []
    for s in seeds:
        w = a.work / f"line-seed-{s}"
        w.mkdir(parents=True, exist_ok=True)
        if not (w / "train-data").exists():
            os.symlink(a.train_data.resolve(), w / "train-data")
        first_bb = a.work / f"line-seed-{seeds[0]}" / "gate-backbone"
        if s != seeds[0] and first_bb.is_dir() and not (w / "gate-backbone").exists():
            os.symlink(first_bb.resolve(), w / "gate-backbone")  # the same pretrained gate backbone
        print(f"== LINE seed {s}", flush=True)
        cascade_realdata.main(["--work", str(w), "--segmenter", str(a.segmenter.resolve()),
                               "--line-seed", str(s), *rest])
        rows.append(folder_row(json.loads((w / "cascade_realdata.json").read_text())))
    sm = summary(rows)
    print(f"\n{a.segmenter} on {len(rows)} unseen folders (LINE seeds {a.line_seeds}):")
    print("| LINE seed | image AUROC | Dice | caught alone | good rejected alone | cascade caught | share | time |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['line_seed']} | {r['image_auroc']:.3f} | {r['dice']:.3f} | {r['caught_alone']}/{r['n_defect']} | "
              f"{r['good_rejected_alone']}/{r['n_good']} | {r['cascade_caught']} vs {r['alone_caught_in_cascade_run']}"
              f" | {r['share']:.1%} | {r['time_ratio']:.1%} |")
    m, wst = sm["mean"], sm["worst"]
    print(f"| mean | {m['image_auroc']:.3f} | {m['dice']:.3f} | | | | {m['share']:.1%} | {m['time_ratio']:.1%} |")
    print(f"| worst | {wst['image_auroc']:.3f} | {wst['dice']:.3f} | | | | {wst['share']:.1%} | "
          f"{wst['time_ratio']:.1%} |")
    print(f"segmenter targets by the mean: image AUROC {m['image_auroc']:.3f} "
          f"({'met' if m['image_auroc'] >= cascade_realdata.MIN_AUROC else 'NOT met'}), Dice {m['dice']:.3f} "
          f"({'met' if m['dice'] >= cascade_realdata.MIN_DICE else 'NOT met'})")
    for t, k in sm["met_on"].items():
        print(f"  {t}: met on {k} of {len(rows)} folders")
    out = {"command": "python -m benchmarks.cascade_folders " + " ".join(argv if argv is not None else sys.argv[1:]),
           "when": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="minutes"), "label": a.label,
           "segmenter": str(a.segmenter), "folders": rows, "summary": sm}
    (a.work / "cascade_folders.json").write_text(json.dumps(out, indent=2))
    if a.append:
        res = json.loads(RESULTS.read_text())
        res.setdefault("folder_runs", []).append(out)
        RESULTS.write_text(json.dumps(res, indent=2) + "\n")
    print(f"results: {a.work / 'cascade_folders.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
