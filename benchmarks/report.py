"""The benchmark's verdicts against the issue's targets, and its results as Markdown tables."""

from __future__ import annotations

SPEEDUP_TARGET = {"resnet18": 2.0, "efficientnet-lite0": 3.0}
FLOOR_TARGET = 1.3
RSS_FLATNESS = 1.10
AUROC_TOL = 0.002


def targets(results: dict) -> list[dict]:
    """One row per target and backbone (and backend where it applies): value, goal, met."""
    rows = []
    for arch, r in results["archs"].items():
        for name, q in r["ratios"].items():
            goal = SPEEDUP_TARGET.get(arch, 2.0)
            rows.append({"arch": arch, "what": f"speed-up vs torch reference, {name}",
                         "value": round(q["speedup_vs_reference"], 2), "goal": f">= {goal}",
                         "met": q["speedup_vs_reference"] >= goal})
            rows.append({"arch": arch, "what": f"total / (bare backbone + dense fp32 stats read), {name}",
                         "value": round(q["total_over_floor"], 2), "goal": f"<= {FLOOR_TARGET}",
                         "met": q["total_over_floor"] <= FLOOR_TARGET})
        ns = sorted({int(k.split("N=")[1]) for k in r["fit"]})
        lo, hi = r["fit"][f"ours N={ns[0]}"], r["fit"][f"ours N={ns[-1]}"]
        ratio = hi["peak_rss_mb"] / lo["peak_rss_mb"]
        rows.append({"arch": arch, "what": f"fit peak RSS N={ns[-1]} / N={ns[0]} (ours)", "value": round(ratio, 3),
                     "goal": f"<= {RSS_FLATNESS}", "met": ratio <= RSS_FLATNESS})
        ref = r["accuracy"]["torch reference"]
        for name, a in r["accuracy"].items():
            if name == "torch reference":
                continue
            for kind in ("image_auroc", "pixel_auroc"):
                diff = a[kind] - ref[kind]
                rows.append({"arch": arch, "what": f"{kind.replace('_', ' ')} {name} - reference",
                             "value": round(diff, 4), "goal": f"|x| <= {AUROC_TOL}", "met": abs(diff) <= AUROC_TOL})
    return rows


def _f(x: float, nd: int = 1) -> str:
    return f"{x:.{nd}f}"


def markdown(results: dict) -> str:
    m, cfg = results["machine"], results["config"]
    out = []
    if results.get("quick"):
        out.append("**Quick smoke run: tiny sizes, the numbers mean nothing.**\n")
    out.append(f"Machine: {m.get('cpu')} ({m.get('hypervisor')} VM), {m.get('cpus')} CPUs "
               f"({m.get('threads_per_core')} thread/core), L2 {m.get('l2')}, L3 {m.get('l3')}, "
               f"{m.get('memory_gib')} GiB RAM, SIMD: {m.get('simd')}; measured read bandwidth "
               f"{_f(results['memory_bandwidth_gbs'])} GB/s (1 GiB buffer). numpy {m.get('numpy')}, "
               f"onnxruntime {m.get('onnxruntime')}, OpenVINO {m.get('openvino')}, torch {m.get('torch')} (reference).")
    out.append(f"\nInput {cfg['size']}x{cfg['size']}, d={cfg['d']}, demo texture '{cfg['texture']}'; "
               f"fits on N={', '.join(map(str, cfg['n_fit']))} good images; scoring and accuracy use the "
               f"N={max(cfg['n_fit'])} fits. Each latency row: {cfg['reps']} calls, interleaved with all the "
               f"others (shared machine).\n")
    for arch, r in results["archs"].items():
        gh, gw = r["grid"]
        sb = r["stats_bytes"]
        out.append(f"### {arch} (grid {gh}x{gw}, d={r['d']}; weights: {r['weights']})\n")
        out.append(f"Scoring reads the statistics as: {r.get('scoring_layout', '?')}.\n")
        out.append("| scoring, batch 1 | median ms | p99 ms | reference / this | this / (backbone + dense fp32 read) "
                   "| this / (backbone + read as held) |")
        out.append("|---|---:|---:|---:|---:|---:|")
        lat = r["latency"]
        for name, q in r["ratios"].items():
            s = lat[f"ours {name}"]
            own = _f(q["total_over_own_read"], 2) if "total_over_own_read" in q else ""
            out.append(f"| edge-inspect, {name} | {_f(s['median_ms'])} | {_f(s['p99_ms'])} | "
                       f"**{_f(q['speedup_vs_reference'], 2)}x** | {_f(q['total_over_floor'], 2)} | {own} |")
        s = lat["torch reference"]
        out.append(f"| torch reference | {_f(s['median_ms'])} | {_f(s['p99_ms'])} | 1.00x | | |")
        for k, s in lat.items():
            if k.startswith("bare backbone"):
                out.append(f"| {k} alone | {_f(s['median_ms'])} | {_f(s['p99_ms'])} | | | |")
        for k, label in (("stats read, dense fp32", f"dense fp32 ({sb['dense_fp32'] / 1e6:.0f} MB)"),
                         ("stats read, as scoring holds them", f"as scoring holds them ({sb['scoring_layout'] / 1e6:.0f} MB)")):
            if k in lat:
                s = lat[k]
                out.append(f"| one read of the statistics, {label} | {_f(s['median_ms'], 2)} | {_f(s['p99_ms'], 2)} "
                           f"| | | |")
        out.append("\n| throughput, batch 8 | images/s | ms/image |")
        out.append("|---|---:|---:|")
        for k, t in r["throughput"].items():
            out.append(f"| {k} | {_f(t['images_per_s'])} | {_f(t['median_ms'])} |")
        out.append("\n| edge-inspect stage medians, batch 1 (ms) | " + " | ".join(
            next(iter(r["stages_ms"].values())).keys()) + " |")
        out.append("|---|" + "---:|" * len(next(iter(r["stages_ms"].values()))))
        for k, st in r["stages_ms"].items():
            out.append(f"| {k} | " + " | ".join(_f(v, 2) for v in st.values()) + " |")
        out.append("\n| fit | images/s | peak RSS MB | RSS before the first image MB |")
        out.append("|---|---:|---:|---:|")
        for k, f in r["fit"].items():
            out.append(f"| {k.replace('ours', 'edge-inspect').replace('reference', 'torch reference')} | "
                       f"{_f(f['images_per_s'])} | {f['peak_rss_mb']:.0f} | {f['rss_before_mb']:.0f} |")
        out.append("\n| accuracy | image AUROC | pixel AUROC |")
        out.append("|---|---:|---:|")
        for k, a in r["accuracy"].items():
            out.append(f"| {k} | {a['image_auroc']:.4f} | {a['pixel_auroc']:.4f} |")
        out.append("\nRuntimes: " + "; ".join(f"{k}: `{v}`" for k, v in r.get("backends", {}).items()) + ".")
        out.append(f"\nMean relative difference between edge-inspect (onnxruntime) and reference anomaly maps: "
                   f"{r['map_rel_diff']:.2e}.\n")
    out.append("### Targets\n")
    out.append("| backbone | target | value | goal | met |")
    out.append("|---|---|---:|---|---|")
    for t in results["targets"]:
        out.append(f"| {t['arch']} | {t['what']} | {t['value']} | {t['goal']} | {'yes' if t['met'] else '**no**'} |")
    return "\n".join(out) + "\n"
