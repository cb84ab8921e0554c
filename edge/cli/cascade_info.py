"""`edge-inspect info CASCADE.toml`: what a cascade file runs, read without opening a runtime.

For each stage: what it is (PaDiM inspector or supervised bundle, its id, input and thresholds),
when it runs (every image, or from a gate on the previous stage's score) and which backbone it
runs on; stages on the same bundle fed the same input share one backbone pass per image when
they also open on the same runtime and model variant (`score`/`eval`/`run` decide that, and the
start-up log says so). Every stage's file hashes are checked as they open.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..cascade.stage import Cascade, open_cascade, same_backbone_input
from ..stage import ModelStage


def _what(st: ModelStage) -> str:
    d = st.describe()
    if st.kind == "padim":
        t = d["threshold"]
        inp = d["input"] or ["?", "?"]
        return (f"PaDiM inspector {d['id']} ({d['mode']} mode, d={d['d']}, {d['n_images']} good images, "
                f"input {inp[0]}x{inp[1]}); NG from image score {t['image']:.3f} ({t['method']})")
    t = d["threshold"]
    rule = st.rule_text()
    src = "defaults, no calibration block" if t["method"] == "default" else t["method"]
    return (f"{st.kind} {d['name']} {d['id']} (input {d['input'][0]}x{d['input'][1]}"
            + (f", classes {', '.join(d['defect_classes'])}" if d["defect_classes"] else "")
            + f"); {rule} ({src})")


def _when(c: Cascade, k: int) -> str:
    s = c.spec.stage[k]
    if k == 0:
        return "runs on every image"
    if s.runs_when == "always":
        return "runs on every image"
    prev = c.spec.stage[k - 1].name
    return f"runs when {prev}'s score >= {s.gate_value:g} (1.0 = {prev}'s threshold)"


def _backbone(c: Cascade, k: int) -> str:
    st = c.stages[k]
    name = f"{st.bundle.name} {st.bundle.id}"
    for j in range(k):
        if same_backbone_input(c.stages[j], st):
            return (f"shares {c.spec.stage[j].name}'s backbone pass ({name}, same input) when both open on the "
                    "same runtime and model variant")
    return f"its own pass ({name})" if st.kind != "padim" else f"backbone {name}"


def describe_cascade(c: Cascade) -> list[str]:
    """The lines `info` prints for a cascade."""
    decides = ("the last stage that ran decides (the gate passes clean parts, later stages judge the rest)"
               if c.spec.vote is None else
               f"every stage runs and votes: NG when {'any' if c.spec.vote == 'any' else 'all'} of them say NG")
    lines = [f"cascade {c.id}  ({len(c.stages)} stages, from {c.source})", f"  decision: {decides}"]
    for k, (s, st) in enumerate(zip(c.spec.stage, c.stages)):
        lines.append(f"  stage {k + 1} {s.name!r}: {_what(st)}")
        lines.append(f"      path {s.path}")
        lines.append(f"      {_when(c, k)}; {_backbone(c, k)}")
    n_pass = sum(not any(same_backbone_input(c.stages[j], c.stages[k]) for j in range(k))
                 for k in range(len(c.stages)))
    lines.append(f"  backbone passes per image that reaches every stage: {n_pass} (of {len(c.stages)} stages)")
    return lines


def echo_cascade_info(path: str | Path) -> None:
    c = open_cascade(path, open_runtime=False, source=str(path))
    for line in describe_cascade(c):
        click.echo(line)
    for w in c.warnings:
        click.echo(f"  note: {w}")
