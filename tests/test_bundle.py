import json
import shutil

import pytest

from edge.bundle import AtomicDir, load_bundle
from edge.errors import BundleError
from edge.inspector import Inspector


def test_tiny_bundle_loads(tiny_bundle):
    b = load_bundle(tiny_bundle)
    assert [t.stride for t in b.taps] == [4, 8, 16]
    assert b.model("onnx").path == "model.onnx"


def test_tampered_model_is_refused_naming_the_file(tmp_path, tiny_bundle):
    b = tmp_path / "b"
    shutil.copytree(tiny_bundle, b)
    with open(b / "model.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(BundleError, match=r"model.onnx: sha256 .* but the manifest records"):
        load_bundle(b)


def test_missing_file_and_unknown_schema(tmp_path, tiny_bundle):
    b = tmp_path / "b"
    shutil.copytree(tiny_bundle, b)
    (b / "model.onnx").unlink()
    with pytest.raises(BundleError, match="model.onnx: missing"):
        load_bundle(b)
    m = json.loads((tiny_bundle / "manifest.json").read_text())
    m["schema_version"] = 99
    shutil.copytree(tiny_bundle, tmp_path / "c")
    (tmp_path / "c" / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="schema_version 99 is not supported"):
        load_bundle(tmp_path / "c")


def test_missing_variant_lists_what_exists(tiny_bundle):
    with pytest.raises(BundleError, match=r"no openvino/fp16 model \(it has: onnx/fp32\)"):
        load_bundle(tiny_bundle).model("openvino", "fp16")


def test_tampered_inspector_stats_are_refused(tiny_inspector):
    with open(tiny_inspector / "stats.npz", "r+b") as f:
        f.seek(200)
        f.write(b"XXXX")
    with pytest.raises(BundleError, match="stats.npz: sha256"):
        Inspector.load(tiny_inspector)


def test_backbone_bundle_is_not_an_inspector(tiny_bundle):
    with pytest.raises(BundleError, match="not an inspector"):
        Inspector.load(tiny_bundle)


def test_atomic_dir_keeps_old_content_on_failure(tmp_path):
    dest = tmp_path / "d"
    dest.mkdir()
    (dest / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with AtomicDir(dest) as tmp:
            (tmp / "new.txt").write_text("new")
            raise RuntimeError("power cut")
    assert (dest / "old.txt").read_text() == "old" and not (dest / "new.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["d"]  # no temp dir left behind
    with AtomicDir(dest) as tmp:
        (tmp / "new.txt").write_text("new")
    assert (dest / "new.txt").exists() and not (dest / "old.txt").exists()


def test_no_pickle_in_artifacts(tiny_inspector_ro):
    import numpy as np

    for name in ("stats.npz", "moments.npz"):
        with np.load(tiny_inspector_ro / name, allow_pickle=False) as z:
            for k in z.files:
                assert z[k].dtype != object
