"""Gating: a worse model after a good one is refused, and the summary says which threshold failed."""
import os


def listing(path):
    return sorted((root, tuple(sorted(files))) for root, _, files in os.walk(path))


def test_a_worse_model_is_not_pushed_and_the_reason_is_reported(e2e, pipeline_runner):
    serving_before = listing(e2e.config.serving_dir)
    worse = e2e.config.replace(**{
        "train.learning_rate": 1e-7, "train.epochs": 1, "train.steps_per_epoch": 2,
        "evaluation.min_accuracy": 0.0})
    run = pipeline_runner(worse)
    assert run.summary["executions"]["Trainer"] == "COMPLETE"
    assert run.summary["blessed"] is False
    assert run.summary["pushed_model_dir"] is None
    assert listing(e2e.config.serving_dir) == serving_before
    failures = run.summary["failed_thresholds"]
    assert failures and any("against the serving model" in f for f in failures), failures
    assert any(k.startswith("baseline/") for k in run.summary["metrics"]), "baseline not evaluated"
