"""Inspectors and bundles copied by hand are validated before use: hashes, schema, shapes, paths, matches."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge.bundle import MANIFEST, hash_tree, load_bundle, write_json
from edge.errors import BundleError
from edge.fitting import update_inspector
from edge.inspector import Inspector

from .tiny_backbone import make_tiny_bundle

EDGE = Path(__file__).resolve().parents[1] / "edge"


def rehash(root: Path) -> None:
    """What a careful attacker (or a confused integrator) does after editing: record the new hashes."""
    m = json.loads((root / MANIFEST).read_text())
    m["files"] = hash_tree(root)
    write_json(root / MANIFEST, m)


def edit_manifest(root: Path, fn) -> None:
    m = json.loads((root / MANIFEST).read_text())
    fn(m)
    write_json(root / MANIFEST, m)


@pytest.fixture
def bundle(tmp_path, tiny_bundle):
    dst = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, dst)
    return dst


@pytest.mark.parametrize("path", ["../outside.onnx", "/etc/passwd", "sub/../../x", "..\\x.onnx", "C:/x.onnx"])
def test_model_paths_cannot_leave_the_bundle(bundle, path):
    edit_manifest(bundle, lambda m: m["models"][0].update(path=path))
    with pytest.raises(BundleError, match="not a plain relative path inside the directory"):
        load_bundle(bundle)


def test_a_files_table_naming_outside_paths_is_refused_before_reading(bundle, monkeypatch):
    edit_manifest(bundle, lambda m: m["files"].update({"../../../etc/shadow": "0" * 64}))
    opened = []
    real_open = open
    monkeypatch.setattr("builtins.open", lambda p, *a, **k: (opened.append(str(p)), real_open(p, *a, **k))[1])
    with pytest.raises(BundleError, match="'../../../etc/shadow' is not a plain relative path"):
        load_bundle(bundle)
    assert not any("shadow" in p for p in opened)


def test_a_symlink_out_of_the_bundle_is_refused_even_with_the_right_hash(bundle, tmp_path):
    outside = tmp_path / "elsewhere.onnx"
    shutil.move(bundle / "model.onnx", outside)
    os.symlink(outside, bundle / "model.onnx")  # same bytes, so the hash alone would pass
    with pytest.raises(BundleError, match="model.onnx is a symbolic link out of"):
        load_bundle(bundle)


def test_schema_version_from_the_future_is_refused(bundle, tiny_inspector):
    edit_manifest(bundle, lambda m: m.update(schema_version=99))
    with pytest.raises(BundleError, match="schema_version 99 is not supported"):
        load_bundle(bundle)
    edit_manifest(tiny_inspector, lambda m: m.update(schema_version=99))
    with pytest.raises(BundleError, match="inspector schema_version 99 is not supported"):
        Inspector.load(tiny_inspector, open_runtime=False)


def test_an_inspector_without_hashes_is_refused(tiny_inspector):
    edit_manifest(tiny_inspector, lambda m: m.update(files={}))
    with pytest.raises(BundleError, match="no 'files' hash table"):
        Inspector.load(tiny_inspector, open_runtime=False)


def test_a_file_read_but_not_recorded_is_refused(tiny_inspector):
    edit_manifest(tiny_inspector, lambda m: m["files"].pop("stats.npz"))
    with pytest.raises(BundleError, match="no recorded hash for stats.npz"):
        Inspector.load(tiny_inspector, open_runtime=False)


def test_statistics_fitted_at_another_input_size_are_refused_saying_what_differs(tiny_inspector, tmp_path):
    other = make_tiny_bundle(tmp_path / "wide", size=(64, 128))
    shutil.rmtree(tiny_inspector / "backbone")
    shutil.copytree(other, tiny_inspector / "backbone")
    rehash(tiny_inspector)
    with pytest.raises(BundleError) as e:
        Inspector.load(tiny_inspector, open_runtime=False)
    msg = str(e.value)
    assert "the backbone does not match the statistics" in msg
    assert "backbone input 64x128 but the statistics were fitted at 64x64" in msg


def test_statistics_fitted_with_another_backbone_are_refused(tiny_inspector, tmp_path):
    other = make_tiny_bundle(tmp_path / "other", seed=5)  # same shapes, other weights
    shutil.rmtree(tiny_inspector / "backbone")
    shutil.copytree(other, tiny_inspector / "backbone")
    rehash(tiny_inspector)
    with pytest.raises(BundleError) as e:
        Inspector.load(tiny_inspector, open_runtime=False)
    assert re.search(r"backbone id \w{12} \(tiny-test\) but the statistics were fitted with \w{12} \(tiny-test\)",
                     str(e.value))


def test_a_bundle_whose_taps_are_not_its_model_outputs_is_refused(tiny_inspector):
    bb = tiny_inspector / "backbone"
    edit_manifest(bb, lambda m: m["taps"][1].update(name="layer3"))
    rehash(bb)
    edit_manifest(tiny_inspector, lambda m: m["backbone"].update(
        id=load_bundle(bb).id))  # make the id check pass: only the taps are wrong
    rehash(tiny_inspector)
    with pytest.raises(BundleError, match=r"taps layer3 are not outputs of its model \(the model has: s4, s8, s16\)"):
        Inspector.load(tiny_inspector)


@pytest.mark.parametrize("change, match", [
    (lambda z: z.update(mean=z["mean"].astype(np.int32)), "mean has dtype int32"),
    (lambda z: z.update(channel_idx=np.zeros_like(z["channel_idx"])), "distinct non-negative integers"),
    (lambda z: z.update(mean=z["mean"][:-1]), "statistics shapes disagree"),
    (lambda z: z.update(grid=np.array([0, 16])), "not two positive sizes"),
])
def test_statistics_with_wrong_shapes_or_dtypes_are_refused(tiny_inspector, change, match):
    with np.load(tiny_inspector / "stats.npz", allow_pickle=False) as f:
        z = dict(f)
    change(z)
    np.savez(tiny_inspector / "stats.npz", **z)
    rehash(tiny_inspector)
    with pytest.raises(BundleError, match=match):
        Inspector.load(tiny_inspector, open_runtime=False)


def test_update_refuses_tampered_moments_naming_the_file(tiny_inspector, tiny_category):
    before = (tiny_inspector / "manifest.json").read_bytes()
    with open(tiny_inspector / "moments.npz", "r+b") as f:
        f.seek(200)
        f.write(b"\x00\x01\x02\x03")
    good = sorted((tiny_category / "test" / "good").glob("*.png"))
    r = subprocess.run([sys.executable, "-m", "edge", "fit", "--update", "--good", str(good[0].parent), "--out",
                        str(tiny_inspector)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 3, r.stderr
    assert "moments.npz: sha256" in r.stderr and "failed its integrity check" in r.stderr
    assert "Traceback" not in r.stderr
    assert (tiny_inspector / "manifest.json").read_bytes() == before  # nothing was changed


def test_update_refuses_moments_of_another_shape(tiny_inspector, tiny_category):
    with np.load(tiny_inspector / "moments.npz", allow_pickle=False) as f:
        z = {k: v[:-1] if v.ndim else v for k, v in dict(f).items()}  # one position short
    np.savez(tiny_inspector / "moments.npz", **z)
    rehash(tiny_inspector)
    good = sorted((tiny_category / "test" / "good").glob("*.png"))
    with pytest.raises(BundleError, match="moments.npz holds 255 positions x 20 channels but stats.npz has 256 x 20"):
        update_inspector(tiny_inspector, good)


def test_update_reads_the_moments_once(tiny_inspector, tiny_category, monkeypatch):
    """Hash and load come from the same bytes: the file cannot be swapped between check and use."""
    reads = []
    real = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: (reads.append(self.name), real(self))[1])
    real_load = np.load
    monkeypatch.setattr(np, "load", lambda f, *a, **k: (reads.append("np.load:" + type(f).__name__),
                                                        real_load(f, *a, **k))[1])
    update_inspector(tiny_inspector, sorted((tiny_category / "test" / "good").glob("*.png"))[:2])
    assert reads.count("moments.npz") == 1 and "np.load:BytesIO" in reads


def test_no_pickle_no_allow_pickle_no_eval_in_edge():
    bad = re.compile(r"\bimport pickle\b|\bpickle\.|allow_pickle\s*=\s*True|\beval\(|\bexec\(|shell\s*=\s*True"
                     r"|os\.system\(|\bcloudpickle\b|\bjoblib\b")
    hits = [f"{p.relative_to(EDGE)}:{i}" for p in EDGE.rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1) if bad.search(line)]
    assert hits == []
    # every np.load in edge/ says allow_pickle=False explicitly
    loads = [(p, line) for p in EDGE.rglob("*.py") for line in p.read_text().splitlines() if "np.load(" in line]
    assert loads and all("allow_pickle=False" in line for _, line in loads)

