"""The generated EvalConfig, judged by TFMA's own validator."""
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.evaluators import metrics_validator
from tensorflow_model_analysis.metrics import metric_specs

from lensflow.components.evaluator.eval_config import build_eval_config
from lensflow.pipeline.config import LensflowConfig

ACCURACY = "sparse_categorical_accuracy"


def _failures(config: tfma.EvalConfig, by_slice):
    """(metric name, slice key) of every threshold TFMA fails."""
    out = set()
    for slice_key, metrics in by_slice.items():
        result = metrics_validator.validate_metrics((slice_key, metrics), config)
        for per_slice in result.metric_validations_per_slice:
            out.update((f.metric_key.name, slice_key) for f in per_slice.failures)
    return out


def _slice_metrics(config, accuracy: float):
    """Accuracy keyed as TFMA keys it, and its diff against a baseline that scores the same."""
    keys = metric_specs.metric_thresholds_from_metrics_specs(config.metrics_specs, config)
    return {k: 0.0 if k.is_diff else accuracy for k in keys if k.name == ACCURACY}


def test_class_recall_floor_gates_each_label_slice_and_nothing_else():
    config = build_eval_config(LensflowConfig().replace(**{
        "evaluation.min_accuracy": 0.5, "evaluation.min_class_recall": 0.6}))
    shirt, bag = (("label", b"shirt"),), (("label", b"bag"),)
    dark = (("brightness_bucket", b"dark"),)
    by_slice = {(): _slice_metrics(config, 0.8), shirt: _slice_metrics(config, 0.55),
                bag: _slice_metrics(config, 0.95), dark: _slice_metrics(config, 0.3)}
    assert _failures(config, by_slice) == {(ACCURACY, shirt)}


def test_without_a_class_floor_only_the_overall_accuracy_is_gated():
    config = build_eval_config(LensflowConfig().replace(**{"evaluation.min_accuracy": 0.7}))
    shirt = (("label", b"shirt"),)
    low_shirt = _slice_metrics(config, 0.1)
    assert _failures(config, {(): _slice_metrics(config, 0.65), shirt: low_shirt}) == \
        {(ACCURACY, ())}
    assert _failures(config, {(): _slice_metrics(config, 0.75), shirt: low_shirt}) == set()


def test_no_binarised_per_class_metrics_and_one_top1_calibration_histogram():
    config = build_eval_config(LensflowConfig())
    assert not any(spec.binarize.class_ids.values for spec in config.metrics_specs)
    aggregated = [spec for spec in config.metrics_specs if spec.aggregate.micro_average]
    assert [m.class_name for spec in aggregated for m in spec.metrics] == ["CalibrationPlot"]
    assert [list(spec.aggregate.top_k_list.values) for spec in aggregated] == [[1]]
