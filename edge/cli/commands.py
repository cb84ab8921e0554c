"""fit, score, eval, calibrate, info, demo-data."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..capture import DEFAULT_TOLERANCE as DEFAULT_CAPTURE_TOLERANCE
from ..capture import parse_tolerance
from ..config.cascade_spec import SHARE_BUDGET
from ..paths import default_backbone_dir
from . import cli, progress_bar

BACKEND_HELP = ("Inference runtime. auto: onnxruntime with TensorRT/CUDA on a Jetson, OpenVINO on an x86 CPU when "
                "installed, else onnxruntime CPU (a runtime that fails to open falls through to the next; the log "
                "says which runs and why). Or onnxruntime (cpu | cuda | tensorrt), openvino (CPU | GPU | NPU | AUTO).")


INFERENCE_HELP = ("Arithmetic inside the runtime. fit, auto: measure the runtime's reduced precision (bf16 on "
                  "Intel CPUs that have it, fp16 on TensorRT/GPUs) against fp32 on the held-out good images and "
                  "use it only if scores rank alike (≥0.98), every decision agrees and no score moves over 2% of "
                  "the threshold; otherwise fp32, and it says so. Naming bf16/fp16 refuses it if it fails. "
                  "fit --update measures it again on the new images (the statistics change), as fit was "
                  "asked. Afterwards, auto runs what fit approved for this runtime; fp32 forces fp32.")


def backend_options(f):
    f = click.option("--inference-precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="auto",
                     show_default=True, help=INFERENCE_HELP)(f)
    f = click.option("--precision", type=click.Choice(["fp32", "fp16", "int8"]), default=None,
                     help="Which model variant of the bundle runs (see `edge-inspect info`). Default: for fit, the "
                          "most precise; afterwards, the one the inspector was fitted with.")(f)
    f = click.option("--threads", type=int, default=None, help="CPU threads for the runtime (default: all cores).")(f)
    f = click.option("--device", default=None, help="Device for the runtime, e.g. cpu, cuda, tensorrt, CPU, GPU.")(f)
    f = click.option("--backend", type=click.Choice(["auto", "onnxruntime", "openvino"]), default="auto",
                     show_default=True, help=BACKEND_HELP)(f)
    return f


FACTOR_HELP = ("How scoring holds the Mahalanobis factors in memory. auto: fp16 where the CPU converts it natively "
               "(x86 with F16C, ARM64), else fp32. fp16 reads half the bytes (scores differ by ~1e-4 relative); "
               "fp32 is exact. Needs the native kernel (see `edge-inspect info`).")


def factor_option(f):
    return click.option("--factor-precision", type=click.Choice(["auto", "fp16", "fp32"]), default="auto",
                        show_default=True, help=FACTOR_HELP)(f)


ROI_HELP = ("Region of interest: a mask image, white = inspect, black = ignore (any size; scaled to each photo). "
            "Outside it nothing is scored or masked.")


FITTED_TILING = ("With an inspector that is already fitted (score, eval --inspector), the tile options can "
                 "only confirm the tiling it was fitted with (its statistics are laid out on it): one that "
                 "differs is refused, saying what differs, so one script can pass the same options to fit, "
                 "score and eval.")


STATS_CELL_HELP = ("Per-position statistics shared by K×K neighbouring grid cells (default 1: a Gaussian for "
                   "every cell): the statistics' memory ÷ K², a Gaussian per K·4 model-input pixels. For positioned "
                   "parts in large photos whose per-tile statistics would not fit (fit's memory check names the K "
                   "that fits). K must divide the model's feature grid (64x64 for a 256 input: 2, 4, 8, 16).")


def tile_flags(f):
    f = click.option("--stats-cell", "stats_cell", type=int, default=None, metavar="K", help=STATS_CELL_HELP)(f)
    f = click.option("--tile-mode", type=click.Choice(["per-tile", "shared"]), default=None,
                     help="per-tile (default): a Gaussian for every position of the whole photo (positioned "
                          "parts). shared: tiles share one set of statistics (textures, strip; less memory).")(f)
    f = click.option("--tile-overlap", type=int, default=None, metavar="PX",
                     help="With --tile: pixels shared by neighbouring windows (default 0); their maps are "
                          "blended, so a defect on a seam is found once, where it is. 32-64 is typical.")(f)
    f = click.option("--tile", "tile", metavar="PX|HxW", default=None,
                     help="Cut large photos at their own resolution into windows of this many pixels (e.g. 512 "
                          "or 480x640), each resized to the model's input; maps are stitched at full "
                          "resolution. Windows are laid out on the first good photo's size.")(f)
    f = click.option("--tiles", metavar="ROWSxCOLS", default=None,
                     help="Cut large photos into tiles at the model's input size, e.g. 2x2 or 1x6 for strip, "
                          "so small defects keep their detail. " + FITTED_TILING)(f)
    return f


def tile_options(f):
    f = click.option("--roi", type=click.Path(exists=True, dir_okay=False), default=None,
                     help=ROI_HELP + " fit keeps it in the inspector, so score and the line runtime use it; "
                                     "eval --inspector applies it instead of the inspector's.")(f)
    return tile_flags(f)


def _confirm_tiling(stage, where: str, tiles, tile, overlap, mode, cell=None) -> None:
    """score / eval --inspector: tile options given must match the fitted inspector's tiling."""
    if (tiles, tile, overlap, mode, cell) == (None, None, None, None, None):
        return
    from ..errors import ConfigError

    if not hasattr(stage, "tiling"):
        raise click.UsageError(f"the tile options apply to PaDiM inspectors; {where} is a {stage.kind} model")
    diff = stage.tiling.differences(tiles, tile, overlap, mode, cell)
    if diff:
        raise ConfigError(f"{where} was fitted with {stage.tiling.describe()}, and scoring uses that: "
                          + "; ".join(diff),
                          hint="leave the tile options out when scoring, or refit with the ones you want "
                               "(edge-inspect fit --tile ... --tile-overlap ...)")


def _load_inspector(path, backend, device, precision, threads, factor_precision="auto", inference_precision="auto"):
    from ..inspector import Inspector

    insp = Inspector.load(path, backend, device, precision, threads, factor_precision=factor_precision,
                          inference_precision=inference_precision)
    _say_runtime(insp.backend)
    for w in insp.warnings:
        click.echo(f"warning: {w}", err=True)
    return insp


REGISTER_HELP = ("auto: for the aligned model (untiled), turn and shift every image onto a reference view of the "
                 "part (made from the first good images, kept as registration.png in the inspector) before "
                 "its per-position statistics see it, so a part that sits a few pixels off or a degree or two "
                 "turned is compared cell by cell with itself; masks stay in the photo's frame. Views that "
                 "would need more than a small correction are used as they are; when fit finds a small correction "
                 "for under a quarter of the good images it tries (a surface: nothing to align), the inspector "
                 "does not register and fit says so. off: no registration, as in "
                 "the PaDiM paper (a part held exactly in place by a fixture).")


CAPTURE_HELP = ("The capture check: fit records the range of the good images' brightness (mean grey level) and "
                "contrast (spread of the grey levels), and scoring gives an image darker or brighter than that "
                "range, or flatter, by more than this share an ERROR record saying why (the model never judges "
                "it; the reject output fires, as for any ERROR). It catches a failed lamp, a covered or fogged "
                "lens or the exposure turned far down or up, which the texture model's centring cannot see (a "
                "surface 4x darker scored OK). More contrast than the good images is left to the model (a bold "
                "defect on a plain part). 0.25: a quarter darker than the darkest good image or brighter than the "
                "brightest. Parts that really look different now: add them with --update (it widens the range). "
                "off: no check.")


def capture_option(help_text: str):
    """--capture-tolerance, as fit and eval (when it fits) take it; parse_tolerance reads it."""
    return click.option("--capture-tolerance", default=str(DEFAULT_CAPTURE_TOLERANCE), show_default=True,
                        metavar="SHARE|off", help=help_text)


CENTRE_HELP = ("Centre each image's features on their own mean (each channel minus its mean over the image) "
               "before the statistics. image: a surface photographed a little brighter, darker, denser or "
               "coarser than the training images still scores as good, and a local defect is measured against "
               "the image's own texture; a change that covers the whole image alike is not seen (on a real "
               "surface, crops 4x darker scored OK; the capture check, --capture-tolerance, refuses them). none: "
               "absolute features. auto: image for texture, none for aligned (where a part is brighter than "
               "usual is itself a defect).")


def _auto(value: str, kind=str):
    """A per-model option (--aggregate, --centre): None for "auto" (each model's own default), else its value."""
    return None if value == "auto" else kind(value)


def _roi(path):
    from ..roi import Roi

    return Roi.load(path) if path else None


def _apply_roi(stage, path, where) -> None:
    """--roi on an opened inspector: replaces the one it was fitted with."""
    if path:
        if not hasattr(stage, "roi"):
            raise click.UsageError(f"--roi applies to PaDiM inspectors; {where} is a {stage.kind} model")
        stage.roi = _roi(path)


def _say_runtime(be) -> None:
    if be is not None:
        click.echo(f"runtime: {be.describe()}, {be.variant} ({getattr(be, 'reason', '')})", err=True)


CASCADE_HELP = ("Cascade TOML to run instead of --inspector: [[stage]] tables with name, inspector = DIR or "
                "model = BUNDLE, and for later stages when = \"suspicious\" and gate = 0.7 (run only when the "
                "previous stage's score >= 0.7; 1.0 = its threshold). The last stage that ran decides; "
                "vote = \"any\" | \"all\" instead makes every stage run and vote. Paths resolve against the "
                "file's folder.")


def cascade_option(f):
    return click.option("--cascade", "cascade_file", type=click.Path(exists=True, dir_okay=False), default=None,
                        help=CASCADE_HELP)(f)


def _load_stage(path, backend, device, precision, threads, factor_precision="auto", cascade=None,
                inference_precision="auto"):
    """Whatever decides on images at PATH (edge/stage.py): an inspector, or a supervised bundle; or the
    cascade in the TOML file ``cascade``."""
    from ..stage import open_stage

    if cascade is not None:
        from ..cascade import open_cascade

        stage = open_cascade(cascade, backend, device, precision, threads, factor_precision)
    else:
        stage = open_stage(path, backend, device, precision, threads, factor_precision=factor_precision,
                           inference_precision=inference_precision)
    for st in getattr(stage, "stages", [stage]):
        _say_runtime(getattr(st, "backend", None))
    for w in stage.warnings:
        click.echo(f"warning: {w}", err=True)
    return stage


@cli.command("fit")
@click.option("--good", "good", multiple=True, required=True, type=click.Path(exists=True),
              help="Folder (or file) of GOOD images. Repeat to add more folders.")
@click.option("--backbone", type=click.Path(), default=None,
              help="Backbone bundle from `edge-export backbone` [default: $EDGE_INSPECT_BACKBONE or "
                   "~/.local/share/edge-inspect/backbones/efficientnet-lite0].")
@click.option("--out", default="inspector", show_default=True, type=click.Path(),
              help="Inspector directory to write (replaced atomically).")
@click.option("--update", is_flag=True,
              help="Add the --good images to the existing inspector at --out, without the old images.")
@click.option("-d", "--dim", "d", type=int, default=None,
              help="Embedding size d: a seeded random subset of the backbone's channels. Larger is more "
                   "sensitive but slower and needs more good images. Default: 100 for aligned (memory and "
                   "time grow with d²), every channel for texture (one d×d covariance).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for the channel subset and the synthetic defects.")
@click.option("--eps", type=float, default=0.01, show_default=True, help="Regularisation eps·I added to each "
              "covariance (PaDiM paper: 0.01).")
@click.option("--shrinkage", type=click.Choice(["none", "auto", "ledoit-wolf"]), default="none", show_default=True,
              help="Ledoit-Wolf shrinkage of the covariances ('auto': when there are no more images than d). "
                   "Off by default: eps·I alone separated defects better on real photographs.")
@click.option("--mode", type=click.Choice(["auto", "aligned", "texture"]), default="auto", show_default=True,
              help="aligned: a Gaussian for every position (parts that sit in the same place in every photo). "
                   "texture: one Gaussian for all positions (textures, surfaces that shift or rotate). auto: fit "
                   "both, plant synthetic defects into held-out good images, keep the one that finds them better "
                   "(the choice and why are printed and stored in the inspector).")
@click.option("--aggregate", type=click.Choice(["auto", "1", "3", "5"]), default="auto", show_default=True,
              help="Average each feature over k×k neighbours before embedding, so a position describes a patch "
                   "(1 = off, as in the PaDiM paper). auto: 1 for aligned (averaging blurs the small defects "
                   "per-position statistics find), 3 for texture.")
@click.option("--centre", type=click.Choice(["auto", "image", "none"]), default="auto", show_default=True,
              help=CENTRE_HELP)
@click.option("--target-frr", type=float, default=0.01, show_default=True,
              help="False-reject rate the threshold aims for: the share of GOOD parts that will be called NG. "
                   "Lower it for fewer false rejects, at the cost of missing faint defects.")
@click.option("--register", type=click.Choice(["auto", "off"]), default="auto", show_default=True,
              help=REGISTER_HELP)
@capture_option(CAPTURE_HELP)
@click.option("--blur-sigma", type=float, default=4.0, show_default=True, help="Gaussian blur of the anomaly map.")
@tile_options
@click.option("--batch-size", type=int, default=8, show_default=True)
@backend_options
def fit_cmd(good, backbone, out, update, d, seed, eps, shrinkage, mode, aggregate, centre, target_frr, register,
            capture_tolerance, blur_sigma, roi, tiles, tile, tile_overlap, tile_mode, stats_cell, batch_size, backend, device, threads,
            precision, inference_precision):
    """Fit PaDiM statistics from good images, and set the threshold from good images alone.

    \b
    Reads every image twice: once into the statistics, once more to score each
    image with statistics that never saw it (leave-one-out), as a new good part
    will be scored on the line. The threshold is the score a new good part
    exceeds with probability --target-frr, estimated from those held-out
    scores (a log-normal fit); fit prints the false-reject rate to expect,
    with a 90% interval: with few images it is above the target (at 20
    images and 1%, about 1.7%, anywhere in 0.1-5.5%) and fit warns.
    Memory stays the same for 50 or 50,000 images. Writes a self-contained
    inspector directory you can copy to other devices.
    """
    from ..fitting import FitOptions, fit_inspector, fit_work, update_inspector
    from ..imageio import list_images
    from ..padim.tiling import Tiling

    paths = list_images(list(good))
    if not paths:
        raise click.UsageError(f"no images found in {', '.join(good)}")
    opts = FitOptions(d=d, seed=seed, eps=eps, shrinkage=shrinkage, mode=mode, aggregate=_auto(aggregate, int),
                      centre=_auto(centre), target_frr=target_frr, blur_sigma=blur_sigma,
                      batch_size=batch_size, register=register, capture_tolerance=parse_tolerance(capture_tolerance),
                      tiling=Tiling.from_options(tiles, tile, tile_overlap, tile_mode, stats_cell), roi=_roi(roi))
    total = len(paths) if update else fit_work(len(paths), opts)
    with progress_bar(total, "fitting" if not update else "updating") as bar:
        if update:
            rep = update_inspector(out, paths, backend, device, threads, progress=bar, precision=precision,
                                   inference_precision=None if inference_precision == "auto" else inference_precision)
        else:
            rep = fit_inspector(paths, out, backbone or default_backbone_dir(), opts, backend, device, threads,
                                progress=bar, precision=precision, inference_precision=inference_precision)
    _print_fit(rep, out, update, len(paths))


def _print_fit(rep, out, update: bool, n_read: int) -> None:
    cal = rep.calibration
    gs = cal.details.get("good_scores", {})
    click.echo(f"inspector written to {rep.out}")
    click.echo(f"  runtime: {rep.runtime}")
    if rep.inference:
        click.echo(f"  inference precision: {rep.inference}")
    if update:
        from ..inspector import Inspector

        n = Inspector.load(out, open_runtime=False, verify=False).describe()["n_images"]
        click.echo(f"  added {rep.n_fit} good images; statistics now from {n} images")
    else:
        click.echo(f"  fitted on {rep.n_fit} good images; {rep.n_crossfit} of them scored by statistics that never "
                   f"saw them; covariance shrinkage: {rep.shrinkage}")
    if rep.choice is not None:
        click.echo(f"  model: {rep.choice.mode} — {rep.choice.reason}")
    if rep.features:
        click.echo(f"  features: {rep.features}")
    if rep.capture:
        click.echo(f"  capture check: {rep.capture}")
    if rep.registered:
        click.echo("  registration: each image is turned and shifted onto the reference view of the part "
                   f"({Path(rep.out) / 'registration.png'}) before scoring; masks stay in the photo's frame")
    elif rep.registration_note:
        click.echo(f"  registration: {rep.registration_note}")
    click.echo(f"  image threshold {cal.image_threshold:.3f} (raw Mahalanobis), method {cal.method}; "
               f"held-out good scores {gs.get('min', 0):.3f}..{gs.get('max', 0):.3f}")
    e = rep.expected_frr
    if e is not None:
        click.echo(f"  expected false-reject rate {e.value:.1%} (90% interval {e.low:.1%}..{e.high:.1%}; target "
                   f"{e.target:.1%}; {e.observed:.1%} of the {e.n} held-out good images are at or above it)")
        if e.too_few_images:
            click.echo(f"warning: {e.n} good images are too few for a {e.target:.1%} false-reject target: the rate "
                       f"could be as high as {e.high:.1%}. Fit with more good images (80+ narrows it), or set the "
                       "threshold from labelled images with `edge-inspect calibrate`.", err=True)
    elif cal.method not in ("good-crossfit", "good-holdout"):
        click.echo(f"  the labelled threshold ({cal.method}) was kept; only the statistics changed")
    rate = n_read / rep.seconds if rep.seconds > 0 else 0.0
    click.echo(f"  {n_read} images read in {rep.seconds:.1f} s ({rate:.1f} images/s), peak memory "
               f"{rep.peak_rss_mb:.0f} MB")
    for e in rep.errors:
        click.echo(f"  skipped unreadable image: {e}", err=True)


MODEL_HELP = ("Classifier, segmenter or multitask bundle (from `edge-export` or `edge-export train`) to run instead "
              "of a PaDiM inspector. Its thresholds come from the bundle's calibration (see `edge-inspect info`).")


def model_option(f):
    return click.option("--model", "model_dir", default=None, type=click.Path(), help=MODEL_HELP)(f)


def _stage_path(inspector_dir, model_dir, default="inspector"):
    """--inspector DIR or --model BUNDLE (one of them): what the command runs."""
    if inspector_dir and model_dir:
        raise click.UsageError("give --inspector (a PaDiM inspector) or --model (a supervised bundle), not both")
    return model_dir or inspector_dir or default


@cli.command("score")
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--inspector", "inspector_dir", default=None, type=click.Path(),
              help="Inspector directory from `edge-inspect fit`.  [default: inspector]")
@model_option
@click.option("--out", default="results", show_default=True, type=click.Path(), help="Output folder.")
@click.option("--save-maps", is_flag=True, help="Also write each anomaly map as float32 .npy (input size).")
@click.option("--overlays", type=click.Choice(["ng", "all", "none"]), default="ng", show_default=True,
              help="Which images get a heat-map overlay (JPEG, overlays/NAME_overlay.jpg). Images over a megapixel are drawn at "
                   "1/2, 1/3, ... of their size (at most 1024x1024 px worth; a 3872x3200 photo: 968x800); masks stay "
                   "full size.")
@click.option("--strict", is_flag=True, help="Exit 1 if any image is NG or ERROR (for scripts and PLC hand-off).")
@click.option("--roi", type=click.Path(exists=True, dir_okay=False), default=None,
              help=ROI_HELP + " Replaces the ROI the inspector was fitted with, if any.")
@tile_flags
@click.option("--batch-size", type=int, default=8, show_default=True,
              help="Model rows per batch: images, or tiles of tiled images (a photo in 56 windows is "
                   "batched alone, so the next one is decoded while it runs).")
@cascade_option
@backend_options
@factor_option
def score_cmd(inputs, inspector_dir, model_dir, out, save_maps, overlays, strict, roi, tiles, tile, tile_overlap,
              tile_mode, stats_cell, batch_size, cascade_file, backend, device, threads, precision, inference_precision,
              factor_precision):
    """Score images and folders (any mix) with a PaDiM inspector (--inspector), a
    classifier, segmenter or multitask bundle (--model), or a cascade of them
    (--cascade), and write decisions.

    \b
    Writes to OUT:
      results.jsonl   one JSON record per image: image, decision (OK/NG/ERROR),
                      score (1.0 = threshold), raw_score, mask, [anomaly_map], timings;
                      supervised models add label, classes (per-class probability),
                      areas (per defect class, pixels) and class_masks (PNG per class)
      results.csv     ImageId, answer (0 good / 1 defect), decision, score, raw_score
      rle.csv         segmenters: ImageId, ClassId, EncodedPixels (run-length,
                      column-major, 1-indexed start/length pairs; ClassId 1.. per defect class)
      ng_list.txt     one NG image path per line
      masks/          0/255 PNG per image, the input's size (and one per defect class)
      overlays/       heat map + mask outline per NG image (at most a megapixel)
      maps/           float32 .npy anomaly maps (with --save-maps)
    \b
    raw_score: PaDiM the Mahalanobis distance; a classifier P(NG); a segmenter the
    largest defect area (pixels at the model's input size) against its minimum area.
    An unreadable image gets an ERROR record and the run goes on.
    \b
    With --cascade FILE, each record also has "stages": one entry per stage with
    name and ran (true/false), and for stages that ran decision, score, timings.
    """
    from ..imageio import list_images
    from ..scoring import score_paths

    if cascade_file and (inspector_dir or model_dir):
        raise click.UsageError("give --cascade, or --inspector / --model, not both")
    stage_dir = None if cascade_file else _stage_path(inspector_dir, model_dir)
    paths = list_images(list(inputs))
    if not paths:
        raise click.UsageError(f"no images found in {', '.join(inputs)}")
    insp = _load_stage(stage_dir, backend, device, precision, threads, factor_precision, cascade_file,
                       inference_precision=inference_precision)
    _confirm_tiling(insp, stage_dir or cascade_file, tiles, tile, tile_overlap, tile_mode, stats_cell)
    _apply_roi(insp, roi, stage_dir or cascade_file)
    existing = Path(out) / "results.jsonl"
    if existing.is_file() and existing.stat().st_size:
        n = sum(1 for _ in open(existing))
        click.echo(f"note: appending to {existing} ({n} records from earlier runs); use another --out for a "
                   "separate run", err=True)
    with progress_bar(len(paths), "scoring") as bar:
        summary = score_paths(insp, paths, out, save_maps, overlays, batch_size, progress=bar, keep_records=False)
    c = summary.counts
    click.echo(f"{summary.total} images: {c['OK']} OK, {c['NG']} NG, {c['ERROR']} ERROR  →  {Path(out) / 'results.jsonl'}")
    if c["NG"]:
        click.echo(f"NG list: {Path(out) / 'ng_list.txt'}; overlays in {Path(out) / 'overlays'}")
    if summary.first_error:
        more = f" (and {c['ERROR'] - 1} more: each record says why)" if c["ERROR"] > 1 else ""
        click.echo(f"first ERROR{more}: {summary.first_error}", err=True)
    if strict and (c["NG"] or c["ERROR"]):
        raise SystemExit(1)


@cli.command("eval")
@click.argument("category", type=click.Path(exists=True, file_okay=False))
@click.option("--inspector", "inspector_dir", default=None, type=click.Path(),
              help="Inspector to evaluate. Without it (and without --model), one is fitted on CATEGORY/train/good "
                   "into OUT/inspector.")
@model_option
@click.option("--backbone", type=click.Path(), default=None, help="Backbone bundle when fitting (see `fit`).")
@click.option("--out", default="eval", show_default=True, type=click.Path())
@click.option("-d", "--dim", "d", type=int, default=None, help="Embedding size when fitting (see `fit --help`).")
@click.option("--mode", type=click.Choice(["auto", "aligned", "texture"]), default="auto", show_default=True,
              help="Model when fitting (see `fit --help`).")
@click.option("--target-frr", type=float, default=0.01, show_default=True,
              help="False-reject rate the threshold aims for when fitting (see `fit --help`).")
@click.option("--aggregate", type=click.Choice(["auto", "1", "3", "5"]), default="auto", show_default=True,
              help="k×k feature average when fitting (see `fit --help`).")
@click.option("--centre", type=click.Choice(["auto", "image", "none"]), default="auto", show_default=True,
              help="Centre each image's features on their own mean when fitting (see `fit --help`).")
@click.option("--register", type=click.Choice(["auto", "off"]), default="auto", show_default=True,
              help="Registration when fitting (see `fit --help`).")
@capture_option("The capture check when fitting (see `fit --help`).")
@tile_options
@click.option("--batch-size", type=int, default=8, show_default=True)
@cascade_option
@click.option("--good-share", type=float, default=None,
              help="With --cascade: leave defective (or good) test images out at random so that this share is "
                   "good, e.g. 0.9, as on a line where most parts are good. Default: the test set as it is.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for --good-share.")
@click.option("--share-budget", type=float, default=SHARE_BUDGET, show_default=True,
              help="With --cascade: the share of a line's parts the second stage may see. eval suggests the "
                   "lowest gate that keeps to it even at the top of the estimate's 90% range (good parts from "
                   "the gate's held-out scores from fit, defects from this set; a line --good-share good, 0.9 "
                   "by default).")
@backend_options
@factor_option
def eval_cmd(category, inspector_dir, model_dir, backbone, out, d, mode, target_frr, aggregate, centre, register,
             capture_tolerance, roi, tiles, tile, tile_overlap, tile_mode, stats_cell, batch_size, cascade_file,
             good_share, seed, share_budget, backend, device, threads, precision, inference_precision,
             factor_precision):
    """Measure an inspector (or, with --model, a classifier, segmenter or
    multitask bundle, or with --cascade a cascade) on an MVTec-layout folder
    with ground truth.

    \b
    CATEGORY/train/good/*.png, CATEGORY/test/<kind>/*.png,
    CATEGORY/ground_truth/<kind>/<name>_mask.png
    \b
    Writes OUT/report.html (one self-contained page to read: curves, score
    histograms with the threshold, confusion matrix, per-kind table, the worst
    cases with heat maps; open it from any browser, no network needed),
    OUT/metrics.json (image_auroc, image_ap, pixel_auroc, pixel_ap, pro, f1,
    macro_f1, confusion, per-kind rates), OUT/roc.png, OUT/scores.png and the
    per-image decisions under OUT/test-results. The report and plots need
    matplotlib (pip install 'edge-inspect[report]'); without it the rest is
    written and `edge-inspect report OUT` draws them later, on any machine.
    \b
    image AUROC: how well the image score separates good from defective parts
                 (1.0 perfect, 0.5 chance), whatever the threshold.
    pixel AUROC: the same for pixels inside vs outside the ground-truth masks.
    PRO: average overlap with each defect region, up to 30% false-positive rate.
    at the inspector's threshold: the share of good test parts rejected and of
                 defective ones caught, next to the false-reject rate fit expected.
    \b
    With --model: image AUROC ranks by P(NG) (classifier, multitask) or by the
    mask area (segmenter); models with masks add dice (mean over defective
    images), iou and per_class Dice and IoU, and test-results/rle.csv.
    \b
    With --cascade FILE: the cascade's metrics (and Dice where the deciding
    stage gives masks), each stage's metrics on the images it ran on, the share
    of images each gate let through, the last stage alone on the same images,
    and the time per image of both, measured side by side. Use --good-share 0.9
    when the test set is not mostly good parts.
    """
    from ..dataset import load_category
    from ..evaluate import evaluate
    from ..fitting import FitOptions, fit_inspector, fit_work
    from ..padim.tiling import Tiling

    out = Path(out)
    if cascade_file is not None:
        if inspector_dir is not None or model_dir is not None:
            raise click.UsageError("give --cascade, or --inspector / --model, not both")
        if roi or (tiles, tile, tile_overlap, tile_mode, stats_cell) != (None, None, None, None, None):
            raise click.UsageError("--roi and the tile options apply to one PaDiM inspector; a cascade's stages "
                                   "use what each was fitted with")
        if not 0 < share_budget <= 1:
            raise click.UsageError(f"--share-budget {share_budget}: give a share between 0 and 1, e.g. 0.3")
        return _eval_cascade(category, cascade_file, out, good_share, seed, batch_size, backend, device, threads,
                             precision, factor_precision, share_budget)
    if good_share is not None:
        raise click.UsageError("--good-share mixes the test set for --cascade")
    _stage_path(inspector_dir, model_dir)  # refuses both
    fitted_here = model_dir is None and inspector_dir is None
    if fitted_here:
        cat = load_category(category)
        inspector_dir = out / "inspector"
        tiling = Tiling.from_options(tiles, tile, tile_overlap, tile_mode, stats_cell)
        opts = FitOptions(d=d, batch_size=batch_size, tiling=tiling, roi=_roi(roi), mode=mode, target_frr=target_frr,
                          aggregate=_auto(aggregate, int), centre=_auto(centre), register=register,
                          capture_tolerance=parse_tolerance(capture_tolerance))
        with progress_bar(fit_work(len(cat.train_good), opts), "fitting") as bar:
            fit_inspector(cat.train_good, inspector_dir, backbone or default_backbone_dir(), opts, backend, device,
                          threads, progress=bar, precision=precision,
                          inference_precision=inference_precision)
    if model_dir is not None:
        insp = _load_stage(model_dir, backend, device, precision, threads, factor_precision,
                           inference_precision=inference_precision)
    else:
        insp = _load_inspector(inspector_dir, backend, device, precision, threads, factor_precision,
                               inference_precision)
    if not fitted_here:  # an inspector fitted before: the options may only confirm its tiling; --roi replaces
        _confirm_tiling(insp, model_dir or inspector_dir, tiles, tile, tile_overlap, tile_mode, stats_cell)
        _apply_roi(insp, roi, model_dir or inspector_dir)
    n = len(load_category(category, need_train=False).test)
    with progress_bar(n, "scoring test set") as bar:
        res = evaluate(category, insp, out, batch_size, progress=bar)
    _print_metrics(res.metrics, out)
    if res.report is not None:
        click.echo(f"report: {res.report}  (open it in a browser)")
    else:
        from ..report import ReportUnavailable

        click.echo(f"note: no report.html or plots: {ReportUnavailable()}", err=True)


@cli.command("report")
@click.argument("eval_dir", type=click.Path(exists=True, file_okay=False))
def report_cmd(eval_dir):
    """(Re)build EVAL_DIR/report.html, roc.png and scores.png from what `eval` wrote there.

    Reads metrics.json, curves.json, scores.jsonl and gallery.json only, so an eval folder
    copied off a line device (which may lack matplotlib) can be turned into a report on a laptop.
    """
    from ..report import write_report

    click.echo(f"report: {write_report(eval_dir)}")


def _eval_cascade(category, cascade_file, out, good_share, seed, batch_size, backend, device, threads, precision,
                  factor_precision, share_budget=SHARE_BUDGET):
    from ..cascade.evaluate import evaluate_cascade, mix_items
    from ..dataset import load_category

    casc = _load_stage(None, backend, device, precision, threads, factor_precision, cascade_file)
    n = len(mix_items(load_category(category, need_train=False).test, good_share, seed))
    with progress_bar(n, "scoring test set (cascade and last stage alone)") as bar:
        res = evaluate_cascade(category, casc, out, good_share, batch_size, seed, progress=bar,
                               share_budget=share_budget)
    _print_cascade_metrics(res.metrics, out)


def _print_cascade_metrics(m: dict, out: Path) -> None:
    def f(v):
        return "n/a" if v is None else f"{v:.3f}"

    def line(label, r):
        c = r["confusion"]
        dice = f", Dice {f(r['dice'])}" if r.get("dice") is not None else ""
        return (f"{label}: NG caught {c['tp']}/{c['tp'] + c['fn']}, good rejected {c['fp']}/{c['fp'] + c['tn']}, "
                f"F1 {f(r['f1'])}, macro-F1 {f(r['macro_f1'])}, image AUROC {f(r['image_auroc'])}{dice}")

    share = f" (asked {m['good_share_requested']:.0%})" if m["good_share_requested"] is not None else ""
    click.echo(f"mix: {m['n_images']} images, {m['n_good']} good ({m['good_share']:.0%}){share}, "
               f"{m['n_defect']} defective")
    click.echo(line("cascade " + " → ".join(m["stage_names"]), m))
    for st in m["stages"]:
        name = st["name"]
        extra = f", defects it never saw {st['defects_not_reached']}" if "defects_not_reached" in st else ""
        click.echo(f"  {name:<12} ran on {st['ran']}/{m['n_images']} ({st['share_ran']:.0%}){extra}")
    if m.get("gate_sweep"):
        second = m["stage_names"][1]
        click.echo(f"  choosing the gate (on {m['stage_names'][0]}'s score): {second} would run on / defects it "
                   f"would never see / of those, ones {second} alone catches")
        click.echo("    " + "  ".join(f"{g['gate']:g}: {g['share_ran']:.0%}/{g['defects_not_reached']}/"
                                      f"{g['caught_not_reached']}" for g in m["gate_sweep"]))
        n_fit = m.get("first_stage_held_out_good")
        if n_fit:
            click.echo(f"  good parts it would send on, by {m['stage_names'][0]}'s {n_fit} held-out good scores from "
                       "fit (the line's own good parts, often more than this test set has):")
            click.echo("    " + "  ".join(f"{g['gate']:g}: {g['good_sent_by_fit']:.0%}"
                                          + (" ({:.0%}-{:.0%})".format(*g["good_sent_by_fit_90"])
                                             if g.get("good_sent_by_fit_90") else "") for g in m["gate_sweep"]))
            click.echo("    (in brackets: the 90% range of what the line may give, from so many images)")
        k = m.get("gate_keeping_catches")
        if k:
            by_fit = (f"; {k['good_sent_by_fit']:.0%} of good parts by fit's held-out scores"
                      if k.get("good_sent_by_fit") is not None else "")
            click.echo(f"  gate <= {k['gate']:g} passes every defect {second} alone catches here ({k['caught']}); "
                       f"{second} would then run on {k['share_ran']:.0%} of these images"
                       + (f" ({k['good_ran']:.0%} of the good ones{by_fit})" if k["good_ran"] is not None else ""))
        b = m.get("gate_within_budget")
        if b and not b["within"]:
            click.echo(f"  for a budget of {b['budget']:.0%} of a line's parts: no gate keeps to it at the top of "
                       f"its 90% range with {b['n_good']} good and {b['n_defect']} defective images to go by (even "
                       f"sending nothing on: {b['share_top']:.1%}); more good images in the gate's fit, or more "
                       "labelled defects, narrow the range")
        elif b:
            click.echo(f"  for a budget of {b['budget']:.0%} of a line's parts ({b['line_good_share']:.0%} good): gate "
                       f"{b['gate']:g} sends {b['share']:.1%} on by the estimate, at most {b['share_top']:.1%} at the "
                       f"top of its 90% range (good parts from {b['good_from']}); it keeps "
                       f"{b['defects_not_reached']} of these defects from {second}, "
                       f"{b['caught_not_reached']} of them ones {second} alone catches")
    a = m["alone"]
    click.echo(line(f"{a['stage']} alone", a))
    t = m["time_ms_per_image"]
    ratio = t["ratio"]
    saved = "" if ratio is None else f"  → {ratio:.0%} of the time, {1 - ratio:.0%} saved"
    click.echo(f"time per image: cascade {t['cascade']:.1f} ms, {a['stage']} alone {t['alone']:.1f} ms{saved}")
    if (out / "report.html").is_file():
        click.echo(f"report: {out / 'report.html'}   metrics: {out / 'metrics.json'}")
    else:
        click.echo(f"metrics: {out / 'metrics.json'}")


def _print_metrics(m: dict, out: Path) -> None:
    def f(v):
        return "n/a" if v is None else f"{v:.3f}"

    click.echo(f"image AUROC {f(m['image_auroc'])}   pixel AUROC {f(m['pixel_auroc'])}   PRO {f(m['pro'])}")
    by = (m.get("inspector_details") or {}).get("decides_by")
    if by:  # a supervised model: which of its scores decides (and ranks for the AUROC above)
        click.echo(f"decided by {by}")
    if m.get("n_errors"):
        e = m.get("errors_by_kind") or {}
        click.echo(f"note: {m['n_errors']} test images got an ERROR record ({e.get('good', 0)} good, "
                   f"{e.get('defect', 0)} defective: unreadable, or refused by the capture check); they are not in "
                   f"the numbers below, and on the line an ERROR is rejected like an NG. Each record in "
                   f"{out / 'test-results' / 'results.jsonl'} says why", err=True)
    c = m["confusion"]
    t = m.get("at_threshold") or {}
    if t.get("false_reject_rate") is not None or t.get("recall") is not None:
        def pct(v):
            return "n/a" if v is None else f"{v:.1%}"

        where = "the inspector's" if m.get("kind", "padim") == "padim" else "the model's"
        line = (f"at {where} threshold: good parts rejected {pct(t['false_reject_rate'])} "
                f"({c['fp']} of {t['n_good']}), defects caught {pct(t['recall'])} ({c['tp']} of {t['n_defect']})")
        e = (m.get("threshold") or {}).get("expected_frr")
        if e:
            verdict = "consistent with" if t.get("consistent_with_expected") else "NOT consistent with"
            line += (f"; fit expected {e['value']:.1%} (90% interval {e['low']:.1%}..{e['high']:.1%}): the count is "
                     f"{verdict} that")
        click.echo(line)
        if t.get("advice"):
            click.echo(f"  note: {t['advice']}")
    click.echo(f"at the threshold: F1 {f(m['f1'])}, macro-F1 {f(m['macro_f1'])}  "
               f"(NG caught {c['tp']}, missed {c['fn']}; good rejected {c['fp']}, passed {c['tn']})")
    for k, v in m["per_kind"].items():
        rate = v.get("detection_rate", v.get("false_reject_rate"))
        what = "detected" if k != "good" else "falsely rejected"
        click.echo(f"  {k:<14} {v['ng']:>3}/{v['n']:<3} {what} ({rate:.0%})")
    if m.get("dice") is not None:
        click.echo(f"masks: Dice {f(m['dice'])}, IoU {f(m['iou'])} (mean over {m['n_segmented']} defective images)")
        for c, v in m.get("per_class", {}).items():
            click.echo(f"  {c:<14} Dice {f(v['dice'])}  IoU {f(v['iou'])}  on {v['judged_on']} ({v['n_images']})")
    click.echo(f"metrics: {out / 'metrics.json'}")


@cli.command("calibrate")
@click.argument("category", type=click.Path(exists=True, file_okay=False))
@click.option("--inspector", "inspector_dir", default=None, type=click.Path(),
              help="Inspector directory to recalibrate.  [default: inspector]")
@model_option
@click.option("--method", type=click.Choice(["f1", "zero-false-reject", "recall"]), default="f1", show_default=True,
              help="f1: best F1 on the labelled set. zero-false-reject: lowest threshold that rejects no good "
                   "part. recall: catch at least --target-recall of the defective parts.")
@click.option("--target-recall", type=float, default=0.95, show_default=True)
@click.option("--decide-by", type=click.Choice(["keep", "class", "area", "peak"]), default="keep",
              show_default=True,
              help="Supervised models (--model): what decides OK/NG from now on. class: the class head's P(NG) "
                   "(classifier, multitask). area: a defect class covers its min area (segmenter, multitask). "
                   "peak: a defect class's largest mask probability reaches a threshold (segmenter, multitask). "
                   "The thresholds of that rule are then calibrated. keep: the rule the model has (the trainer "
                   "picks the one that ranked its validation images best; `info` says which).")
@click.option("--out", default=None, type=click.Path(), help="Where the scored set goes [default: INSPECTOR-calibration].")
@click.option("--batch-size", type=int, default=8, show_default=True)
@backend_options
@factor_option
def calibrate_cmd(category, inspector_dir, model_dir, method, target_recall, decide_by, out, batch_size, backend,
                  device, threads, precision, inference_precision, factor_precision):
    """Set thresholds from labelled images (MVTec layout: test/good and test/<defect>).

    The new thresholds are written into the inspector (atomically); the previous ones
    are recorded in its calibration.json.

    With --model: the threshold of the rule that decides (--decide-by), rewritten
    in the bundle's manifest ("calibration"; the previous values under
    "previous"). See them with `edge-inspect info`.

    \b
      class: P(NG) threshold (classifiers; multitask models by default)
      area:  minimum defect area per class, pixels at the model's input size
             (a class named like a test/<kind> folder is judged on test/good
             and that folder; a single 'defect' class on every defect image)
      peak:  threshold on each class's largest mask probability
    """
    from ..calibrate import calibrate_labelled
    from ..dataset import load_category

    stage_dir = _stage_path(inspector_dir, model_dir)
    n = len(load_category(category, need_train=False).test)
    if decide_by != "keep" and model_dir is None:
        raise click.UsageError("--decide-by is for supervised models: give it with --model BUNDLE")
    if model_dir is not None:
        from ..supervised.calibrate import calibrate_supervised
        from ..supervised.calibration import DECIDE_BY, RULES

        stage = _load_stage(stage_dir, backend, device, precision, threads, factor_precision,
                            inference_precision=inference_precision)
        if decide_by != "keep" and decide_by not in RULES[stage.kind]:
            raise click.UsageError(f"--decide-by {decide_by}: a {stage.kind} decides by "
                                   f"{' or '.join(RULES[stage.kind])} ({model_dir})")
        with progress_bar(n, "scoring labelled set") as bar:
            rep = calibrate_supervised(category, stage, method, target_recall, out, batch_size, progress=bar,
                                       decide_by=None if decide_by == "keep" else decide_by)
        i = rep.info
        where = f"(written to {Path(model_dir) / 'manifest.json'})"
        if rep.calibration.rule(stage.kind) != rep.previous.rule(stage.kind):
            click.echo(f"decides by {DECIDE_BY[rep.calibration.rule(stage.kind)]} from now on")
        if rep.what == "min_area":
            click.echo(f"{method}: min area per defect class (px at the model's input size) {where}")
            for c, d in i["per_class"].items():
                was = rep.previous.min_area.get(c)
                how = (f"kept: {d['kept']}" if "kept" in d else
                       f"recall {d['recall']:.1%}, false rejects {d['false_reject_rate']:.1%} on {d['judged_on']} "
                       f"({d['n_defect']} defect, {d['n_good']} good)")
                click.echo(f"  {c:<14} {was} → {d['min_area']}  {how}")
        elif rep.what == "peak_threshold":
            click.echo(f"{method}: peak_threshold {rep.previous.peak_level} → {rep.calibration.peak_level} {where}")
        else:
            click.echo(f"{method}: ng_threshold {rep.previous.ng_threshold} → {rep.calibration.ng_threshold} {where}")
        click.echo(f"  on this set: recall {i['recall']:.1%}, false rejects {i['false_reject_rate']:.1%} "
                   f"({i['n_defect']} defect, {i['n_good']} good images)"
                   + (" (NG when any class reaches its min area)" if rep.what == "min_area" else ""))
        return
    insp = _load_inspector(stage_dir, backend, device, precision, threads, factor_precision, inference_precision)
    with progress_bar(n, "scoring labelled set") as bar:
        cal = calibrate_labelled(category, insp, method, target_recall, out, batch_size, progress=bar)
    old = cal.details["previous"]
    click.echo(f"{method}: image threshold {old['image_threshold']:.3f} → {cal.image_threshold:.3f}, "
               f"pixel threshold {old['pixel_threshold']:.3f} → {cal.pixel_threshold:.3f}")
    click.echo(f"  on this set: recall {cal.details['recall']:.1%}, false rejects "
               f"{cal.details['false_reject_rate']:.1%} ({cal.details['n_defect']} defect, "
               f"{cal.details['n_good']} good images)")


@cli.command("info")
@click.argument("path", type=click.Path(exists=True))
@click.option("--json", "as_json", is_flag=True, help="Print the whole manifest as JSON.")
def info_cmd(path, as_json):
    """Show what a backbone bundle, a supervised bundle (with its calibration), an
    inspector or a cascade file (CASCADE.toml: its stages, what each runs, when, and
    which share a backbone pass) is, and check its file hashes."""
    from ..bundle import load_bundle, read_manifest
    from ..inspector import Inspector
    from ..inspector_dir import is_inspector
    from ..padim import kernel

    if Path(path).is_file():
        if Path(path).suffix.lower() != ".toml":
            raise click.UsageError(f"{path} is a file: info reads a bundle or inspector folder, or a cascade "
                                   ".toml file (give the folder, e.g. edge-inspect info ./inspector)")
        if as_json:
            raise click.UsageError("--json prints a folder's manifest; a cascade file is TOML: read it as it is")
        from .cascade_info import echo_cascade_info

        echo_cascade_info(path)
        click.echo("  files: all SHA-256 hashes match (every stage)")
        return
    m = read_manifest(path)
    if as_json:
        click.echo(json.dumps(m, indent=2))
    if is_inspector(path):
        d = Inspector.load(path, open_runtime=False).describe()  # verifies every file's hash
        if not as_json:
            inp = d["input"] or ["?", "?"]
            click.echo(f"inspector {d['id']}  (backbone {d['backbone']}, input {inp[0]}x{inp[1]}, "
                       f"fitted with {d['fitted_with'] or 'the most precise variant'})")
            click.echo(f"  PaDiM: d={d['d']}, {d['mode']} mode, grid {d['grid'][0]}x{d['grid'][1]}, "
                       f"{d['n_images']} good images, eps={d['eps']}, shrinkage {d['shrinkage']}, {d['tiles']}")
            if d["choice"]:
                click.echo(f"  model chosen: {d['choice']}")
            click.echo(f"  features: {d['features']}")
            click.echo(f"  registration: {d['registration']}")
            click.echo(f"  position scale: {d['position_scale']}")
            click.echo(f"  capture check: {d['capture']}")
            t = d["threshold"]
            click.echo(f"  thresholds: image {t['image']:.3f}, pixel {t['pixel']:.3f} ({t['method']})")
            click.echo(f"  scoring on this machine: {kernel.status()}")
            click.echo(f"  runtime on this machine (--backend auto): {_auto_line()}")
            click.echo(f"  inference precision: {d['inference'] or 'fp32 (fitted before parity checks)'}")
    else:
        b = load_bundle(path)
        if not as_json:
            w = m.get("weights", {})
            click.echo(f"{b.kind} {b.name}  id {b.id}" + (f"  (arch {m['arch']})" if m.get("arch") else ""))
            click.echo(f"  input {b.input.name}: {b.input.height}x{b.input.width} {b.input.color}"
                       + (" (any size accepted)" if b.input.dynamic_spatial else "")
                       + f", mean {[round(v, 4) for v in b.input.mean]}, std {[round(v, 4) for v in b.input.std]}")
            for tap in b.taps:
                click.echo(f"  tap {tap.name}: stride {tap.stride}, {tap.channels} channels")
            for o in b.outputs:
                labels = ", ".join(f"{i}={n}" + (" (OK)" if i == o.ok_class else "") for i, n in o.labels)
                where = f", mask stride {o.stride}" if o.role == "mask" else ""
                click.echo(f"  output {o.name}: {o.role}, {o.channels} channels, {o.activation}{where}; "
                           f"labels {labels}")
            if m.get("build", {}).get("tta") == "flips":
                click.echo("  test-time flips: each image runs as it is and mirrored three ways, in one batch inside "
                           "the model, which answers with the mean (about 4x the time of one pass)")
            if b.kind != "backbone":
                _echo_calibration(b)
            click.echo(f"  weights: {w.get('source')}" + (f"  !! {w['warning']}" if w.get("warning") else ""))
            par = m.get("parity", {})
            if par.get("inputs"):
                click.echo(f"  parity vs {par.get('reference', 'torch fp32')} on {par['inputs'].get('n_images')} "
                           f"{par['inputs'].get('source')}:")
            for x in b.models:
                click.echo(f"  model {x.path}" + (f" + {x.weights}" if x.weights else "")
                           + f" ({x.format}/{x.precision}){_parity_summary(par.get(f'{x.format}/{x.precision}'))}")
    click.echo("  files: all SHA-256 hashes match", err=as_json)


def _auto_line() -> str:
    from ..backends.auto import choose

    c = choose()
    return f"{c.backend} {c.device}, because: {c.reason}"


def _echo_calibration(b) -> None:
    """The thresholds a supervised bundle runs with (its manifest's calibration block, or the defaults)."""
    from ..supervised import open_supervised
    from ..supervised.calibration import AUROC_KEYS, DECIDE_BY

    st = open_supervised(b.root, open_runtime=False)
    c = st.calibration
    parts = [f"decides by {DECIDE_BY[st.rule]}: {st.rule_text()}"]
    if st.mask_head is not None:
        parts.append(f"mask pixels at probability ≥ {c.mask_threshold:.3f}")
    # the other rules' thresholds, reported; `calibrate --decide-by RULE` switches to one
    if st.class_head is not None and st.rule != "class":
        parts.append(f"P(NG) reported (the class head alone: NG at ≥ {c.ng_threshold:.3f})")
    if st.mask_head is not None and st.rule != "area":
        parts.append("areas reported (--decide-by area: min area, px at the input size, "
                     + ", ".join(f"{k} {v}" for k, v in c.min_area.items()) + ")")
    if st.mask_head is not None and st.rule != "peak":
        parts.append(f"peaks reported (--decide-by peak: NG at ≥ {c.peak_level:.3f})")
    src = "defaults: no calibration block" if c.is_default else f"method {c.method}"
    click.echo(f"  calibration ({src}): " + "; ".join(parts))
    v = c.validation
    if v:
        bits = [f"{k} {v[k]:.3f}" for k in ("f1", "macro_f1", "image_auroc", "recall", "false_reject_rate", "dice",
                                            *AUROC_KEYS.values()) if isinstance(v.get(k), (int, float))]
        where = f" on {v['category']}" if v.get("category") else ""
        if bits:
            click.echo(f"    validation{where}: " + ", ".join(bits))
        for cls, d in (v.get("per_class") or {}).items():
            if isinstance(d, dict) and isinstance(d.get("recall"), (int, float)):
                click.echo(f"      {cls}: min area {d.get('min_area')}, recall {d['recall']:.3f}, false reject rate "
                           f"{d['false_reject_rate']:.3f} on {d.get('judged_on', '?')}")
            elif isinstance(d, dict) and d.get("kept"):
                click.echo(f"      {cls}: min area {d.get('min_area')} kept ({d['kept']})")
    if c.previous:
        click.echo(f"    previous: {c.previous}")


def _parity_summary(rep: dict | None) -> str:
    """One line of a variant's parity against torch, as recorded at export."""
    stats = (rep or {}).get("taps") or (rep or {}).get("outputs")
    if not stats:
        return ""
    out = f": cosine ≥ {min(s['cosine'] for s in stats.values()):.4f}"
    rho = rep.get("padim", {}).get("spearman")
    if rho is not None:
        out += f", PaDiM score rank corr {rho:.3f}"
    rho32 = rep.get("padim", {}).get("spearman_fp32_stats")
    if rho32 is not None:
        out += f" ({rho32:.3f} on FP32-fitted stats)"
    agree = [s["decision_agreement"] for s in stats.values() if "decision_agreement" in s]
    if agree:
        out += f", decisions agree {min(agree):.1%}"
    return out


@cli.command("demo-data")
@click.argument("out", type=click.Path(), default="demo-data")
@click.option("--texture", type=click.Choice(["metal", "fabric", "casting"]), default="metal", show_default=True)
@click.option("--train", "n_train", type=int, default=40, show_default=True, help="Good training images.")
@click.option("--test-good", type=int, default=10, show_default=True)
@click.option("--per-defect", type=int, default=6, show_default=True)
@click.option("--size", type=int, default=256, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def demo_data_cmd(out, texture, n_train, test_good, per_defect, size, seed):
    """Generate a synthetic MVTec-layout category with planted defects and exact masks."""
    from ..demo_data import make_category

    root = make_category(Path(out) / texture, texture, n_train, test_good, per_defect, size=(size, size), seed=seed)
    click.echo(f"wrote {root}: {n_train} train/good, {test_good} test/good, {per_defect} per defect kind, with masks")
