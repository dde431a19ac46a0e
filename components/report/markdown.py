"""The run's short Markdown summary (the KFP UI's "Static Markdown" view of the report)."""
from __future__ import annotations

from typing import Any, Dict, List

METRIC_ROWS = (("sparse_categorical_accuracy", "accuracy"),
               ("sparse_top_k_categorical_accuracy", "top-k accuracy"),
               ("sparse_categorical_crossentropy", "loss"))


def _cell(text: Any) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def summary(data: Dict[str, Any]) -> str:
    """Verdict, push, headline metrics (vs. the serving model), failed thresholds, data counts
    and the sections the full report could not build, from ``build.collect*`` data."""
    run = data["summary"]
    verdict = {None: "no verdict", True: "**BLESSED**", False: "**NOT blessed**"}[data["blessed"]]
    lines: List[str] = [f"# lensflow run `{_cell(data['run_id'])}`", "",
                        f"- verdict: {verdict}",
                        f"- pushed: `{_cell(data['pushed_model_dir'])}`"
                        if data.get("pushed_model_dir") else "- pushed: no"]
    if run.get("model_choice"):
        from lensflow.components.trainer.choice import describe

        lines.append(f"- model: {_cell(describe(run['model_choice']))}")
    overall = run.get("metrics") or {}
    if overall:
        split = data.get("evaluation_split") or run.get("evaluation_split") or "?"
        lines += ["", f"## Metrics on the `{_cell(split)}` split", "",
                  "| metric | candidate | serving model |", "|---|---:|---:|"]
        for key, label in METRIC_ROWS:
            if key in overall:
                baseline = overall.get(f"baseline/{key}")
                lines.append(f"| {label} | {overall[key]:.4f} | "
                             f"{'—' if baseline is None else f'{baseline:.4f}'} |")
        if "example_count" in overall:
            lines.append(f"| examples | {overall['example_count']:.0f} | |")
    failed = run.get("failed_thresholds") or []
    if failed:
        lines += ["", "## Failed thresholds", ""] + [f"- {_cell(line)}" for line in failed]
    if data.get("data"):
        d = data["data"]
        dups = d.get("duplicates")
        lines += ["", "## Data", "",
                  f"found {d['found']}, ingested {d['ingested']}, rejected {len(d['rejected'])}, "
                  f"ignored {len(d['ignored'])}", ""]
        if dups:
            lines += [f"duplicate groups {len(dups['groups'])}, label conflicts "
                      f"{dups['label_conflicts']}, copies dropped {dups['dropped']}", ""]
        lines += ["| split | images |", "|---|---:|"]
        lines += [f"| {_cell(split)} | {total} |"
                  for split, total in zip(d["splits"], d["split_totals"])]
    if data.get("drift"):
        drift = data["drift"]
        lines += ["", "## Drift against the serving model's data", "", _cell(drift["message"])]
        lines += [f"- {_cell(line)}" for line in drift["drifted"]]
    if data["errors"]:
        lines += ["", "## Not in this report", ""]
        lines += [f"- {_cell(name)}: {_cell(reason)}" for name, reason in data["errors"].items()]
    lines += ["", "The full report (confusion matrix, calibration, training curves, "
                  "explanations) is the HTML artifact of this task."]
    return "\n".join(lines) + "\n"
