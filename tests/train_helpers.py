"""What the trainer's tests share: the tiniest training options, a small labelled part, the CLI call."""

from __future__ import annotations

from click.testing import CliRunner

from edge.demo_data import make_category

TINY = ["--weights", "none", "--width-scale", "0.25", "--size", "64", "--epochs", "1", "--head-epochs", "1",
        "--batch-size", "4"]


def labelled_part(root, seed: int):
    """64x64: 6 train/good, 2 test/good, 2 each of spot and stain with masks (12 images)."""
    return make_category(root / "part", "metal", n_train=6, n_test_good=2, n_per_defect=2,
                         defects=("spot", "stain"), size=(64, 64), seed=seed, strength=(0.9, 1.0))


def train(args):
    from export.cli import cli as export_cli

    return CliRunner().invoke(export_cli, ["train", *args])
