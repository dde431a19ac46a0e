"""The TFMA EvalConfig, generated from the lensflow config.

Per-class scores are top-1 (argmax) scores: precision, recall and F1 come from the multi-class
confusion matrix, and a per-class recall floor is a floor on the accuracy of each ``label``
slice (the accuracy on the images of class c is the top-1 recall of c). The reliability diagram
is one calibration histogram of the top-1 prediction (its probability against whether it is
right: the confidence calibration of Guo et al., 2017), one entry per example. This replaced ten
binarised metric sets, which cost more than half of the Evaluator's time, and then every class
probability pooled one-vs-rest, one entry per example and class, which cost over a quarter of it
(TFMA computes every metric on every slice); the model's own compiled Keras metrics are not
recomputed either (``include_default_metrics``).
"""
from __future__ import annotations

import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.proto import config_pb2
from google.protobuf.wrappers_pb2 import BoolValue

from lensflow.components.transform import features
from lensflow.pipeline.config import LensflowConfig

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
    accuracy = tfma.MetricConfig(class_name="SparseCategoricalAccuracy")
    accuracy.per_slice_thresholds.append(_overall_only(tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": ev.min_accuracy}),
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER,
            absolute={"value": -float(ev.max_accuracy_drop) - 1e-10}))))
    if ev.min_class_recall is not None:
        accuracy.per_slice_thresholds.append(tfma.PerSliceMetricThreshold(
            slicing_specs=[tfma.SlicingSpec(feature_keys=[features.LABEL_KEY])],
            threshold=_lower_bound(ev.min_class_recall)))
    overall = tfma.MetricsSpec(metrics=[
        tfma.MetricConfig(class_name="ExampleCount"),
        accuracy,
        tfma.MetricConfig(class_name="SparseTopKCategoricalAccuracy",
                          config=f'{{"k": {int(ev.top_k)}}}'),
        tfma.MetricConfig(class_name="SparseCategoricalCrossentropy"),
        tfma.MetricConfig(class_name="MultiClassConfusionMatrixPlot"),
    ])
    top1_calibration = tfma.MetricsSpec(
        aggregate=tfma.AggregationOptions(
            micro_average=True, top_k_list=config_pb2.RepeatedInt32Value(values=[1])),
        metrics=[tfma.MetricConfig(class_name="CalibrationPlot",
                                   config=f'{{"num_buckets": {int(ev.calibration_bins)}}}')])
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(
            signature_name="serving_examples",
            preprocessing_function_names=["transform_features"],
            label_key=features.LABEL_XF,
            prediction_key=features.PROBABILITIES)],
        slicing_specs=[tfma.SlicingSpec()] + [
            tfma.SlicingSpec(feature_keys=[key]) for key in features.SLICE_KEYS],
        metrics_specs=[overall, top1_calibration],
        options=tfma.Options(include_default_metrics=BoolValue(value=False)))
