"""The benchmark measures what it says: the torch reference computes the same PaDiM as edge,
the harness runs every contender, the verdicts follow the numbers. No timed assertions."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from benchmarks.report import markdown, targets  # noqa: E402
from benchmarks.timing import interleaved, make_reader, summary_ms  # noqa: E402
from benchmarks.torch_reference import TorchPadim, gaussian_kernel1d  # noqa: E402
from edge.bundle import Tap  # noqa: E402
from edge.padim.embed import embed, make_spec  # noqa: E402
from edge.padim.moments import Moments  # noqa: E402
from edge.padim.score import full_res_map, mahalanobis  # noqa: E402
from edge.padim.stats import gaussian_from_moments  # noqa: E402


class _TwoTaps(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a = torch.nn.Conv2d(3, 6, 4, 4)
        self.b = torch.nn.Conv2d(6, 5, 2, 2)

    def forward(self, x):
        a = torch.relu(self.a(x))
        return a, torch.relu(self.b(a))


def test_reference_computes_the_same_padim_as_edge():
    net = _TwoTaps().eval()
    spec = make_spec((Tap("a", 4, 6), Tap("b", 8, 5)), (32, 32), d=7, seed=0)
    rng = np.random.default_rng(0)
    train = [rng.normal(size=(8, 3, 32, 32)).astype(np.float32) for _ in range(5)]
    test = rng.normal(size=(3, 3, 32, 32)).astype(np.float32)

    ref = TorchPadim(net, spec.channel_idx)
    ref.fit(iter(train))

    def emb(x):
        with torch.no_grad():
            a, b = net(torch.from_numpy(x))
        return embed({"a": a.numpy(), "b": b.numpy()}, spec)

    m = Moments.empty(emb(train[0]).mean(axis=0).T.astype(np.float64))
    for x in train:
        m.add(emb(x))
    stats = gaussian_from_moments(m, spec.channel_idx, spec.grid, eps=0.01, shrinkage="none")

    ours = mahalanobis(emb(test), stats)
    theirs = ref.distances(torch.from_numpy(test))[:, 0].numpy()
    np.testing.assert_allclose(ours, theirs, rtol=2e-3, atol=1e-3)

    maps, scores = ref.score(test)
    for i in range(3):  # same upsample and sigma-4 blur; borders differ only by the reflect convention
        ours_map = full_res_map(ours[i], (32, 32), 4.0)
        np.testing.assert_allclose(ours_map[8:-8, 8:-8], maps[i][8:-8, 8:-8], rtol=2e-2)
        assert scores[i] == pytest.approx(maps[i].max())


def test_reference_blur_kernel_is_anomalibs():
    k = gaussian_kernel1d(4.0)
    assert k.numel() == 33 and float(k.sum()) == pytest.approx(1.0)


def test_interleaved_runs_every_contender_each_round():
    calls = []
    fns = {n: (lambda i, n=n: calls.append((n, i))) for n in "abc"}
    out = interleaved(fns, reps=4, warmup=1)
    assert {k: v.size for k, v in out.items()} == {"a": 4, "b": 4, "c": 4}
    rounds = calls[3:]
    assert [c[0] for c in rounds[:3]] == ["a", "b", "c"] and [c[0] for c in rounds[3:6]] == ["b", "c", "a"]
    s = summary_ms(np.array([0.001, 0.002, 0.003]))
    assert s["median_ms"] == pytest.approx(2.0) and s["n"] == 3


def test_reader_touches_every_array():
    arrays = [np.ones((4, 3, 5), np.float32), np.full((2, 7), 2, np.float32)]
    got = make_reader(arrays)()
    assert [g.shape for g in got] == [(12,), (2,)]
    np.testing.assert_array_equal(got[1], [14, 14])


def _fake_results(speedup_ms=(10.0, 40.0), rss=(100.0, 105.0), auroc=(0.95, 0.951)):
    ours_ms, ref_ms = speedup_ms
    lat = {"ours onnxruntime fp32": {"median_ms": ours_ms, "p99_ms": ours_ms, "n": 3},
           "torch reference": {"median_ms": ref_ms, "p99_ms": ref_ms, "n": 3},
           "bare backbone onnxruntime fp32": {"median_ms": 6.0, "p99_ms": 6.0, "n": 3},
           "stats read": {"median_ms": 3.0, "p99_ms": 3.0, "n": 3}}
    arch = {"weights": "x", "grid": [4, 4], "d": 3, "latency": lat,
            "stats_bytes": {"scoring_layout": 1, "dense_fp32": 2, "reference_inv_cov": 2},
            "ratios": {"onnxruntime fp32": {"speedup_vs_reference": ref_ms / ours_ms,
                                            "total_over_floor": ours_ms / 9.0, "floor_ms": 9.0}},
            "throughput": {"ours onnxruntime fp32": {"images_per_s": 100.0, "median_ms": 10.0}},
            "stages_ms": {"onnxruntime fp32": {"infer": 6.0, "mahalanobis": 3.0}},
            "fit": {"ours N=50": {"images_per_s": 5, "peak_rss_mb": rss[0], "rss_before_mb": 50},
                    "ours N=500": {"images_per_s": 5, "peak_rss_mb": rss[1], "rss_before_mb": 50}},
            "accuracy": {"ours onnxruntime fp32": {"image_auroc": auroc[0], "pixel_auroc": 0.9},
                         "torch reference": {"image_auroc": auroc[1], "pixel_auroc": 0.9}},
            "map_rel_diff": 1e-4}
    return {"quick": True, "config": {"size": 256, "d": 3, "n_fit": [50, 500], "texture": "metal", "reps": 3},
            "machine": {"cpu": "test"}, "memory_bandwidth_gbs": 10.0, "archs": {"resnet18": arch}}


@pytest.mark.parametrize("kw,failing", [
    ({}, set()),
    ({"speedup_ms": (30.0, 40.0)}, {"speed-up", "total"}),
    ({"rss": (100.0, 150.0)}, {"fit peak"}),
    ({"auroc": (0.95, 0.96)}, {"image auroc"}),
])
def test_targets_follow_the_numbers(kw, failing):
    res = _fake_results(**kw)
    rows = targets(res)
    missed = [r["what"] for r in rows if not r["met"]]
    assert all(any(w.startswith(f) for f in failing) for w in missed)
    assert all(any(w.startswith(f) for w in missed) for f in failing)
    res["targets"] = rows
    md = markdown(res)
    assert "torch reference" in md and "| resnet18 |" in md
    json.dumps(res)  # results.json must be plain JSON


@pytest.mark.slow
def test_quick_benchmark_runs_end_to_end(tmp_path):
    pytest.importorskip("openvino")
    from benchmarks.run import main

    assert main(["--quick", "--workdir", str(tmp_path / "w"), "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "results.json").read_text())
    for r in res["archs"].values():
        assert r["ratios"] and all(q["speedup_vs_reference"] > 0 for q in r["ratios"].values())
        assert "torch reference" in r["accuracy"]
    assert (tmp_path / "results.md").read_text().count("### ") >= 3


def test_speed_vs_before_table_states_both_ratios():
    from benchmarks.speed_vs_before import markdown as vs_markdown

    run = {"category": "coins", "n_images": 16, "backend": {"before": "onnxruntime", "now": "openvino",
                                                           "now, onnxruntime": "onnxruntime"},
           "ms_per_image": {"before": 16.0, "now": 10.0, "now, onnxruntime": 15.0}, "ratio_now_over_before": 0.625,
           "ratio_now_onnxruntime_over_before": 0.9375, "calls": {"now": 12}, "load_average": [[1, 1, 1], [2, 2, 2]]}
    md = vs_markdown({"rev": "abc1234", "command": "python -m benchmarks.speed_vs_before", "when": "now",
                      "machine": {"cpu": "x", "cpus": 2}, "runs": [run]})
    assert "| coins | 16 | 16.0 (onnxruntime) | 10.0 (openvino) | 0.62 | 15.0 | 0.94 |" in md
    assert "before #9 (abc1234)" in md and "12 calls" in md


def test_cascade_folders_summarises_every_folder_and_counts_where_each_target_held():
    from benchmarks.cascade_folders import folder_row, summary

    def run(seed, auroc, dice, share, met_share):
        return {"line_seed": seed, "gate": 0.7,
                "segmenter_alone": {"image_auroc": auroc, "dice": dice,
                                    "confusion": {"tp": 20, "fn": 12, "fp": 10, "tn": 260}},
                "cascade": {"confusion": {"tp": 19}, "gate_pass_share": share,
                            "time_ms_per_image": {"ratio": 0.4}},
                "alone_in_cascade_run": {"tp": 20},
                "verdicts": [{"target": "share", "measured": "", "met": met_share},
                             {"target": "detection", "measured": "", "met": True}]}

    rows = [folder_row(run(2, 0.94, 0.43, 0.23, True)), folder_row(run(3, 0.88, 0.32, 0.31, False))]
    assert rows[0]["caught_alone"] == 20 and rows[0]["n_defect"] == 32 and rows[1]["n_good"] == 270
    assert rows[1]["cascade_caught"] == 19 and rows[1]["alone_caught_in_cascade_run"] == 20
    s = summary(rows)
    assert s["mean"]["image_auroc"] == pytest.approx(0.91) and s["mean"]["dice"] == pytest.approx(0.375)
    assert s["worst"] == {"image_auroc": 0.88, "dice": 0.32, "share": 0.31, "time_ratio": 0.4}
    assert s["met_on"] == {"share": 1, "detection": 2} and s["n_folders"] == 2
