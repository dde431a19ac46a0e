"""Collect everything the run report shows, as plain data (no HTML, no charts).

Sections that need an artifact the run did not produce (a run that stopped at data
validation has no model) are left out with the reason, so a report can always be written.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shlex
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import tensorflow as tf
from tfx.utils import path_utils

from lensflow.components.evaluator.component import class_names_of
from lensflow.components.report import evaluation, predictions, reuse, thresholds
from lensflow.pipeline import summary as run_summary

HISTORY_FILE = "history.json"
MAX_IMAGES = 300
WRONG_COUNT = 12
EXPLAIN_COUNT = 6

log = logging.getLogger(__name__)


def serving_dir(model_uri: str) -> str:
    """Where the Trainer put the SavedModel inside its Model artifact."""
    return path_utils.serving_model_path(model_uri)


def data_section(summary: Dict[str, Any]) -> Dict[str, Any]:
    """Counts per split and class, quarantined and ignored files, ingestion warnings, duplicate
    groups and label conflicts."""
    splits = list(summary["splits"])
    per_split = {s: summary["splits"][s]["per_class"] for s in splits}
    rows = [{"name": name, "counts": [per_split[s].get(name, 0) for s in splits],
             "total": sum(per_split[s].get(name, 0) for s in splits)}
            for name in summary["classes"]]
    return {"splits": splits, "rows": rows,
            "split_totals": [summary["splits"][s]["total"] for s in splits],
            "found": summary["found"], "ingested": summary["ingested"],
            "rejected": summary["rejected"], "ignored": summary["ignored"],
            "warnings": summary.get("warnings", []),
            "duplicates": summary.get("duplicates")}


def evaluated_split(summary: Dict[str, Any]) -> str:
    """The split TFMA evaluated: the one the Evaluator recorded, else (a run read from a bucket,
    where ML Metadata is out of reach) the pipeline's own rule: ``test`` if the data has one."""
    known = set(summary.get("splits", {}))
    if summary.get("evaluation_split") in known:
        return summary["evaluation_split"]
    for split in ("test", "eval"):
        if split in known:
            return split
    raise LookupError(f"cannot tell which split run {summary['run_id']} evaluated")


def evaluation_section(summary: Dict[str, Any], names: Sequence[str]) -> Dict[str, Any]:
    """Slices, confusion matrix, per-class scores, calibration, baseline and thresholds."""
    uri = summary["evaluation_uri"]
    overall = summary["metrics_by_slice"].get("overall", {})
    counts = evaluation.confusion_matrix(uri, len(names))
    top1 = evaluation.calibration_buckets(uri)
    outcomes = thresholds.outcomes(uri)
    return {
        "accuracy": overall.get("sparse_categorical_accuracy"),
        "example_count": overall.get("example_count"),
        "slice_columns": evaluation.SLICE_COLUMNS,
        "slices": evaluation.slice_rows(summary["metrics_by_slice"]),
        "confusion": counts,
        "per_class": evaluation.per_class_rows(names, counts),
        "calibration": {"top1": top1,
                        "ece": evaluation.expected_calibration_error(top1)},
        "comparison": evaluation.comparison_rows(overall),
        "thresholds": outcomes,
        "all_thresholds_passed": all(o["passed"] for o in outcomes),
        "failed_thresholds": summary.get("failed_thresholds", []),
    }


def training_section(model_run_uri: str) -> Dict[str, Any]:
    """history.json and how to open the TensorBoard logs."""
    history_path = os.path.join(model_run_uri, HISTORY_FILE)
    with tf.io.gfile.GFile(history_path) as fh:
        history = json.load(fh)
    local = "://" not in model_run_uri
    return {"history": history, "logdir": model_run_uri,
            "logdir_url": Path(model_run_uri).resolve().as_uri() if local else None,
            "tensorboard_command": f"tensorboard --logdir {shlex.quote(model_run_uri)}"}


def _explain_rows(preds: predictions.Predictions, wrong: List[dict], names: Sequence[str],
                  count: int) -> List[int]:
    """Rows to explain: half the most confidently wrong, then right ones of new classes."""
    rows = [w["row"] for w in wrong[:count // 2]]
    seen = {preds.labels[r] for r in rows}
    for row, (label, predicted) in enumerate(zip(preds.labels, preds.predicted)):
        if len(rows) >= count:
            break
        if label == names[predicted] and label not in seen:
            rows.append(row)
            seen.add(label)
    return rows


def interpretation_section(model_uri: str, preds: predictions.Predictions,
                           wrong: List[dict], names: Sequence[str],
                           count: int = EXPLAIN_COUNT) -> Dict[str, Any]:
    """Saliency and Grad-CAM for a few samples; filter-bank kernels and responses if any."""
    from lensflow.components.report import interpret
    from lensflow.components.trainer import scaling

    model = interpret.load_keras_model(serving_dir(model_uri))
    pixel_scaling = scaling.PixelScaling.read(serving_dir(model_uri))
    rows = _explain_rows(preds, wrong, names, count)
    images = interpret.transformed_images(model, [preds.images[r] for r in rows], pixel_scaling)
    class_ids = [int(preds.predicted[r]) for r in rows]
    salient = interpret.saliency(model, images, class_ids)
    try:
        cam = interpret.grad_cam(model, images, class_ids)
    except ValueError as err:  # e.g. a model without any spatial feature map
        log.warning("no Grad-CAM: %s", err)
        cam = {"layer": None, "maps": [None] * len(rows)}
    samples = [{"image": images[i], "saliency": salient[i], "grad_cam": cam["maps"][i],
                "label": preds.labels[r], "predicted": names[class_ids[i]],
                "confidence": float(preds.confidence[r]), "path": preds.paths[r]}
               for i, r in enumerate(rows)]
    bank = interpret.filter_bank_view(model, images[0]) if len(images) else None
    return {"samples": samples, "cam_layer": cam["layer"], "model_name": model.name,
            "filter_bank": bank, "filter_bank_image": images[0] if bank else None}


def predictions_section(summary: Dict[str, Any], split: str, names: Sequence[str],
                        max_images: int, wrong_count: int):
    """The candidate's predictions on up to ``max_images`` raw examples of ``split``."""
    model = tf.saved_model.load(serving_dir(summary["model_uri"]))
    serialized = predictions.read_examples(summary["examples_uri"], split, max_images)
    preds = predictions.predict(model, serialized)
    wrong = predictions.confidently_wrong(preds, names, wrong_count)
    return preds, {"split": split, "scanned": len(serialized), "wrong": wrong,
                   "accuracy": predictions.accuracy(preds, names)}


def _attempt(errors: Dict[str, str], name: str, fn: Callable, *args, **kwargs) -> Optional[Any]:
    """Run one section; on failure record why, so the rest of the report still renders."""
    try:
        return fn(*args, **kwargs)
    except Exception as err:  # noqa: BLE001 - one broken section must not hide the others
        log.warning("report section %s unavailable: %s", name, err)
        errors[name] = f"{type(err).__name__}: {err}"
        return None


def collect(metadata_path: str, run_id: Optional[str] = None, **options) -> Dict[str, Any]:
    """Everything the report shows for one run of a local ML Metadata store (``None`` or
    ``"latest"``: the newest run)."""
    return collect_summary(run_summary.summarise(metadata_path, run_id), **options)


def collect_artifacts(run: run_summary.RunArtifacts, **options) -> Dict[str, Any]:
    """Everything the report shows, from the artifacts alone (the report component, a bucket)."""
    return collect_summary(run_summary.summarise_artifacts(run), **options)


def collect_summary(summary: Dict[str, Any], *, max_images: int = MAX_IMAGES,
                    wrong_count: int = WRONG_COUNT, explain_count: int = EXPLAIN_COUNT,
                    kept: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Everything the report shows, for a run summary (``lensflow.pipeline.summary``).
    ``kept``: sections a report of the same artifacts kept (``reuse.load``), used in place of
    predictions, interpretability and charts when their key matches this run's."""
    if max_images < 1:
        raise ValueError(f"max_images must be >= 1, got {max_images}")
    errors: Dict[str, str] = {}
    out: Dict[str, Any] = {
        "run_id": summary["run_id"], "summary": summary, "errors": errors,
        "generated_at": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "blessed": summary.get("blessed"), "pushed_model_dir": summary.get("pushed_model_dir"),
        "serving_check": summary.get("serving_check"),
        "executions": summary.get("executions", {}),
        "outcome": summary.get("outcome"),
        "drift": summary.get("drift"),
    }
    missing = [k for k in ("examples_uri", "evaluation_uri", "model_uri", "model_run_uri")
               if not summary.get(k)]
    for key in missing:
        errors[key.replace("_uri", "")] = f"the run produced no {key.replace('_uri', '')} artifact"
    out["data"] = _attempt(errors, "data", data_section, summary) if "found" in summary else None
    names = _attempt(errors, "class names", class_names_of, summary["model_uri"]) \
        if "model_uri" not in missing else None
    out["class_names"] = names
    if names and "evaluation_uri" not in missing:
        out["evaluation"] = _attempt(errors, "evaluation", evaluation_section, summary, names)
        out["evaluation_split"] = _attempt(errors, "evaluation split", evaluated_split,
                                           summary)
    out["training"] = _attempt(errors, "training", training_section, summary["model_run_uri"]) \
        if "model_run_uri" not in missing else None
    out["sections_key"] = reuse.key(summary, out.get("evaluation_split"), max_images=max_images,
                                    wrong_count=wrong_count, explain_count=explain_count)
    if kept is not None and kept.get("key") == out["sections_key"]:
        for name in reuse.SECTIONS:
            if kept.get(name) is not None:
                out[name] = kept[name]
        errors.update(kept.get("errors", {}))
        out["charts"] = kept["charts"]
    elif names and out.get("evaluation_split") and "examples_uri" not in missing:
        result = _attempt(errors, "predictions", predictions_section, summary,
                          out["evaluation_split"], names, max_images, wrong_count)
        if result is not None:
            preds, out["predictions"] = result
            out["interpretation"] = _attempt(errors, "interpretation", interpretation_section,
                                             summary["model_uri"], preds,
                                             out["predictions"]["wrong"], names, explain_count)
    return out
