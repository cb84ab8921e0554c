"""Test-time flips in trained bundles (export/tta.py, `edge-export train --tta`), the per-image
Dice loss, and the trainer's validation AUROC ranked as `edge-inspect eval` ranks."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402

from edge.bundle import load_bundle  # noqa: E402
from edge.cli import cli as edge_cli  # noqa: E402
from edge.imageio import read_image  # noqa: E402
from edge.metrics import dense_ranks  # noqa: E402
from edge.stage import open_stage  # noqa: E402
from export.cli import cli as export_cli  # noqa: E402
from export.errors import ExportError  # noqa: E402
from export.models import build_model  # noqa: E402
from export.training.objectives import Objective  # noqa: E402
from export.training.validation import Predictions, calibrate  # noqa: E402
from export.tta import FLIPS, flip, flip_mean  # noqa: E402

from .train_helpers import TINY, labelled_part  # noqa: E402
from .train_helpers import train as _train  # noqa: E402

pytestmark = pytest.mark.export


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    return labelled_part(tmp_path_factory.mktemp("tta"), seed=5)


def test_flip_mean_is_the_mean_of_the_four_passes_flipped_back():
    torch.manual_seed(0)
    net = torch.nn.Conv2d(3, 2, 3, padding=1)  # not mirror-symmetric: each flip answers differently
    x = torch.randn(2, 3, 8, 10)

    def run(t):
        return net(t), net(t).mean((2, 3))  # a mask-like and a per-image output

    got = flip_mean(run, x)
    want_map = torch.stack([flip(net(flip(x, lr, ud)), lr, ud) for lr, ud in FLIPS]).mean(0)
    want_vec = torch.stack([net(flip(x, lr, ud)).mean((2, 3)) for lr, ud in FLIPS]).mean(0)
    assert torch.allclose(got[0], want_map, atol=1e-6) and torch.allclose(got[1], want_vec, atol=1e-6)
    assert not torch.allclose(got[0], net(x), atol=1e-3)  # the flips changed something


def test_segmenter_bundle_answers_with_the_mean_over_flips_on_the_line(labelled, tmp_path):
    """Default --tta auto: a segmenter trained with flips exports the flips in its graph; the edge
    runtime (no torch) gets what the torch network gives averaged over the four flips (`verify`
    rebuilding one from its manifest: test_export_train's module:factory test)."""
    out = tmp_path / "seg"
    r = _train(["segmenter", str(labelled), "--out", str(out), *TINY])
    assert r.exit_code == 0, r.output
    assert "test-time flips flips" in r.output
    m = load_bundle(out).manifest
    assert m["build"]["tta"] == "flips" and m["training"]["recipe"]["tta_run"] == "flips"
    assert "soft Dice per image" in m["training"]["recipe"]["loss"]["mask_loss"]
    plain = build_model({**m["build"], "tta": "none"}, "none").module
    plain.net.load_state_dict(torch.load(tmp_path / "seg.pth", weights_only=True))
    plain.eval()
    stage = open_stage(out)
    img = read_image(next((labelled / "test" / "spot").iterdir()))
    x = stage.tensors([img])
    got = stage.backend.infer({stage.backend.input_name: x})["mask_logits"]
    with torch.no_grad():
        t = torch.from_numpy(x)
        want = torch.stack([flip(plain(flip(t, lr, ud))[0], lr, ud) for lr, ud in FLIPS]).mean(0).numpy()
        one = plain(t)[0].numpy()
    assert np.allclose(got, want, atol=1e-4) and not np.allclose(got, one, atol=1e-3)
    info = CliRunner().invoke(edge_cli, ["info", str(out)])
    assert info.exit_code == 0 and "test-time flips: each image runs as it is and mirrored" in info.output


def test_tta_choices_through_the_cli(labelled, tmp_path):
    r = _train(["segmenter", str(labelled), "--out", str(tmp_path / "a"), *TINY, "--augment", "none",
                "--tta", "flips"])
    assert r.exit_code != 0 and isinstance(r.exception, ExportError)
    assert "never showed the model a mirrored one" in str(r.exception) and "--tta none" in r.exception.hint
    assert not (tmp_path / "a").exists()
    r = _train(["segmenter", str(labelled), "--out", str(tmp_path / "b"), *TINY, "--augment", "none"])
    assert r.exit_code == 0, r.output
    m = load_bundle(tmp_path / "b").manifest  # auto with no flips in training: one pass
    assert "tta" not in m["build"] and m["training"]["recipe"]["tta_run"] == "none"
    r = _train(["classifier", str(labelled), "--out", str(tmp_path / "c"), *TINY, "--dice-over", "batch"])
    assert r.exit_code == 0, r.output
    assert "tta" not in load_bundle(tmp_path / "c").manifest["build"]  # classifiers: not measured, none
    h = CliRunner().invoke(export_cli, ["train", "segmenter", "--help"])
    assert "--tta" in h.output and "--dice-over" in h.output


def test_per_image_dice_weighs_a_small_defect_like_a_large_one():
    """Image 0: a 4-pixel defect missed; image 1: a 256-pixel one found. Per image, the miss costs
    its image's whole Dice loss (1 - 1/5 with the +1 smoothing), half of it after the mean over
    the two; over the batch it nearly vanishes behind the large one."""
    mask = torch.zeros(2, 32, 32, dtype=torch.long)
    mask[0, :2, :2] = 1
    mask[1, 8:24, 8:24] = 1
    logits = torch.full((2, 1, 32, 32), -20.0)
    logits[1, 0, 8:24, 8:24] = 20.0
    kw = dict(kind="segmenter", pos_weight=(1.0,))
    bce = Objective(**kw, dice_weight=0.0).mask_loss(logits, mask)
    per_image = Objective(**kw, dice_over="image").mask_loss(logits, mask) - bce
    per_batch = Objective(**kw, dice_over="batch").mask_loss(logits, mask) - bce
    assert per_image == pytest.approx(0.4, abs=1e-3) and per_batch < 0.01
    good = torch.zeros(2, 32, 32, dtype=torch.long)  # a batch of good parts: BCE alone
    assert Objective(**kw, dice_over="image").mask_loss(logits, good) == pytest.approx(
        Objective(**kw, dice_weight=0.0).mask_loss(logits, good).item())


def test_validation_auroc_breaks_area_ties_by_the_peak_as_eval_does():
    """No image reaches the mask threshold (every area is 0), yet defective images peak higher:
    ranked like `edge-inspect eval` (area, then peak probability), AUROC is 1, not 0.5."""
    mask = np.zeros((4, 16, 16), np.uint8)
    mask[2:, 4:8, 4:8] = 1
    prob = np.full((4, 1, 16, 16), 0.01, np.float32)
    prob[0, 0, 0, 0], prob[1, 0, 3, 3] = 0.03, 0.04
    prob[2, 0, 5, 5], prob[3, 0, 6, 6] = 0.05, 0.06
    cal = calibrate("segmenter", Predictions(None, prob), np.array([False, False, True, True]), mask, ("defect",))
    assert cal["validation"]["image_auroc"] == 1.0
    assert list(dense_ranks([(0, 0.5), (1, 0.1), (0, 0.2), (0, 0.5)])) == [1.0, 2.0, 0.0, 1.0]
