"""The cascade targets of issue #10, judged from one `eval --cascade` run's metrics.json.

    python -m benchmarks.cascade_targets demo-cascade-out/eval-cascade

Every number comes from that run, where the cascade and its last stage alone scored the same
images side by side (alternating which went first on each batch):

  detection  the cascade catches as many defects as the last stage alone, give or take one
  share      the last stage runs on at most 30% of the images
  time       the cascade costs at most 60% of the last stage's time per image
  mix        the run was on a mix of at least ~90% good parts (what the other targets assume)

On real photographs, end to end (train, eval --model, eval --cascade): benchmarks/cascade_realdata.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

MAX_SHARE = 0.30
MAX_RATIO = 0.60
MIN_GOOD_SHARE = 0.88  # "about 90% good"


def verdicts(m: dict) -> list[tuple[str, str, bool]]:
    """(target, what was measured, met) for each target."""
    caught, alone = m["confusion"]["tp"], m["alone"]["confusion"]["tp"]
    share = m["stages"][-1]["share_ran"]
    ratio = m["time_ms_per_image"]["ratio"]
    t = m["time_ms_per_image"]
    last = m["alone"]["stage"]
    return [
        ("mix of ~90% good parts", f"{m['n_good']}/{m['n_images']} good ({m['good_share']:.1%})",
         m["good_share"] >= MIN_GOOD_SHARE),
        (f"catches as many defects as {last} alone (±1)", f"cascade {caught}, {last} alone {alone} "
         f"of {m['n_defect']}", caught >= alone - 1),
        (f"{last} runs on ≤ {MAX_SHARE:.0%} of images", f"{share:.1%}", share <= MAX_SHARE),
        (f"costs ≤ {MAX_RATIO:.0%} of {last}'s time per image",
         f"{t['cascade']:.1f} ms vs {t['alone']:.1f} ms = {ratio:.1%}", ratio is not None and ratio <= MAX_RATIO),
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("eval_dir", help="the --out folder of `edge-inspect eval CATEGORY --cascade FILE`")
    args = ap.parse_args(argv)
    m = json.loads((Path(args.eval_dir) / "metrics.json").read_text())
    rows = verdicts(m)
    for target, measured, ok in rows:
        print(f"  [{'met' if ok else 'NOT met'}] {target}: {measured}")
    return 0 if all(ok for _, _, ok in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
