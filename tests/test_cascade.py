"""Cascades (edge/cascade/): the TOML, gating and skipping, voting, one backbone pass, records, CLI, station."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from edge.bundle import load_bundle
from edge.cascade import Cascade, CascadeSpec, StageSpec, load_spec, open_cascade
from edge.cascade.evaluate import mix_items
from edge.cli import cli
from edge.config import config_problems
from edge.daemon import serve
from edge.dataset import load_category
from edge.errors import BundleError, ConfigError
from edge.fitting import FitOptions, fit_inspector
from edge.imageio import read_image
from edge.padim.tiling import Tiling
from edge.records import read_records
from edge.scoring import score_paths
from edge.stage import TIMING_KEYS, Inspection, ModelStage, run_stage

from .parts import part_folder
from .runtime_helpers import records, station

MINIMAL = """\
[[stage]]
name = "gate"
inspector = "insp"       # a PaDiM inspector; or model = "BUNDLE" for a classifier
[[stage]]
name = "seg"
model = "seg-bundle"
when = "suspicious"      # run only when the previous stage's score >= gate
gate = 0.7               # on the previous stage's normalised score (1.0 = its threshold)
"""


def _fit_tiny(tmp_path_factory, name, tiny_bundle, tiny_category, **opts):
    """A d=12 inspector on the tiny backbone and category, with ``opts`` for FitOptions."""
    out = tmp_path_factory.mktemp(name) / "inspector"
    fit_inspector(sorted((tiny_category / "train" / "good").glob("*.png")), out, tiny_bundle,
                  FitOptions(d=12, seed=3, batch_size=4, **opts))
    return out


@pytest.fixture(scope="module")
def second_inspector(tmp_path_factory, tiny_bundle, tiny_category):
    """Another PaDiM inspector on the same tiny backbone (d=12): a later stage sharing the backbone pass
    (without registration, which feeds each image's own registered tensors)."""
    return _fit_tiny(tmp_path_factory, "insp2", tiny_bundle, tiny_category, register="off")


@pytest.fixture(scope="module")
def registered_inspector(tmp_path_factory, tiny_bundle):
    """An aligned inspector with the default registration (registration.py), fitted on a positioned part
    that sits a little off in every photo: on the tiny category's surface `--register auto` finds nothing
    to correct and does not register."""
    out = tmp_path_factory.mktemp("insp4")
    good = part_folder(out / "good", 12)
    fit_inspector(good, out / "inspector", tiny_bundle, FitOptions(d=12, seed=3, batch_size=4, mode="aligned"))
    return out / "inspector"


@pytest.fixture(scope="module")
def tiled_inspector(tmp_path_factory, tiny_bundle, tiny_category):
    """Same backbone but 1x2 tiles: different input tensors, so it cannot share the first pass."""
    out = tmp_path_factory.mktemp("insp3") / "inspector"
    fit_inspector(sorted((tiny_category / "train" / "good").glob("*.png")), out, tiny_bundle,
                  FitOptions(d=12, batch_size=4, tiling=Tiling(1, 2, "shared")))
    return out


@pytest.fixture
def minimal_cascade(tmp_path, tiny_inspector_ro, second_inspector):
    """The issue's minimal TOML, as written, beside the two stages it names (relative paths)."""
    shutil.copytree(tiny_inspector_ro, tmp_path / "insp")
    shutil.copytree(second_inspector, tmp_path / "seg-bundle")
    (tmp_path / "cascade.toml").write_text(MINIMAL)
    return tmp_path / "cascade.toml"


def _test_images(cat, n=None):
    paths = sorted((cat / "test").rglob("*.png"))[:n]
    return paths, [read_image(p) for p in paths]


def _count_calls(stage: ModelStage) -> list[int]:
    calls = [0]
    real = stage.backend.infer

    def counted(feeds):
        calls[0] += 1
        return real(feeds)

    stage.backend.infer = counted
    return calls


def _cascade(stages, gate=None, when=None, vote=None) -> Cascade:
    names = [f"s{i}" for i in range(len(stages))]
    specs = [StageSpec(name=names[0], inspector="x")] + [StageSpec(name=n, model="x", when=when, gate=gate)
                                                          for n in names[1:]]
    return Cascade(CascadeSpec(stage=specs, vote=vote), stages)


def test_the_minimal_toml_works_as_written(minimal_cascade, tiny_category):
    spec = load_spec(minimal_cascade)
    assert [s.name for s in spec.stage] == ["gate", "seg"]
    assert spec.stage[0].path == str(minimal_cascade.parent / "insp")  # against the TOML's folder
    assert spec.stage[1].runs_when == "suspicious" and spec.stage[1].gate_value == 0.7
    casc = open_cascade(minimal_cascade)
    assert isinstance(casc, ModelStage) and casc.kind == "cascade" and casc.threshold == 1.0
    _, imgs = _test_images(tiny_category)
    res = run_stage(casc, imgs)
    for r in res:
        gate, seg = r.stages
        assert gate["name"] == "gate" and gate["ran"] and seg["name"] == "seg"
        assert seg["ran"] == (gate["score"] >= 0.7)
        decider = seg if seg["ran"] else gate
        assert r.decision == decider["decision"] and r.score == pytest.approx(decider["score"], abs=1e-5)
        assert tuple(r.timings_ms) == TIMING_KEYS
    assert any(r.stages[1]["ran"] for r in res) and not all(r.stages[1]["ran"] for r in res)


def test_gates_skip_later_stages_and_the_last_stage_that_ran_decides(tiny_inspector_ro, second_inspector,
                                                                     tiny_category):
    from edge.stage import open_stage

    _, imgs = _test_images(tiny_category)
    a, b = open_stage(tiny_inspector_ro), open_stage(second_inspector)
    alone_a, alone_b = run_stage(a, imgs), run_stage(b, imgs)
    never = run_stage(_cascade([a, b], gate=1e9), imgs)
    for r, ra in zip(never, alone_a):  # the gate passes everything: the first stage decides alone
        assert r.stages[1] == {"name": "s1", "ran": False}
        assert r.decision == ra.decision and r.score == pytest.approx(ra.score, rel=1e-6)
    always = run_stage(_cascade([a, b], gate=1e-9), imgs)
    for r, rb in zip(always, alone_b):  # every image goes on: the second stage judges all of them
        assert r.stages[1]["ran"] and r.decision == rb.decision and r.score == pytest.approx(rb.score, rel=1e-6)
    gate = float(np.median([r.score for r in alone_a]))
    some = run_stage(_cascade([a, b], gate=gate), imgs)
    for r, ra, rb in zip(some, alone_a, alone_b):
        assert r.stages[1]["ran"] == (ra.score >= gate)
        want = rb if ra.score >= gate else ra
        assert r.decision == want.decision and r.score == pytest.approx(want.score, rel=1e-6)
        assert r.mask is not None and r.mask.shape == want.mask.shape
    # the map of a PaDiM stage is rescaled so that 1.0 is that stage's threshold, as the cascade's score is
    assert some[0].anomaly_map.max() == pytest.approx(some[0].score, rel=1e-4)


def test_stages_on_the_same_backbone_share_one_pass(tiny_inspector_ro, second_inspector, tiled_inspector,
                                                    registered_inspector, tiny_category):
    from edge.stage import open_stage

    _, imgs = _test_images(tiny_category, 8)
    # an inspector that registers each image to its reference view feeds its own tensors: no sharing
    reg = open_stage(registered_inspector)
    assert reg.registration is not None
    assert _cascade([reg, open_stage(second_inspector)], gate=1e-9).shared == [True, False]
    assert _cascade([open_stage(second_inspector), reg], gate=1e-9).shared == [True, False]
    a, b = open_stage(tiny_inspector_ro), open_stage(second_inspector)
    casc = _cascade([a, b], gate=1e-9)
    assert casc.shared == [True, True]
    ca, cb = _count_calls(a), _count_calls(b)
    res = run_stage(casc, imgs)
    assert ca[0] == 1 and cb[0] == 0  # the backbone ran once for the batch, for both stages
    assert all(r.stages[1]["ran"] and r.stages[1]["timings_ms"]["infer"] == 0.0 for r in res)
    # a gated subset takes its own rows of the shared outputs: same scores as running the stage alone
    alone_b = run_stage(b, imgs)
    half = float(np.median([r.stages[0]["score"] for r in res]))
    sub = run_stage(_cascade([a, b], gate=half), imgs)
    for r, rb in zip(sub, alone_b):
        if r.stages[1]["ran"]:
            assert r.stages[1]["score"] == pytest.approx(round(rb.score, 5), abs=2e-5)
    # different input tensors (tiles): no sharing, the later stage runs its own pass on what passes the gate
    t = open_stage(tiled_inspector)
    casc2 = _cascade([a, t], gate=1e-9)
    assert casc2.shared == [True, False]
    ct = _count_calls(t)
    run_stage(casc2, imgs)
    assert ct[0] == 1


def test_stages_that_compute_in_another_precision_do_not_share_a_pass(tiny_inspector_ro, second_inspector,
                                                                         tiny_category):
    """Two inspectors on one bundle, one approved for bf16 on the runtime: the bf16 stage must not be fed
    the fp32 stage's features (nor the reverse), so each runs its own pass; same precision still shares."""
    from edge.backends import reduced_precisions
    from edge.inspector import Inspector

    _, imgs = _test_images(tiny_category, 4)
    a = Inspector.load(tiny_inspector_ro, "openvino", "CPU", inference_precision="fp32")
    if "bf16" not in reduced_precisions(a.backend):
        pytest.skip("this CPU has no bf16 under OpenVINO")
    b32 = Inspector.load(second_inspector, "openvino", "CPU", inference_precision="fp32")
    b16 = Inspector.load(second_inspector, "openvino", "CPU", inference_precision={"openvino/cpu": "bf16"})
    assert b16.backend.compute == "bf16"
    assert _cascade([a, b32], gate=1e-9).shared == [True, True]
    casc = _cascade([a, b16], gate=1e-9)
    assert casc.shared == [True, False]
    assert casc.describe()["stages"][1]["shares_first_pass"] is False
    calls = _count_calls(b16)
    res = run_stage(casc, imgs)
    assert calls[0] == 1 and all(r.stages[1]["ran"] for r in res)  # its own (bf16) pass
    # the reverse: a bf16 first stage and an fp32 later stage
    a16 = Inspector.load(tiny_inspector_ro, "openvino", "CPU", inference_precision={"openvino/cpu": "bf16"})
    assert _cascade([a16, b32], gate=1e-9).shared == [True, False]


class FakeStage:
    """A model stage whose score is the image's mean grey level / 100 × ``factor`` (runs on a counting backend)."""

    kind = "classifier"

    def __init__(self, bundle, factor: float, name: str):
        self.bundle, self.factor, self.warnings = bundle, factor, []
        self.calls = self.rows = 0
        stage = self

        class _Backend:
            input_name, output_names, variant = "x", ["x"], f"fake/{name}"

            def infer(self, feeds):
                stage.calls += 1
                stage.rows += len(feeds["x"])
                return {"x": feeds["x"]}

        _Backend.name = name
        self.backend = _Backend()
        self._id = name

    @property
    def id(self):
        return self._id

    @property
    def threshold(self):
        return 2.0

    def tensors(self, images, screen=True):
        return np.asarray([[float(im.mean())] for im in images], np.float32)

    def results(self, outputs, images):
        out = []
        for v in outputs["x"][:, 0]:
            raw = float(v) / 100 * self.factor
            out.append(Inspection(raw, raw / self.threshold, "NG" if raw / self.threshold >= 1 else "OK", None, None))
        return out

    def describe(self):
        return {"kind": self.kind, "id": self.id}


def _grey(*levels):
    return [np.full((8, 8, 3), v, np.uint8) for v in levels]


def test_stages_that_always_run_can_vote_any_or_all(tiny_bundle):
    b = load_bundle(tiny_bundle)
    # scores: low = v/100, high = 2v/100 → NG from v = 200 (low) and v = 100 (high)
    imgs = _grey(50, 150, 250)
    low, high = FakeStage(b, 1.0, "low"), FakeStage(b, 2.0, "high")
    anyv = run_stage(_cascade([low, high], vote="any"), imgs)
    assert [r.decision for r in anyv] == ["OK", "NG", "NG"]
    assert [r.score for r in anyv] == pytest.approx([0.5, 1.5, 2.5])  # the highest score
    allv = run_stage(_cascade([low, high], vote="all"), imgs)
    assert [r.decision for r in allv] == ["OK", "OK", "NG"]
    assert [r.score for r in allv] == pytest.approx([0.25, 0.75, 1.25])  # the lowest
    assert all(e["ran"] for r in anyv + allv for e in r.stages)
    low.calls = high.calls = low.rows = high.rows = 0
    seq = run_stage(_cascade([low, high], gate=0.7), imgs)  # 0.25, 0.75, 1.25 → second runs on the last two
    assert [r.stages[1]["ran"] for r in seq] == [False, True, True]
    assert [r.decision for r in seq] == ["OK", "NG", "NG"]
    # different backends: one pass each, the second on the 2 images that passed the gate
    assert (low.calls, low.rows, high.calls, high.rows) == (1, 3, 1, 2)
    assert not _cascade([low, high]).shared[1]
    gated = CascadeSpec(stage=[StageSpec(name="a", inspector="x"), StageSpec(name="b", model="y", gate=0.7)],
                        vote="any")
    assert any(where == "stage[1].when" and "vote = 'any' needs every stage to run" in msg
               for where, msg in gated.problems())


def test_bad_cascade_files_say_what_is_wrong_where(tmp_path, tiny_inspector_ro):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[stage]]\nname = "a"\ninspector = "i"\nmodel = "m"\ngate = 2\n'
                   '[[stage]]\nname = "a"\nmodle = "x"\n')
    with pytest.raises(ConfigError) as e:
        load_spec(bad)
    msg = e.value.message
    for where in ("stage[0].inspector: give exactly one", "stage[1].modle: unknown key",
                  "stage[1].name: 'a' is already", "stage[0].when: the first stage"):
        assert where in msg
    bad.write_text('vote = "some"\n[[stage]]\nname = "a"\ninspector = "i"\n')
    with pytest.raises(ConfigError, match="vote: must be one of 'any', 'all', not 'some'"):
        load_spec(bad)
    one = tmp_path / "one.toml"
    one.write_text('[[stage]]\nname = "a"\ninspector = "i"\n')
    with pytest.raises(ConfigError, match="two or more"):
        load_spec(one)
    missing = tmp_path / "missing.toml"
    missing.write_text(f'[[stage]]\nname = "a"\ninspector = "{tiny_inspector_ro}"\n'
                       '[[stage]]\nname = "b"\nmodel = "nowhere"\nwhen = "suspicious"\n')
    with pytest.raises(BundleError, match="cascade stage 'b'.*does not exist"):
        open_cascade(missing)
    backwards = tmp_path / "backwards.toml"
    backwards.write_text(f'[[stage]]\nname = "a"\ninspector = "{tiny_inspector_ro}"\n'
                         f'[[stage]]\nname = "b"\ninspector = "{tiny_inspector_ro}"\n')
    assert open_cascade(backwards).spec.stage[1].runs_when == "always"


def test_score_writes_one_stages_entry_per_configured_stage(minimal_cascade, tiny_category, tmp_path):
    paths, _ = _test_images(tiny_category)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    casc = open_cascade(minimal_cascade)
    summary = score_paths(casc, paths + [broken], tmp_path / "out")
    recs = {r["image"]: r for r in read_records(tmp_path / "out" / "results.jsonl")}
    assert summary.total == len(paths) + 1 and recs[str(broken)]["decision"] == "ERROR"
    for p in paths:
        r = recs[str(p)]
        assert [s["name"] for s in r["stages"]] == ["gate", "seg"] and r["inspector"] == casc.id
        for s in r["stages"]:
            assert set(s) == ({"name", "ran", "decision", "score", "raw_score", "timings_ms"} if s["ran"]
                              else {"name", "ran"})
        assert r["stages"][0]["ran"]


def test_cli_score_and_eval_with_a_cascade(minimal_cascade, tiny_category, tmp_path):
    runner = CliRunner()
    r = runner.invoke(cli, ["score", str(tiny_category / "test"), "--cascade", str(minimal_cascade),
                            "--out", str(tmp_path / "s")])
    assert r.exit_code == 0, r.output
    recs = read_records(tmp_path / "s" / "results.jsonl")
    assert len(recs) == len(load_category(tiny_category).test) and all(len(x["stages"]) == 2 for x in recs)
    r = runner.invoke(cli, ["eval", str(tiny_category), "--cascade", str(minimal_cascade), "--good-share", "0.8",
                            "--out", str(tmp_path / "e")])
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert m["n_good"] == 4 and m["n_defect"] == 1 and m["good_share"] == pytest.approx(0.8)
    gate, seg = m["stages"]
    assert (gate["name"], seg["name"]) == ("gate", "seg") and gate["share_ran"] == 1.0
    assert m["gate_pass_share"] == seg["share_ran"] == seg["ran"] / m["n_images"]
    sweep = {g["gate"]: g for g in m["gate_sweep"]}
    assert sweep[0.7]["share_ran"] == pytest.approx(seg["share_ran"])  # the configured gate is on the sweep
    assert sweep[0.7]["defects_not_reached"] == seg["defects_not_reached"]
    assert [g["share_ran"] for g in m["gate_sweep"]] == sorted((g["share_ran"] for g in m["gate_sweep"]), reverse=True)
    assert all(g["caught_not_reached"] <= g["defects_not_reached"] for g in m["gate_sweep"])
    # the gate's own held-out good scores from fit (normalised by its threshold) say what it sends on
    from edge.inspector_dir import Calibration
    cal = Calibration.read(minimal_cascade.parent / "insp")
    fit_good = cal.held_out_good_scores() / cal.image_threshold
    assert m["first_stage_held_out_good"] == fit_good.size >= 3
    assert sweep[0.7]["good_sent_by_fit"] == pytest.approx(float((fit_good >= 0.7).mean()))
    lo, hi = sweep[0.7]["good_sent_by_fit_90"]
    assert lo <= sweep[0.7]["good_sent_by_fit"] <= hi and hi - lo > 0.2  # a handful of images: a wide range
    assert "held-out good scores from fit" in r.output and "90% range of what the line may give" in r.output
    b = m["gate_within_budget"]  # the suggested gate for the default 30% budget, on a 90%-good line
    assert b["budget"] == 0.3 and b["line_good_share"] == 0.8 and b["share"] <= b["share_top"]
    assert b["n_good"] == m["first_stage_held_out_good"] and b["n_defect"] == 1
    # one defective image and a handful of good ones: no gate can promise 30% at the top of its range
    assert not b["within"] and b["share_top"] > 0.3 and "no gate keeps to it" in r.output
    assert m["alone"]["stage"] == "seg" and m["alone"]["confusion"]["tp"] + m["alone"]["confusion"]["fn"] == 1
    t = m["time_ms_per_image"]
    assert t["cascade"] > 0 and t["alone"] > 0 and t["ratio"] == pytest.approx(t["cascade"] / t["alone"], rel=1e-2)
    assert "time per image: cascade" in r.output and "seg alone" in r.output and "ran on" in r.output
    for f in ("report.html", "roc.png", "scores.png", "scores.jsonl", "test-results/results.jsonl"):
        assert (tmp_path / "e" / f).is_file()
    r = runner.invoke(cli, ["eval", str(tiny_category), "--good-share", "0.9"])
    assert r.exit_code == 2 and "--cascade" in r.output


def test_mixing_keeps_most_parts_good(tiny_category):
    items = load_category(tiny_category).test  # 4 good, 6 defective
    assert mix_items(items, None) == items
    m = mix_items(items, 0.8)
    assert sum(not t.is_defect for t in m) == 4 and sum(t.is_defect for t in m) == 1
    m = mix_items(items, 0.5)
    assert sum(t.is_defect for t in m) == 4
    assert mix_items(items, 0.8, seed=5) == mix_items(items, 0.8, seed=5)


def test_loading_a_cascade_on_the_line_warms_every_stage(tiny_inspector_ro, second_inspector):
    from edge.pipeline.model_stages import StageSlot
    from edge.stage import open_stage

    a, b = open_stage(tiny_inspector_ro), open_stage(second_inspector)
    ca, cb = _count_calls(a), _count_calls(b)
    StageSlot(lambda: _cascade([a, b], gate=1e9))  # the gate passes the grey probe: b would stay cold
    assert ca[0] >= 1 and cb[0] >= 1


def test_a_station_config_with_a_cascade_runs(minimal_cascade, tiny_inspector_ro, second_inspector, tmp_path):
    cfg = station(tiny_inspector_ro, tmp_path / "run", cascade={"file": str(minimal_cascade)})
    summary = serve(cfg, max_frames=6)
    recs = records(tmp_path / "run" / "decisions.jsonl")
    assert len(recs) == 6 and summary is not None
    assert all([s["name"] for s in r["stages"]] == ["gate", "seg"] for r in recs)
    inline = station(tiny_inspector_ro, tmp_path / "run2", cascade={"stage": [
        {"name": "gate", "inspector": str(tiny_inspector_ro)},
        {"name": "second", "inspector": str(second_inspector), "when": "suspicious", "gate": 0.5}]})
    serve(inline, max_frames=4)
    assert all(r["stages"][1]["name"] == "second" for r in records(tmp_path / "run2" / "decisions.jsonl"))


def test_validate_config_checks_the_cascade(minimal_cascade, tmp_path):
    ok = tmp_path / "ok.toml"
    ok.write_text(f'[capture]\ndrop_policy = "every"\n[cascade]\nfile = "{minimal_cascade}"\n')
    assert config_problems(ok) == []
    bad = tmp_path / "bad.toml"
    bad.write_text('[capture]\ndrop_policy = "every"\n[cascade]\n[[cascade.stage]]\nname = "a"\n')
    r = CliRunner().invoke(cli, ["validate-config", str(ok), str(bad)])
    assert r.exit_code == 5
    assert f"{ok}: ok" in r.output and "cascade.stage[0].inspector: give exactly one" in r.output
    assert "cascade.stage: a cascade chains two or more" in r.output


def test_the_target_check_reads_the_run_it_is_given():
    from benchmarks.cascade_targets import verdicts

    m = {"confusion": {"tp": 19}, "alone": {"stage": "seg", "confusion": {"tp": 20}}, "n_defect": 20,
         "n_good": 180, "n_images": 200, "good_share": 0.9, "stages": [{"share_ran": 1.0}, {"share_ran": 0.2}],
         "time_ms_per_image": {"cascade": 30.0, "alone": 60.0, "ratio": 0.5}}
    assert [ok for *_, ok in verdicts(m)] == [True, True, True, True]
    m["confusion"]["tp"], m["stages"][1]["share_ran"], m["time_ms_per_image"]["ratio"] = 18, 0.31, 0.61
    m["good_share"] = 0.5
    assert [ok for *_, ok in verdicts(m)] == [False, False, False, False]


def test_the_real_photo_benchmark_picks_its_gate_from_the_training_folder(tmp_path):
    from benchmarks.cascade_realdata import _split_folder, pick_gate

    rows = [{"kind": "good", "first_stage_score": s, "seg_alone": 0.1}
            for s in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)] + \
           [{"kind": "scratch", "first_stage_score": s, "seg_alone": a}
            for s, a in ((0.35, 0.2), (0.9, 1.4), (1.5, 3.0), (2.0, 0.5))]
    (tmp_path / "scores.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    # the segmenter catches the defects at 0.9 and 1.5: gate 0.9 passes both; a 90%-good mix sends
    # 2 of 10 good (0.9 x 0.2) and 3 of 4 defects (0.1 x 0.75) on = 25.5%
    g, share, why = pick_gate(tmp_path / "scores.jsonl", 0.9, 0.28)
    assert g == 0.9 and share == pytest.approx(0.255) and "passes all 2 defects" in why
    # at most 25%: the gate must rise to 1.0 (14%), losing one caught defect
    g, share, why = pick_gate(tmp_path / "scores.jsonl", 0.9, 0.25)
    assert g == 1.0 and share == pytest.approx(0.9 * 0.1 + 0.1 * 0.5) and "max-share" in why
    # the good parts' share from the gate's held-out good scores from fit instead (2 of 20 at or over 0.9)
    fit_good = [0.05 * i for i in range(1, 18)] + [0.88, 0.95, 1.2]
    g, share, why = pick_gate(tmp_path / "scores.jsonl", 0.9, 0.25, good_scores=fit_good)
    assert g == 0.9 and share == pytest.approx(0.9 * 2 / 20 + 0.1 * 0.75) and "passes all 2 defects" in why
    # the budget rule spends the share: the lowest gate within 25% (0.88: 3 of 20 good, 3 of 4 defects)
    g, share, why = pick_gate(tmp_path / "scores.jsonl", 0.9, 0.25, good_scores=fit_good, rule="budget")
    assert g == 0.88 and share == pytest.approx(0.9 * 3 / 20 + 0.1 * 0.75) and "lowest gate" in why
    # the bound rule leaves the estimate's sampling margin: at 0.88 the top of the 90% ranges of 3 of 20
    # good and 3 of 4 defects sends 40.8% on; 0.9 (2 of 20, 3 of 4) is the lowest gate within 36%
    g, share, why = pick_gate(tmp_path / "scores.jsonl", 0.9, 0.36, good_scores=fit_good, rule="bound")
    assert g == 0.9 and share == pytest.approx(0.9 * 2 / 20 + 0.1 * 0.75) and "35.3%" in why
    # it is the gate `eval --cascade --share-budget` suggests (one rule, edge's)
    from edge.cascade.evaluate import gate_within_budget

    first = np.array([r["first_stage_score"] for r in rows])
    is_bad = np.array([r["kind"] != "good" for r in rows])
    caught = is_bad & np.array([r["seg_alone"] >= 1 for r in rows])
    b = gate_within_budget(first, is_bad, caught, np.array(fit_good), 0.36, 0.9)
    assert b["gate"] == 0.9 and b["share_top"] == pytest.approx(0.353, abs=1e-3) and b["good_from"] == "fit"
    assert (b["defects_not_reached"], b["caught_not_reached"]) == (1, 0)  # the 0.35 one, which it misses anyway
    b = gate_within_budget(first, is_bad, caught, None, 0.36, 0.9)  # good parts from this set's 10
    assert b["good_from"] == "this set" and b["share_top"] <= 0.36 and b["gate"] > 0.9 and b["within"]
    (tmp_path / "x.toml").write_text("")
    r = CliRunner().invoke(cli, ["eval", str(tmp_path), "--cascade", str(tmp_path / "x.toml"), "--share-budget", "0"])
    assert r.exit_code != 0 and "--share-budget 0.0" in r.output
    # the trainer's validation files become a folder eval can read, masks included
    src = tmp_path / "train"
    for f in ("train/good/a.png", "test/good/b.png", "test/scratch/c.png", "ground_truth/scratch/c_mask.png"):
        (src / f).parent.mkdir(parents=True, exist_ok=True)
        (src / f).write_bytes(b"x")
    val = _split_folder(src, ["train/good/a.png", "test/good/b.png", "test/scratch/c.png"], tmp_path / "v")
    assert sorted(str(p.relative_to(val)) for p in val.rglob("*.png")) == [
        "ground_truth/scratch/c_mask.png", "test/good/a.png", "test/good/b.png", "test/scratch/c.png"]


def test_info_describes_a_cascade_file(minimal_cascade, tiled_inspector, tmp_path):
    r = CliRunner().invoke(cli, ["info", str(minimal_cascade)])
    assert r.exit_code == 0, r.output
    c = open_cascade(minimal_cascade, open_runtime=False)
    out = r.output
    assert f"cascade {c.id}" in out and "the last stage that ran decides" in out
    assert "stage 1 'gate': PaDiM inspector" in out and "stage 2 'seg': PaDiM inspector" in out
    assert "runs when gate's score >= 0.7" in out
    assert "shares gate's backbone pass" in out and "backbone passes per image that reaches every stage: 1" in out
    assert "all SHA-256 hashes match" in out
    # a stage on other input tensors (tiles) and a supervised segmenter: each its own pass; a vote
    from .tiny_supervised import make_supervised_bundle

    make_supervised_bundle(tmp_path / "segm", "segmenter", calibration={"method": "f1", "min_area": {"bright": 30}})
    shutil.copytree(tiled_inspector, tmp_path / "tiled")
    (tmp_path / "vote.toml").write_text('vote = "any"\n[[stage]]\nname = "a"\ninspector = "insp"\n'
                                        '[[stage]]\nname = "t"\ninspector = "tiled"\n'
                                        '[[stage]]\nname = "s"\nmodel = "segm"\n')
    r = CliRunner().invoke(cli, ["info", str(tmp_path / "vote.toml")])
    assert r.exit_code == 0, r.output
    assert "every stage runs and votes: NG when any of them say NG" in r.output
    assert "stage 3 's': segmenter tiny-segmenter" in r.output
    assert "min area (px at the input size: bright 30" in r.output
    assert "shares" not in r.output and "backbone passes per image that reaches every stage: 3" in r.output
    # not a cascade: a file that is not TOML, and a TOML with problems
    (tmp_path / "notes.txt").write_text("x")
    r = CliRunner().invoke(cli, ["info", str(tmp_path / "notes.txt")])
    assert r.exit_code == 2 and "cascade .toml" in r.output
    (tmp_path / "bad.toml").write_text('[[stage]]\nname = "only"\ninspector = "insp"\n')
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "edge", "info", str(tmp_path / "bad.toml")], capture_output=True,
                       text=True)
    assert r.returncode == 5 and "two or more" in r.stderr and "Traceback" not in r.stderr


def test_gate_sweep_counts_the_detections_a_gate_would_lose():
    from edge.cascade.evaluate import gate_keeping_catches, gate_sweep

    first = np.array([0.2, 0.4, 0.9, 0.55, 0.75, 1.3])  # the gate's normalised scores
    labels = np.array([False, False, False, True, True, True])
    caught = np.array([False, False, False, False, True, True])  # the second stage alone misses the 0.55 one
    sweep = {g["gate"]: g for g in gate_sweep(first, labels, caught)}
    assert (sweep[0.6]["defects_not_reached"], sweep[0.6]["caught_not_reached"]) == (1, 0)
    assert (sweep[0.8]["defects_not_reached"], sweep[0.8]["caught_not_reached"]) == (2, 1)
    k = gate_keeping_catches(first, labels, caught)
    assert k == {"gate": 0.75, "share_ran": 0.5, "good_ran": pytest.approx(1 / 3), "defects_ran": pytest.approx(2 / 3),
                 "caught": 2, "good_sent_by_fit": None}
    assert gate_keeping_catches(first, labels, np.zeros(6, bool)) is None
    # the gate's held-out good scores from fit (normalised): the good parts each gate would send on
    fit_good = np.array([0.3, 0.5, 0.65, 0.7, 0.72, 0.9, 0.95, 1.05])
    sweep = {g["gate"]: g for g in gate_sweep(first, labels, caught, fit_good)}
    assert sweep[0.6]["good_sent_by_fit"] == pytest.approx(6 / 8)
    assert sweep[0.8]["good_sent_by_fit"] == pytest.approx(3 / 8)
    lo, hi = sweep[0.8]["good_sent_by_fit_90"]  # 3 of 8: the exact 90% interval, 11.1% to 71.1%
    assert (lo, hi) == (pytest.approx(0.1111, abs=1e-4), pytest.approx(0.7108, abs=1e-4))
    assert gate_keeping_catches(first, labels, caught, fit_good)["good_sent_by_fit"] == pytest.approx(3 / 8)
    assert all(g["good_sent_by_fit"] is None for g in gate_sweep(first, labels, caught))
