"""Runs the DriftCheck executor as a pipeline would, for the unit and end-to-end drift tests."""
import os

from tfx.types import standard_artifacts

from lensflow.components.data_validation import drift
from lensflow.components.pusher.fingerprint import DATA_FINGERPRINT
from lensflow.pipeline.config import LensflowConfig


def run_drift_check(tmp_path, serving, statistics, policy="report-only", name="drift"):
    """DriftCheck on ``statistics`` against what ``serving`` serves, as a run on data with
    another fingerprint than any pushed version's; returns its output artifact."""
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / f"{name}_examples")
    examples.set_string_custom_property(DATA_FINGERPRINT, "this run's data")
    out = standard_artifacts.ExampleAnomalies()
    out.uri = str(tmp_path / name)
    os.makedirs(out.uri)
    drift.DriftCheck.EXECUTOR_SPEC.executor_class().Do(
        {"examples": [examples], "statistics": [statistics]}, {"drift": [out]},
        {"serving_dir": str(serving), "model_name": "lensflow", "settings_fingerprint": "s",
         "serving_state": "none",
         "drift_config": LensflowConfig().replace(**{"drift.policy": policy}).to_json(["drift"])})
    return out
