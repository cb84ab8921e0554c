"""The one model-stage face (edge/stage.py): what score, eval, run and cascades rely on."""

import numpy as np
import pytest

from edge.daemon import serve
from edge.errors import BundleError
from edge.imageio import read_image
from edge.inspector import Inspector
from edge.records import read_records
from edge.scoring import score_paths
from edge.stage import TIMING_KEYS, Inspection, ModelStage, open_stage, run_stage

from .runtime_helpers import station


def test_the_inspector_is_a_model_stage(tiny_inspector_ro, tiny_category):
    insp = open_stage(tiny_inspector_ro)
    assert isinstance(insp, Inspector) and isinstance(insp, ModelStage) and insp.kind == "padim"
    imgs = [read_image(p) for p in sorted((tiny_category / "test").rglob("*.png"))[:5]]
    # the three steps by hand give what run_stage gives
    outputs = insp.backend.infer({insp.backend.input_name: insp.tensors(imgs)})
    by_hand = insp.results(outputs, imgs)
    timed = run_stage(insp, imgs)
    shared = run_stage(insp, imgs, outputs=outputs)  # a cascade with a shared backbone passes outputs
    for a, b, c in zip(by_hand, timed, shared):
        assert a.raw_score == pytest.approx(b.raw_score, rel=1e-6) == pytest.approx(c.raw_score, rel=1e-6)
        assert a.decision == b.decision == c.decision
        assert b.score == pytest.approx(b.raw_score / insp.threshold)
        assert tuple(b.timings_ms) == TIMING_KEYS and c.timings_ms["infer"] == 0.0
    d = insp.describe()
    assert d["kind"] == "padim" and d["id"] == insp.id and d["threshold"]["image"] == insp.threshold


def test_open_stage_refuses_a_backbone_and_a_missing_path_saying_what_to_do(tiny_bundle, tmp_path):
    with pytest.raises(BundleError, match="backbone bundle") as e:
        open_stage(tiny_bundle)
    assert "edge-inspect fit" in e.value.hint
    with pytest.raises(BundleError, match="does not exist"):
        open_stage(tmp_path / "nope")


def test_an_inspection_checks_what_it_holds():
    amap = np.zeros((4, 4), np.float32)
    with pytest.raises(ValueError, match="OK or NG"):
        Inspection(1.0, 1.0, "ERROR", amap, None)
    with pytest.raises(ValueError, match="differ in size"):
        Inspection(1.0, 1.0, "NG", amap, np.zeros((4, 5), np.uint8))
    with pytest.raises(ValueError, match="2-D"):
        Inspection(1.0, 1.0, "NG", amap[None], None)
    assert Inspection(0.5, 0.5, "OK", None, None).mask is None  # a classifier without a mask output


def test_score_and_run_write_the_same_record(tiny_inspector_ro, tiny_category, tmp_path):
    """The decision record is one type: `score` and the line runtime fill the same fields the same way."""
    folder = tiny_category / "test"
    (folder.parent / "broken.png").write_bytes(b"not a png")
    try:
        files = sorted(folder.rglob("*.png"))
        insp = Inspector.load(tiny_inspector_ro)
        score_paths(insp, files + [folder.parent / "broken.png"], tmp_path / "score")
        serve(station(tiny_inspector_ro, tmp_path / "run", source={"uri": f"folder:{folder}"},
                      capture={"drop_policy": "every", "batch_size": 3}))
    finally:
        (folder.parent / "broken.png").unlink()
    scored = {r["image"]: r for r in read_records(tmp_path / "score" / "results.jsonl")}
    ran = {r["image"]: r for r in read_records(tmp_path / "run" / "decisions.jsonl")}
    assert set(ran) == {str(p) for p in files}
    for image, r in ran.items():
        s = scored[image]
        assert r["decision"] == s["decision"] and r["inspector"] == s["inspector"]
        assert r["raw_score"] == pytest.approx(s["raw_score"], rel=1e-4)
        assert set(TIMING_KEYS) <= set(s["timings_ms"]) and set(TIMING_KEYS) <= set(r["timings_ms"])
        assert set(r["timings_ms"]) - set(s["timings_ms"]) == {"trigger_to_decision"}
        # the same fields, but for where the line runtime keeps its own copy of the images
        assert set(s) - {"anomaly_map"} <= set(r) | {"mask", "overlay"}
    err = scored[str(folder.parent / "broken.png")]
    assert err["decision"] == "ERROR" and err["error"] and err["inspector"] == insp.id
