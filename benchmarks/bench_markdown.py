"""The benchmark results as the markdown tables docs/PERFORMANCE.md quotes."""
from __future__ import annotations

from typing import Dict, List


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _table(header: List[str], rows: List[List[str]]) -> List[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def render(r: Dict) -> str:
    """One markdown document for a results dict from ``benchmarks/run.py``."""
    out = [f"# lensflow benchmarks ({r['started']})", "",
           f"Data: `{r['data']}` — {r['train_images']} train / {r['test_images']} test images; "
           f"model `{r['model']}`, {r['epochs']} epochs, batch {r['batch_size']}; "
           f"{r['machine']['cpus']} CPUs, Python {r['machine']['python']}, "
           f"precision {r['machine'].get('precision', 'float32')}.", ""]
    if "overhead" in r:
        o, c = r["overhead"], r["cache"]
        out += ["## 1. Pipeline overhead", ""] + _table(
            ["side", "wall (s)", "test accuracy"],
            [["`lensflow run` (fresh home)", f"{o['lensflow_wall_seconds']:.0f}",
              f"{o['lensflow_accuracy']:.4f} ({o['lensflow_accuracy_split']} split)"],
             ["plain Keras script", f"{o['plain_keras_wall_seconds']:.0f}",
              f"{o['plain_keras_accuracy']:.4f}"]]) + [
            "", f"Ratio {o['ratio']:.2f}× (target ≤ {o['target_ratio']}×: {_verdict(o['ratio'] <= o['target_ratio'])}).",
            "", "Stage wall seconds of the fresh run: " + ", ".join(
                f"{k} {v:.0f}" for k, v in sorted(o["stage_seconds"].items(), key=lambda kv: -kv[1])),
            ""]
        out += ["## 2. Cache", ""] + _table(
            ["run", "wall (s)", "ratio to first"],
            [["first", f"{c['first_wall_seconds']:.0f}", "1.00"],
             ["unchanged re-run", f"{c['cached_wall_seconds']:.0f}", f"{c['ratio']:.3f}"],
             [c["training_change"], f"{c['training_change_wall_seconds']:.0f}",
              f"{c['training_change_wall_seconds'] / c['first_wall_seconds']:.3f}"]]) + [
            "", f"Unchanged re-run ≤ {c['target_ratio']:.0%} of the first: "
            f"{_verdict(c['ratio'] <= c['target_ratio'])}. Training-only change re-ran "
            f"{', '.join(c['training_change_reran'])}; cached {', '.join(c['training_change_cached'])} "
            f"(only the Trainer onward: {_verdict(c['only_trainer_onward_reran'])}).", ""]
    if "ingestion" in r:
        i = r["ingestion"]
        rows = [[f"lensflow {stage}", f"{v['images']}", f"{v['seconds']:.0f}",
                 f"{v['images_per_second']:.0f}"] for stage, v in i["lensflow"].items()]
        t = i["tf_data_decode_resize"]
        rows.append(["plain tf.data read+decode+resize", f"{t['images']}", f"{t['seconds']:.1f}",
                     f"{t['images_per_second']:.0f}"])
        out += ["## 3. Ingestion and Transform throughput", ""] + _table(
            ["stage", "images", "seconds", "images/s"], rows) + [""]
    if "trainer_input" in r:
        t = r["trainer_input"]
        rates = t["images_per_second"]
        out += ["## 4. Trainer input pipeline", ""] + _table(
            ["input", "training images/s"],
            [["transformed examples (lensflow Trainer)", f"{rates['transformed_examples']:.0f}"],
             ["same arrays in memory", f"{rates['in_memory_arrays']:.0f}"]]) + [
            "", f"Ratio {t['ratio']:.2f}: medians of {t.get('repeats', 1)} alternating runs of "
            f"{t['steps']} steps of {t['batch_size']} "
            f"(target ≥ {t['target_ratio']}: {_verdict(t['ratio'] >= t['target_ratio'])})."]
        if "input_only_images_per_second" in t:
            out += [f"The transformed-examples dataset alone, no model: "
                    f"{t['input_only_images_per_second']:.0f} images/s."]
        out += [""]
    if "serving" in r:
        s = r["serving"]
        rows = [[name, f"{v['p50_ms_batch1']:.2f}", f"{v['p95_ms_batch1']:.2f}",
                 f"{v['images_per_second_batch64']:.0f}"]
                for name, v in (("SavedModel, encoded PNG in", s["saved_model_encoded_png"]),
                                ("bare Keras, decoded tensors in", s["bare_keras_decoded_tensors"]))]
        out += ["## 5. Serving", ""] + _table(
            ["side", "p50 ms (batch 1)", "p95 ms (batch 1)", "images/s (batch 64)"], rows) + [
            "", f"p50 ratio {s['p50_ratio']:.2f}× (target ≤ {s['target_p50_ratio']}×: "
            f"{_verdict(s['p50_ratio'] <= s['target_p50_ratio'])}); batch-64 throughput ratio "
            f"{s['throughput_ratio']:.2f}.", ""]
    if "serving_load" in r:
        s = r["serving_load"]
        refused = ", ".join(f"{k} {v}" for k, v in sorted(s["refused_as_expected"].items()))
        out += ["## 6. Serving under load", ""] + _table(
            ["server", "clients", "requests", "good/s", "p50 ms", "p99 ms", "refused (400)",
             "unexpected", "still serving"],
            [[str(v) for v in (s["server"] + (" + batching" if s.get("batching") else ""),
                               s["clients"], s["requests"], s["good_per_second"], s["p50_ms"],
                               s["p99_ms"], refused, s["unexpected"], s["still_serving"])]]) + [""]
    return "\n".join(out)
