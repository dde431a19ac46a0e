"""TFMA's stored results reshaped for the report: class-named tables, matrices and curves."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np
import tensorflow_model_analysis as tfma

BASELINE_PREFIX = "baseline/"
SLICE_COLUMNS = (("example_count", "examples"), ("sparse_categorical_accuracy", "accuracy"),
                 ("sparse_top_k_categorical_accuracy", "top-k accuracy"),
                 ("sparse_categorical_crossentropy", "loss"))
COMPARED = (("sparse_categorical_accuracy", True), ("sparse_top_k_categorical_accuracy", True),
            ("sparse_categorical_crossentropy", False), ("example_count", None))


def _overall_plots(output_path: str) -> list:
    """Plot key/value pairs of the candidate on the overall slice."""
    for plots in tfma.load_plots(output_path):
        if not plots.slice_key.single_slice_keys:
            return [kv for kv in plots.plot_keys_and_values if kv.key.model_name != "baseline"]
    return []


def confusion_matrix(output_path: str, num_classes: int) -> np.ndarray:
    """Counts ``[actual, predicted]`` at threshold 0 (argmax) from TFMA's confusion-matrix plot."""
    for kv in _overall_plots(output_path):
        if not kv.value.HasField("multi_class_confusion_matrix_at_thresholds"):
            continue
        matrices = kv.value.multi_class_confusion_matrix_at_thresholds.matrices
        matrix = min(matrices, key=lambda m: abs(m.threshold))
        counts = np.zeros((num_classes, num_classes), dtype=np.float64)
        for entry in matrix.entries:
            if 0 <= entry.predicted_class_id < num_classes:
                counts[entry.actual_class_id, entry.predicted_class_id] += \
                    entry.num_weighted_examples
        return counts
    raise LookupError(f"no multi_class_confusion_matrix_plot on the overall slice in {output_path}")


def calibration_buckets(output_path: str) -> List[dict]:
    """Non-empty buckets ``{count, mean_prediction, observed, upper}`` of the calibration
    histogram of the top-1 prediction: its probability (the model's confidence) against whether
    it is right, one entry per example; ``observed`` is the accuracy within the bucket."""
    for kv in _overall_plots(output_path):
        if not kv.value.HasField("calibration_histogram_buckets"):
            continue
        return [{"count": b.num_weighted_examples.value,
                 "mean_prediction": b.total_weighted_refined_prediction.value
                 / b.num_weighted_examples.value,
                 "observed": b.total_weighted_label.value / b.num_weighted_examples.value,
                 "upper": b.upper_threshold_exclusive}
                for b in kv.value.calibration_histogram_buckets.buckets
                if b.num_weighted_examples.value > 0]
    return []


def expected_calibration_error(buckets: List[dict]) -> Optional[float]:
    """Count-weighted mean |observed - predicted| over the buckets."""
    total = sum(b["count"] for b in buckets)
    if not total:
        return None
    return sum(b["count"] * abs(b["observed"] - b["mean_prediction"]) for b in buckets) / total


def per_class_rows(class_names: Sequence[str], counts: np.ndarray) -> List[dict]:
    """One row per class name: top-1 (argmax) precision, recall and F1 from the confusion
    matrix, and support."""
    rows = []
    predicted = counts.sum(axis=0)
    actual = counts.sum(axis=1)
    for class_id, name in enumerate(class_names):
        hits = counts[class_id, class_id]
        precision = hits / predicted[class_id] if predicted[class_id] else None
        recall = hits / actual[class_id] if actual[class_id] else None
        f1 = 2 * precision * recall / (precision + recall) \
            if precision is not None and recall is not None and precision + recall else None
        rows.append({"class_id": class_id, "name": name, "support": int(actual[class_id]),
                     "precision": precision, "recall": recall, "f1_score": f1})
    return rows


def slice_rows(metrics_by_slice: Dict[str, Dict[str, float]]) -> List[dict]:
    """Candidate's headline metrics per slice, overall first, then by slice name."""
    names = sorted(metrics_by_slice, key=lambda s: (s != "overall", s))
    return [{"slice": name, "values": {key: metrics_by_slice[name].get(key)
                                       for key, _ in SLICE_COLUMNS}}
            for name in names]


def _direction(diff: Optional[float], higher_is_better: Optional[bool]) -> str:
    if diff is None or higher_is_better is None:
        return ""
    if diff == 0:
        return "same"
    return "better" if (diff > 0) == higher_is_better else "worse"


def comparison_rows(overall: Dict[str, float]) -> List[dict]:
    """Candidate vs baseline on the overall slice (empty when no baseline was evaluated)."""
    rows = []
    for key, higher_is_better in COMPARED:
        baseline = overall.get(BASELINE_PREFIX + key)
        if baseline is None:
            continue
        candidate = overall.get(key)
        diff = overall.get(f"{key}/diff")
        if diff is None and candidate is not None:
            diff = candidate - baseline
        rows.append({"metric": key, "candidate": candidate, "baseline": baseline, "diff": diff,
                     "verdict": _direction(diff, higher_is_better)})
    return rows
