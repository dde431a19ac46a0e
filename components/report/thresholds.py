"""Every threshold of the stored EvalConfig with its outcome on every slice it applies to.

TFMA's validation result lists failures only; the report also shows what passed and by how
much. Thresholds come from TFMA's own ``metric_thresholds_from_metrics_specs`` and the checks
follow TFMA's validator, so the pass/fail here agrees with the blessing.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional

import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.metrics import metric_specs, metric_types
from tensorflow_model_analysis.proto import config_pb2
from tensorflow_model_analysis.slicer import slicer_lib
from tensorflow_model_analysis.utils import model_util
from tensorflow_model_analysis.writers import eval_config_writer

from lensflow.components.evaluator.results import metric_name, slice_name_of


def stored_eval_config(output_path: str) -> config_pb2.EvalConfig:
    """The EvalConfig TFMA ran with (written beside its results)."""
    eval_config, _, _, _ = eval_config_writer.load_eval_run(output_path)
    if eval_config is None:
        raise LookupError(f"no eval_config.json in {output_path}")
    return eval_config


def _metrics_by_slice_key(output_path: str) -> Dict[tuple, Dict[metric_types.MetricKey, float]]:
    out = {}
    for slice_metrics in tfma.load_metrics(output_path):
        if slice_metrics.HasField("cross_slice_key"):
            continue
        key = slicer_lib.deserialize_slice_key(slice_metrics.slice_key)
        out[key] = {metric_types.MetricKey.from_proto(kv.key): kv.value.double_value.value
                    for kv in slice_metrics.metric_keys_and_values
                    if kv.value.WhichOneof("type") == "double_value"}
    return out


def _number(value: float) -> str:
    """Four decimals, or scientific notation for tiny non-zero bounds (e.g. -1e-10)."""
    return f"{value:+.4f}" if value == 0 or abs(value) >= 1e-4 else f"{value:+.1e}"


def _value_outcome(value: float, threshold: config_pb2.GenericValueThreshold) -> dict:
    lower = threshold.lower_bound.value if threshold.HasField("lower_bound") else -math.inf
    upper = threshold.upper_bound.value if threshold.HasField("upper_bound") else math.inf
    margin = min(value - lower, upper - value)
    bound = f">= {lower:.4f}" if math.isfinite(lower) else ""
    if math.isfinite(upper):
        bound = (bound + " and " if bound else "") + f"<= {upper:.4f}"
    return {"kind": "value", "bound": bound, "passed": lower <= value <= upper, "margin": margin}


def _change_outcome(diff: float, threshold: config_pb2.GenericChangeThreshold,
                    baseline: Optional[float]) -> dict:
    higher = threshold.direction == config_pb2.MetricDirection.HIGHER_IS_BETTER
    margins, bounds = [], []
    if threshold.HasField("absolute"):
        allowed = threshold.absolute.value
        margins.append(diff - allowed if higher else allowed - diff)
        bounds.append(f"change {'>=' if higher else '<='} {_number(allowed)}")
    if threshold.HasField("relative"):
        allowed = threshold.relative.value
        ratio = diff / baseline if baseline else math.nan
        margins.append(ratio - allowed if higher else allowed - ratio)
        bounds.append(f"relative change {'>=' if higher else '<='} {_number(allowed)}")
    margin = min(margins) if margins else math.inf
    return {"kind": "change", "bound": " and ".join(bounds),
            "passed": not math.isnan(margin) and margin >= 0, "margin": margin}


def _applies(slice_spec, slice_key) -> bool:
    if slice_spec is None:
        return True
    if isinstance(slice_spec, config_pb2.CrossSlicingSpec):
        return False
    return slicer_lib.SingleSliceSpec(spec=slice_spec).is_slice_applicable(slice_key)


def outcomes(output_path: str) -> List[dict]:
    """Threshold outcomes of a stored TFMA evaluation (see ``evaluate``)."""
    return evaluate(stored_eval_config(output_path), _metrics_by_slice_key(output_path))


def evaluate(eval_config: config_pb2.EvalConfig,
             metrics_by_slice_key: Dict[tuple, Dict[metric_types.MetricKey, float]]) -> List[dict]:
    """``{metric, slice, kind, value, bound, passed, margin}`` for every applicable threshold,
    failures first.

    ``margin`` is how far inside (>= 0) or outside (< 0) the bound the value is; a threshold
    whose metric was not computed counts as failed, as TFMA counts it.
    """
    thresholds = metric_specs.metric_thresholds_from_metrics_specs(
        eval_config.metrics_specs, eval_config=eval_config)
    baseline_spec = model_util.get_baseline_model_spec(eval_config)
    baseline_name = baseline_spec.name if baseline_spec else None
    rows = []
    for slice_key, metrics in metrics_by_slice_key.items():
        slice_name = slice_name_of(slicer_lib.serialize_slice_key(slice_key))
        for metric_key, entries in thresholds.items():
            if baseline_name and metric_key.model_name == baseline_name:
                continue
            for slice_spec, threshold in entries:
                if not _applies(slice_spec, slice_key):
                    continue
                rows.append(_outcome(metric_key, slice_name, metrics, threshold, baseline_name))
    return sorted(rows, key=lambda r: (r["passed"], r["slice"] != "overall", r["slice"],
                                       r["metric"]))


def _outcome(metric_key, slice_name: str, metrics, threshold, baseline_name) -> dict:
    row = {"metric": metric_name(metric_key.to_proto()), "slice": slice_name}
    value = metrics.get(metric_key)
    if value is None:
        return {**row, "kind": "missing", "value": None, "bound": "metric not computed",
                "passed": False, "margin": None}
    if isinstance(threshold, config_pb2.GenericValueThreshold):
        return {**row, "value": value, **_value_outcome(value, threshold)}
    baseline = metrics.get(metric_key.make_baseline_key(baseline_name)) if baseline_name else None
    return {**row, "value": value, **_change_outcome(value, threshold, baseline)}


def validation_failures(output_path: str) -> set:
    """``{(metric, slice)}`` TFMA's stored validation result recorded as failed."""
    result = tfma.load_validation_result(output_path)
    return {(metric_name(failure.metric_key), slice_name_of(per_slice.slice_key))
            for per_slice in result.metric_validations_per_slice
            for failure in per_slice.failures}
