"""The TFMA EvalConfig, generated from the lensflow config.

The template lists per-class metrics for class 0 only: the number of classes is known only once
a model exists, so ``expand_per_class`` (called by the evaluator executor) widens them to every
class of the candidate.
"""
from __future__ import annotations

import tensorflow_model_analysis as tfma

from components.transform import features
from pipeline.config import LensflowConfig

ACCURACY = "sparse_categorical_accuracy"


def _overall_only(threshold: tfma.MetricThreshold) -> tfma.PerSliceMetricThreshold:
    """Gate on the overall slice; other slices are reported, not gated."""
    return tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=threshold)


def _lower_bound(value: float) -> tfma.MetricThreshold:
    return tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": value}))


def build_eval_config(cfg: LensflowConfig) -> tfma.EvalConfig:
    """Metrics, slices and thresholds (absolute floors, no regression against the baseline)."""
    ev = cfg.evaluation
    accuracy_threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": ev.min_accuracy}),
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER,
            absolute={"value": -float(ev.max_accuracy_drop) - 1e-10}))
    overall = tfma.MetricsSpec(metrics=[
        tfma.MetricConfig(class_name="ExampleCount"),
        tfma.MetricConfig(class_name="SparseCategoricalAccuracy",
                          per_slice_thresholds=[_overall_only(accuracy_threshold)]),
        tfma.MetricConfig(class_name="SparseTopKCategoricalAccuracy",
                          config=f'{{"k": {int(ev.top_k)}}}'),
        tfma.MetricConfig(class_name="SparseCategoricalCrossentropy"),
        tfma.MetricConfig(class_name="MultiClassConfusionMatrixPlot"),
    ])
    recall = tfma.MetricConfig(class_name="Recall")
    if ev.min_class_recall is not None:
        recall.per_slice_thresholds.append(_overall_only(_lower_bound(ev.min_class_recall)))
    per_class = tfma.MetricsSpec(
        binarize=tfma.BinarizationOptions(class_ids={"values": [0]}),
        metrics=[tfma.MetricConfig(class_name="Precision"), recall,
                 tfma.MetricConfig(class_name="F1Score"),
                 tfma.MetricConfig(class_name="Calibration"),
                 tfma.MetricConfig(class_name="CalibrationPlot",
                                   config=f'{{"num_buckets": {int(ev.calibration_bins)}}}')])
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(
            signature_name="serving_examples",
            preprocessing_function_names=["transform_features"],
            label_key=features.LABEL_XF,
            prediction_key=features.PROBABILITIES)],
        slicing_specs=[tfma.SlicingSpec()] + [
            tfma.SlicingSpec(feature_keys=[key]) for key in features.SLICE_KEYS],
        metrics_specs=[overall, per_class])


def expand_per_class(eval_config: tfma.EvalConfig, num_classes: int) -> tfma.EvalConfig:
    """Widen every binarised metrics spec to class ids 0..num_classes-1."""
    out = tfma.EvalConfig()
    out.CopyFrom(eval_config)
    for spec in out.metrics_specs:
        if spec.binarize.class_ids.values:
            del spec.binarize.class_ids.values[:]
            spec.binarize.class_ids.values.extend(range(num_classes))
    return out
