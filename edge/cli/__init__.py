"""``edge-inspect``: the line-device command. Thin: parse, call the library, map errors to exit codes."""

from __future__ import annotations

import sys
from contextlib import contextmanager

import click

from ..errors import EdgeError

HELP = """Visual inspection on the line: learn what good parts look like, then flag the rest.

\b
How it works (PaDiM):
  fit    Run good images through a pretrained CNN and record what good looks like:
         for every position of the image (aligned parts), or once for all positions
         (textures and surfaces that shift or rotate), the average feature vector and
         how much it varies (a Gaussian). `--mode auto` picks between the two. No
         training, no defect images needed. It also sets the threshold from good
         images alone: every good image is scored by statistics that never saw it,
         and the threshold is set for a target false-reject rate (--target-frr),
         with the rate to expect printed.
  score  For a new image, measure how far each position is from its Gaussian
         (Mahalanobis distance). The anomaly map is that distance, smoothed; the
         image score is its maximum. score = raw / threshold, so 1.0 is the
         line between OK and NG. The mask marks pixels over the pixel threshold.
  Supervised models (classifier, segmenter, multitask bundles from `edge-export`) and
  cascades of stages run the same way: score/eval/run --model BUNDLE or --cascade FILE.

\b
Typical session:
  edge-inspect fit --good ./ok-images             # writes ./inspector
  edge-inspect score ./todays-images --out ./results
  edge-inspect eval ./my-category                 # MVTec layout: AUROC, FRR, recall, report.html
  edge-inspect calibrate ./my-category --method zero-false-reject
  edge-inspect run --camera 0 --station 127.0.0.1:8765   # the line, with its web page

Exit codes: 0 ok, 1 NG/ERROR found with --strict, 2 usage or user error,
3 bad bundle/inspector, 4 image error, 5 config error, 6 runtime error, 7 dataset error,
8 camera/source error, 9 GPIO error.
"""


@click.group(help=HELP, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="edge-inspect")
def cli() -> None:
    pass


@contextmanager
def progress_bar(total: int, label: str, unit: str = "images"):
    """A progress bar on stderr with position, rate (images/s) and ETA (click's, so no extra
    dependency); yields an update(n) callable."""
    import time

    t0 = time.monotonic()
    done = [0]
    with click.progressbar(length=total, label=label, file=sys.stderr, show_eta=True, show_pos=True,
                           item_show_func=lambda rate: rate) as bar:
        def update(n: int) -> None:
            done[0] += n
            elapsed = time.monotonic() - t0
            bar.update(n, f"{done[0] / elapsed:.1f} {unit}/s" if elapsed > 0 else None)

        yield update


def run_group(group: click.Group) -> None:
    """Run a click group as a program: EdgeError → message + hint on stderr and its exit code."""
    try:
        group(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except EdgeError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


def main() -> None:
    run_group(cli)


def _register() -> None:
    """Command modules add themselves to ``cli`` when imported; import each one here, explicitly."""
    from . import commands  # noqa: F401
    from . import line_commands  # noqa: F401


_register()
