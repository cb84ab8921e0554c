"""``edge-export``: the workstation half. Needs torch (``pip install -e .[export]``)."""

from __future__ import annotations

import click

from edge.cli import run_group

from .commands import COMMANDS
from .training.command import train_group

HELP = """Turn trained models into bundles the line device runs without torch.

\b
A bundle is a folder you copy to the device as a whole:
  model.onnx            always (FP32); the other variants are made from it
  model_fp16.onnx, model_int8.onnx, model{,_fp16,_int8}.xml/.bin   as asked
  manifest.json         input size and normalisation, taps or outputs (label
                        map, activation, mask stride), where the weights came
                        from, SHA-256 of every file, and parity: how close each
                        variant is to torch FP32 on your images
\b
Commands:
  backbone    feature extractor for PaDiM (edge-inspect fit/score)
  classifier  OK/NG (or defect-type) classifier
  segmenter   defect segmentation (one mask channel per defect class)
  multitask   classifier and segmenter sharing one network
  verify      re-check a bundle against torch (on any machine with torch)
  train       train a classifier, segmenter or multitask model on a labelled folder
\b
Example:
  edge-export backbone resnet18 --weights resnet18.pth --size 256x1600 \\
      --format onnx,openvino --precision fp32,fp16,int8 --calib-images ./good

Exit codes: 0 ok, 2 usage error, 3 bad bundle (e.g. hashes differ), 8 export error
(unknown architecture, weights that do not match, unsupported op, parity failure).
"""


@click.group(help=HELP, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def cli() -> None:
    pass


for _command in (*COMMANDS, train_group):
    cli.add_command(_command)


def main() -> None:
    run_group(cli)


if __name__ == "__main__":
    main()
