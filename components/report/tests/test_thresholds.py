"""Threshold outcomes and baseline comparison, with TFMA's own validator as the oracle."""
import pytest
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.evaluators import metrics_validator
from tensorflow_model_analysis.metrics import metric_specs

from lensflow.components.report import evaluation, thresholds

OVERALL = ()
SHIRT = (("label", b"shirt"),)


def _eval_config() -> tfma.EvalConfig:
    """Candidate vs baseline: accuracy floor and no regression overall; a count floor on
    every slice."""
    accuracy = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": 0.8}),
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={"value": -0.01}))
    count = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": 10}))
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(name="candidate"),
                     tfma.ModelSpec(name="baseline", is_baseline=True)],
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=["label"])],
        metrics_specs=[tfma.MetricsSpec(model_names=["candidate", "baseline"], metrics=[
            tfma.MetricConfig(class_name="SparseCategoricalAccuracy", per_slice_thresholds=[
                tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()],
                                             threshold=accuracy)]),
            tfma.MetricConfig(class_name="ExampleCount", threshold=count)])])


def _metrics(config, accuracy, baseline_accuracy, count):
    """A slice's metrics keyed exactly as TFMA keys them (keys from TFMA's threshold map)."""
    keys = metric_specs.metric_thresholds_from_metrics_specs(config.metrics_specs, config)
    out = {}
    for key in keys:
        if key.model_name != "candidate":
            continue
        base = key._replace(is_diff=False)
        value = accuracy if "accuracy" in key.name else count
        baseline = baseline_accuracy if "accuracy" in key.name else count
        out[base] = value
        out[base.make_baseline_key("baseline")] = baseline
        out[base.make_diff_key()] = value - baseline
    return out


def _tfma_failures(config, metrics_by_slice):
    failures = set()
    for slice_key, metrics in metrics_by_slice.items():
        result = metrics_validator.validate_metrics((slice_key, metrics), config)
        for per_slice in result.metric_validations_per_slice:
            for failure in per_slice.failures:
                failures.add((failure.metric_key.name, failure.metric_key.is_diff, slice_key))
    return failures


@pytest.mark.parametrize("overall_accuracy,baseline,shirt_count", [
    (0.79, 0.785, 5),    # below the floor, no regression, tiny slice
    (0.85, 0.90, 50),    # above the floor but regressed by 0.05
    (0.90, 0.80, 200),   # everything passes
])
def test_failures_are_exactly_tfmas(overall_accuracy, baseline, shirt_count):
    config = _eval_config()
    by_slice = {OVERALL: _metrics(config, overall_accuracy, baseline, 151),
                SHIRT: _metrics(config, 0.3, 0.3, shirt_count)}
    rows = thresholds.evaluate(config, by_slice)
    mine = {(r["metric"].replace("/diff", ""), r["metric"].endswith("/diff"),
             OVERALL if r["slice"] == "overall" else SHIRT) for r in rows if not r["passed"]}
    assert mine == _tfma_failures(config, by_slice)
    assert bool(mine) == (overall_accuracy != 0.90)
    assert {r["kind"] for r in rows} == {"value", "change"}
    assert not any(r["slice"] != "overall" and "accuracy" in r["metric"] for r in rows)


def test_margins_say_by_how_much():
    config = _eval_config()
    rows = thresholds.evaluate(config, {OVERALL: _metrics(config, 0.79, 0.85, 151)})
    by_metric = {r["metric"]: r for r in rows}
    floor = by_metric["sparse_categorical_accuracy"]
    assert (floor["passed"], floor["bound"]) == (False, ">= 0.8000")
    assert floor["margin"] == pytest.approx(-0.01)
    change = by_metric["sparse_categorical_accuracy/diff"]
    assert change["value"] == pytest.approx(-0.06)
    assert change["margin"] == pytest.approx(-0.05)
    assert change["bound"] == "change >= -0.0100"
    count = by_metric["example_count"]
    assert count["passed"] and count["margin"] == pytest.approx(141)
    assert rows[0]["passed"] is False and rows[-1]["passed"] is True


def test_comparison_rows_pair_candidate_and_baseline():
    overall = {"sparse_categorical_accuracy": 0.8, "baseline/sparse_categorical_accuracy": 0.75,
               "sparse_categorical_accuracy/diff": 0.05, "sparse_categorical_crossentropy": 0.6,
               "baseline/sparse_categorical_crossentropy": 0.5, "example_count": 151.0}
    rows = evaluation.comparison_rows(overall)
    assert rows == [
        {"metric": "sparse_categorical_accuracy", "candidate": 0.8, "baseline": 0.75,
         "diff": 0.05, "verdict": "better"},
        {"metric": "sparse_categorical_crossentropy", "candidate": 0.6, "baseline": 0.5,
         "diff": pytest.approx(0.1), "verdict": "worse"}]
    assert evaluation.comparison_rows({"sparse_categorical_accuracy": 0.8}) == []


def test_expected_calibration_error_weights_buckets_by_count():
    pooled = [{"count": 4, "mean_prediction": 0.15, "observed": 0.25},
              {"count": 1, "mean_prediction": 0.9, "observed": 1.0}]
    assert evaluation.expected_calibration_error(pooled) == pytest.approx(
        (4 * abs(0.25 - 0.15) + 1 * 0.1) / 5)
    assert evaluation.expected_calibration_error([]) is None
