"""edge-export through its CLI: custom models, weight files, verify, and one clear error per failure."""

import json
import shutil
import sys

import pytest

torch = pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402

from edge.bundle import hash_tree, load_bundle, write_json  # noqa: E402
from edge.errors import BundleError  # noqa: E402
from export.architectures.resnet import ResNet  # noqa: E402
from export.cli import cli as export_cli  # noqa: E402
from export.cli import main as export_main  # noqa: E402
from export.errors import ParityError, UnknownArchitectureError, WeightsError  # noqa: E402

TINY_R18 = ["resnet18", "--weights", "none", "--width-scale", "0.125", "--size", "64x96"]


def run(*args):
    return CliRunner().invoke(export_cli, [str(a) for a in args])


def exit_code_of_main(monkeypatch, capsys, *args) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["edge-export", *map(str, args)])
    with pytest.raises(SystemExit) as e:
        export_main()
    return e.value.code, capsys.readouterr().err


@pytest.fixture(scope="module")
def r18_file_bundle(tmp_path_factory):
    """A full-width resnet18 bundle made from a weight file (the way a user brings torchvision weights)."""
    root = tmp_path_factory.mktemp("r18file")
    torch.manual_seed(5)
    torch.save(ResNet("resnet18").state_dict(), root / "resnet18.pth")
    r = run("backbone", "resnet18", "--weights", root / "resnet18.pth", "--size", "64", "--out", root / "b")
    assert r.exit_code == 0, r.output
    return root


def test_backbone_cli_reports_taps_and_parity(tmp_path):
    r = run("backbone", *TINY_R18, "--out", tmp_path / "b")
    assert r.exit_code == 0, r.output
    assert "tap layer1 = layer1: stride 4, 8 channels" in r.output and "tap layer3 = layer3: stride 16" in r.output
    assert "onnx/fp32      min cosine 1.0000" in r.output and "PaDiM rank corr 1.000 (1.000 on FP32 stats)" in r.output
    assert "RANDOM INITIALISATION" in r.output


def test_custom_factory_backbone_with_taps_and_args(tmp_path):
    r = run("backbone", "tests.export_factories:small_net", "--taps", "s4=stage1,s8=stage2", "--factory-arg",
            "width=6", "--size", "64", "--out", tmp_path / "b", "--mean", "0.5,0.5,0.5", "--std", "0.25,0.25,0.25")
    assert r.exit_code == 0, r.output
    b = load_bundle(tmp_path / "b")
    assert [(t.name, t.stride, t.channels) for t in b.taps] == [("s4", 4, 6), ("s8", 8, 12)]
    assert b.input.mean == (0.5, 0.5, 0.5) and b.manifest["build"]["factory_kwargs"] == {"width": 6}
    assert b.manifest["weights"]["kind"] == "factory" and b.manifest["weights"]["pretrained"] is None


def test_weight_file_is_recorded_by_name_and_hash(r18_file_bundle):
    m = load_bundle(r18_file_bundle / "b").manifest
    assert m["weights"]["kind"] == "file" and m["weights"]["file"] == "resnet18.pth"
    assert len(m["weights"]["sha256"]) == 64 and m["weights"]["pretrained"] is True


def test_verify_needs_and_checks_the_weight_file(r18_file_bundle, tmp_path):
    b = r18_file_bundle / "b"
    r = run("verify", b)
    assert isinstance(r.exception, WeightsError) and "pass it with --weights" in str(r.exception)
    torch.save(ResNet("resnet18").state_dict(), tmp_path / "other.pth")
    r = run("verify", b, "--weights", tmp_path / "other.pth")
    assert isinstance(r.exception, WeightsError) and "not the file the bundle was made from" in str(r.exception)
    r = run("verify", b, "--weights", r18_file_bundle / "resnet18.pth")
    assert r.exit_code == 0, r.output
    assert "ok   onnx/fp32" in r.output and "all 1 variants verified" in r.output


def test_verify_catches_a_model_that_is_not_what_the_manifest_says(r18_file_bundle, tmp_path, monkeypatch, capsys):
    """Swap in a model exported from other weights and re-hash: hashes pass, parity does not."""
    bad = tmp_path / "bad"
    shutil.copytree(r18_file_bundle / "b", bad)
    torch.save(ResNet("resnet18").state_dict(), tmp_path / "other.pth")
    assert run("backbone", "resnet18", "--weights", tmp_path / "other.pth", "--size", "64",
               "--out", tmp_path / "other").exit_code == 0
    shutil.copy(tmp_path / "other" / "model.onnx", bad / "model.onnx")
    m = json.loads((bad / "manifest.json").read_text())
    m["files"] = hash_tree(bad)
    write_json(bad / "manifest.json", m)
    code, err = exit_code_of_main(monkeypatch, capsys, "verify", bad, "--weights", r18_file_bundle / "resnet18.pth")
    assert code == ParityError.exit_code and "onnx/fp32: differs from torch" in err


def test_verify_refuses_tampered_bundle_with_exit_3(r18_file_bundle, tmp_path, monkeypatch, capsys):
    bad = tmp_path / "t"
    shutil.copytree(r18_file_bundle / "b", bad)
    with open(bad / "model.onnx", "ab") as f:
        f.write(b"\0")
    code, err = exit_code_of_main(monkeypatch, capsys, "verify", bad)
    assert code == BundleError.exit_code and "model.onnx: sha256" in err


def test_verify_random_init_bundle_rebuilds_the_same_model(tmp_path):
    assert run("backbone", *TINY_R18, "--out", tmp_path / "b", "--format", "onnx,openvino").exit_code == 0
    r = run("verify", tmp_path / "b", "--min-cosine", "0.99")
    assert r.exit_code == 0, r.output
    assert "ok   openvino/fp32" in r.output and "recorded:" in r.output


@pytest.mark.parametrize("args, error, message", [
    (["backbone", "vgg99", "--weights", "none"], UnknownArchitectureError, "unknown backbone architecture 'vgg99'"),
    (["backbone", "nosuchmodule:make", "--taps", "a=b"], UnknownArchitectureError, "cannot import module"),
    (["backbone", *TINY_R18, "--taps", "x=layer7"], Exception, "not found in the model: layer7"),
    (["backbone", *TINY_R18, "--size", "72x96"], Exception, "not a whole stride"),
    (["backbone", *TINY_R18, "--format", "tflite"], Exception, "unknown format/precision: tflite"),
    (["backbone", "resnet18", "--weights", "missing.pth"], WeightsError, "does not exist"),
])
def test_errors_are_one_clear_message_and_leave_nothing(tmp_path, args, error, message):
    out = tmp_path / "out"
    r = run(*args, "--out", out)
    assert r.exit_code != 0 and isinstance(r.exception, error) and message in str(r.exception)
    assert list(tmp_path.iterdir()) == []


def test_failed_export_keeps_the_previous_bundle(tmp_path, monkeypatch, capsys):
    assert run("backbone", *TINY_R18, "--out", tmp_path / "b").exit_code == 0
    before = (tmp_path / "b" / "manifest.json").read_text()
    sd = ResNet("resnet18").state_dict()
    sd.pop("bn1.weight")
    sd["head.weight"] = torch.zeros(2)
    torch.save(sd, tmp_path / "w.pth")
    code, err = exit_code_of_main(monkeypatch, capsys, "backbone", "resnet18", "--weights", tmp_path / "w.pth",
                                  "--size", "64", "--out", tmp_path / "b")
    assert code == WeightsError.exit_code
    assert "missing keys (1): bn1.weight" in err and "unexpected keys (1): head.weight" in err
    assert (tmp_path / "b" / "manifest.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "w.pth"]


def test_help_answers_a_line_engineers_questions():
    top = run("--help").output
    assert "calib-images" in top and "Exit codes" in top
    bb = run("backbone", "--help").output
    for needle in ("wide_resnet50_2", "module:factory", "torchvision", "--precision", "256x1600", "--taps"):
        assert needle in bb, needle
    assert "--labels" in run("classifier", "--help").output and "defect=0" in run("classifier", "--help").output


def test_commands_do_not_import_the_cli_module():
    import subprocess

    code = "import sys, export.commands, export.options; print('export.cli' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
