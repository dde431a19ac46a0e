"""Read TFMA's stored results: overall metrics, metrics by slice, threshold outcomes."""
from __future__ import annotations

from typing import Any, Dict, List

import tensorflow_model_analysis as tfma


def _value(metric_value) -> Any:
    kind = metric_value.WhichOneof("type")
    if kind == "double_value":
        return float(metric_value.double_value.value)
    return None


def slice_name_of(slice_key) -> str:
    parts = []
    for single in slice_key.single_slice_keys:
        value = getattr(single, single.WhichOneof("kind"))
        value = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        parts.append(f"{single.column}={value}")
    return ", ".join(parts) or "overall"


def metric_name(key) -> str:
    name = key.name
    if key.sub_key.HasField("class_id"):
        name += f"/class_{key.sub_key.class_id.value}"
    if key.sub_key.HasField("top_k"):
        name += f"/top_{key.sub_key.top_k.value}"
    if key.is_diff:
        name += "/diff"
    if key.model_name == "baseline":
        name = "baseline/" + name
    return name


def metrics_by_slice(output_path: str) -> Dict[str, Dict[str, float]]:
    """``{slice name: {metric name: value}}`` for scalar metrics."""
    out: Dict[str, Dict[str, float]] = {}
    for slice_metrics in tfma.load_metrics(output_path):
        name = slice_name_of(slice_metrics.slice_key)
        values = out.setdefault(name, {})
        for kv in slice_metrics.metric_keys_and_values:
            value = _value(kv.value)
            if value is not None:
                values[metric_name(kv.key)] = value
    return out


def threshold_failures(output_path: str) -> List[str]:
    """Readable lines: which threshold failed, on which slice, and by how much."""
    result = tfma.load_validation_result(output_path)
    lines = []
    for per_slice in result.metric_validations_per_slice:
        slice_name = slice_name_of(per_slice.slice_key)
        for failure in per_slice.failures:
            name = metric_name(failure.metric_key)
            value = _value(failure.metric_value)
            lines.append(_describe(name, slice_name, value, failure.metric_threshold))
    if not result.validation_ok and not lines:
        lines.append("validation failed (see the evaluation artifact)")
    return lines


def _describe(name: str, slice_name: str, value, threshold) -> str:
    where = f" on slice {slice_name}" if slice_name != "overall" else ""
    if threshold.HasField("value_threshold"):
        bound = threshold.value_threshold.lower_bound.value
        return (f"{name}{where} = {value:.4f} is below the required {bound:.4f} "
                f"(short by {bound - value:.4f})")
    if threshold.HasField("change_threshold"):
        allowed = threshold.change_threshold.absolute.value
        return (f"{name}{where} changed by {value:+.4f} against the serving model; "
                f"allowed change >= {allowed:+.4f}")
    return f"{name}{where} = {value} failed its threshold"


def summary(output_path: str) -> Dict[str, Any]:
    """Overall metrics (accuracy under the short key ``accuracy``) and threshold failures."""
    by_slice = metrics_by_slice(output_path)
    overall = dict(by_slice.get("overall", {}))
    if "sparse_categorical_accuracy" in overall:
        overall["accuracy"] = overall["sparse_categorical_accuracy"]
    return {"metrics": overall, "metrics_by_slice": by_slice,
            "failed_thresholds": threshold_failures(output_path)}
