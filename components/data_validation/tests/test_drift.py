"""The drift check: TFDV's comparators on generated statistics, and where the serving version's
training statistics are found."""
import json
import os

import numpy as np
import pandas as pd
import pytest
import tensorflow_data_validation as tfdv
from tfx.types import artifact_utils, standard_artifacts

from lensflow.components.data_validation import drift, gate
from lensflow.components.data_validation.tests.drift_steps import run_drift_check
from lensflow.components.pusher import training_statistics, versions
from lensflow.pipeline.config import ConfigError, DriftConfig, load_config

CLASSES = ["bag", "boot", "coat", "dress", "shirt"]


def frame(seed, n=1500, label_p=None, dark_share=0.7, side=28):
    """Image attributes as ingestion writes them: label, size and brightness buckets, width,
    height, channels."""
    rng = np.random.default_rng(seed)
    width = rng.integers(side - 2, side + 3, n)
    return pd.DataFrame({
        "label": rng.choice(CLASSES, n, p=label_p),
        "size_bucket": np.where(width <= 32, "<=32px", "<=64px"),
        "brightness_bucket": rng.choice(["dark", "medium"], n, p=[dark_share, 1 - dark_share]),
        "width": width, "height": rng.integers(side - 2, side + 3, n),
        "channels": np.ones(n, dtype=np.int64)})


def stats(df):
    return tfdv.generate_statistics_from_dataframe(df)


def drifted_features(current, baseline, settings=DriftConfig()):
    rows = drift.measurements(drift.compare(stats(current), stats(baseline), settings))
    assert {row["feature"] for row in rows} == set(drift.COMPARED), rows
    return {row["feature"] for row in rows if row["drifted"]}, rows


def test_two_samples_of_the_same_data_do_not_drift():
    found, rows = drifted_features(frame(1), frame(2))
    assert found == set()
    assert all(0 <= row["value"] < row["threshold"] for row in rows), rows


@pytest.mark.parametrize("change, expected", [
    ({"label_p": [0.6, 0.1, 0.1, 0.1, 0.1]}, {"label"}),
    ({"dark_share": 0.2}, {"brightness_bucket"}),
    ({"side": 60}, {"width", "height", "size_bucket"}),
])
def test_a_shifted_distribution_drifts_on_the_features_that_moved(change, expected):
    found, rows = drifted_features(frame(1, **change), frame(2))
    assert found == expected, rows
    for row in rows:
        if row["drifted"]:
            assert row["value"] > row["threshold"] and row["description"], row


def test_thresholds_come_from_the_config_and_the_policy_decides_whether_it_gates():
    current, baseline = frame(1, label_p=[0.3, 0.25, 0.15, 0.15, 0.15]), frame(2)
    loose = DriftConfig(label_infinity_norm=0.5)
    assert drifted_features(current, baseline, loose)[0] == set()
    strict = DriftConfig(label_infinity_norm=0.02)
    found, rows = drifted_features(current, baseline, strict)
    assert found == {"label"}
    report = drift.verdict(rows, "1700000000", "report-only")
    assert report["drifted"] and report["gate_reasons"] == []
    gating = drift.verdict(rows, "1700000000", "gate")
    assert gating["gate_reasons"] == gating["drifted"]
    assert "feature 'label' drifted from the data serving version 1700000000" in \
        gating["gate_reasons"][0]
    assert "L-infinity distance" in gating["gate_reasons"][0]


@pytest.mark.parametrize("key, value, message", [
    ("drift.policy", "stop", "drift.policy='stop'; choose one of report-only, gate"),
    ("drift.label_infinity_norm", 1.5, "drift.label_infinity_norm=1.5"),
    ("drift.attribute_jensen_shannon", -0.1, "drift.attribute_jensen_shannon=-0.1"),
])
def test_bad_drift_settings_name_their_key(key, value, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        load_config(None, {key: value})


def _statistics_artifact(tmp_path, name, splits):
    artifact = standard_artifacts.ExampleStatistics()
    artifact.uri = str(tmp_path / name)
    artifact.split_names = artifact_utils.encode_split_names(list(splits))
    for split, df in splits.items():
        folder = os.path.join(artifact.uri, f"Split-{split}")
        os.makedirs(folder)
        with open(os.path.join(folder, "FeatureStats.pb"), "wb") as fh:
            fh.write(stats(df).SerializeToString())
    return artifact


def _push(model_base, tmp_path, statistics=None, fingerprint="an earlier run"):
    """A version published the way the Pusher publishes (with or without statistics)."""
    model = tmp_path / f"model-{len(versions.versions(model_base))}"
    model.mkdir()
    (model / "saved_model.pb").write_bytes(b"model")
    record = {"training_fingerprint": fingerprint}
    added = {}
    if statistics is not None:
        added[training_statistics.PATH_IN_VERSION] = training_statistics.read_split(statistics)
        record[training_statistics.RECORD_FIELD] = training_statistics.PATH_IN_VERSION
    return versions.publish_next(str(model), model_base, record=record, added=added)[0]


def test_a_first_run_has_nothing_to_compare_with_and_is_not_stopped(tmp_path):
    statistics = _statistics_artifact(tmp_path, "stats", {"train": frame(1)})
    out = run_drift_check(tmp_path, tmp_path / "serving", statistics, policy="gate")
    result = drift.read(out)
    assert result["baseline_found"] is False and result["gate_reasons"] == []
    assert "no serving version yet" in result["message"]
    assert out.get_int_custom_property(drift.FOUND_PROPERTY) == 0


def test_a_version_pushed_without_statistics_is_named_and_not_compared(tmp_path):
    base = str(tmp_path / "serving" / "lensflow")
    version = _push(base, tmp_path)
    statistics = _statistics_artifact(tmp_path, "stats", {"train": frame(1)})
    result = drift.read(run_drift_check(tmp_path, tmp_path / "serving", statistics, "gate"))
    assert result["baseline_found"] is False and result["serving_version"] == str(version)
    assert "carries no training statistics" in result["message"]


def test_the_serving_versions_statistics_gate_a_drifted_run_at_the_data_gate(tmp_path):
    """The newest version not trained from this run's inputs carries its training statistics;
    a run whose labels moved is compared with them and, with ``policy: gate``, stopped by the
    data gate with the reason; a version of this run's own inputs is never its baseline."""
    base = str(tmp_path / "serving" / "lensflow")
    old = _push(base, tmp_path, _statistics_artifact(tmp_path, "old", {"train": frame(9)}))
    served = _push(base, tmp_path, _statistics_artifact(tmp_path, "served", {"train": frame(2)}))
    current = _statistics_artifact(tmp_path, "current", {
        "train": frame(1, label_p=[0.6, 0.1, 0.1, 0.1, 0.1]), "eval": frame(3)})

    out = run_drift_check(tmp_path, tmp_path / "serving", current, policy="gate")
    result = drift.read(out)
    assert result["baseline_found"] is True and result["serving_version"] == str(served) != str(old)
    assert [row["feature"] for row in result["measurements"] if row["drifted"]] == ["label"]
    assert out.get_int_custom_property(drift.DRIFTED_PROPERTY) == 1
    with open(os.path.join(out.uri, "Split-train", drift.ANOMALIES_FILE), "rb") as fh:
        assert b"label" in fh.read()

    schema = standard_artifacts.Schema()
    schema.uri = str(tmp_path / "schema")
    os.makedirs(schema.uri)
    tfdv.write_schema_text(tfdv.infer_schema(stats(frame(1))),
                           os.path.join(schema.uri, gate.SCHEMA_FILE))
    anomalies = standard_artifacts.ExampleAnomalies()
    anomalies.uri = str(tmp_path / "no_anomalies")
    anomalies.split_names = artifact_utils.encode_split_names([])
    reasons = gate.stop_reasons(current, anomalies, schema, out)
    assert reasons == result["gate_reasons"] and len(reasons) == 1
    validated = standard_artifacts.Schema()
    validated.uri = str(tmp_path / "validated")
    with pytest.raises(gate.DataGateError, match="feature 'label' drifted"):
        gate.DataGate.EXECUTOR_SPEC.executor_class().Do(
            {"statistics": [current], "schema": [schema], "anomalies": [anomalies],
             "drift": [out]}, {"validated_schema": [validated]}, {})

    report_only = drift.read(run_drift_check(tmp_path, tmp_path / "serving", current,
                                             name="drift_report"))
    assert report_only["drifted"] == result["drifted"] and report_only["gate_reasons"] == []

    own = _push(base, tmp_path, current, fingerprint=_fingerprint_of_this_run())
    assert versions.versions(base)[-1] == own
    again = drift.read(run_drift_check(tmp_path, tmp_path / "serving", current, name="again"))
    assert again["serving_version"] == str(served)


def _fingerprint_of_this_run():
    from lensflow.components.pusher.fingerprint import training_fingerprint

    return training_fingerprint("this run's data", "s")


@pytest.mark.parametrize("policy, gated", [("report-only", False), ("gate", True)])
def test_the_gate_waits_for_the_drift_verdict_only_when_it_gates(tmp_path, policy, gated):
    """Report-only keeps the drift check off the path to Transform, so a new serving version or
    changed training settings (which re-run the check) leave the gate and Transform cached."""
    from lensflow.pipeline.pipeline import create_pipeline

    cfg = load_config(None, {"home": str(tmp_path), "drift.policy": policy})
    nodes = {node.id: node for node in create_pipeline(cfg).components}
    assert ("drift" in nodes["DataGate"].inputs) is gated
    assert "drift" in nodes["RunReport"].inputs
    assert "statistics" in nodes["LensflowPusher"].inputs
