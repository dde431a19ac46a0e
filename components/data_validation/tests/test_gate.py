"""The data gate: labels outside the training split's label domain and ExampleValidator
anomalies stop the run; the schema it passes on carries that domain."""
import json
import os

import pandas as pd
import pytest
import tensorflow_data_validation as tfdv
from tfx.types import artifact_utils, standard_artifacts

from lensflow.components.data_validation import drift, gate


def stats_artifact(tmp_path, splits):
    artifact = standard_artifacts.ExampleStatistics()
    artifact.uri = str(tmp_path / "stats")
    artifact.split_names = artifact_utils.encode_split_names(list(splits))
    for split, labels in splits.items():
        stats = tfdv.generate_statistics_from_dataframe(pd.DataFrame({"label": labels}))
        folder = os.path.join(artifact.uri, f"Split-{split}")
        os.makedirs(folder)
        with open(os.path.join(folder, "FeatureStats.pb"), "wb") as fh:
            fh.write(stats.SerializeToString())
    return artifact


CURATED = os.path.join(os.path.dirname(__file__), "..", "..", "..", "schemas", "schema.pbtxt")


def schema_artifact(tmp_path, path=CURATED):
    artifact = standard_artifacts.Schema()
    artifact.uri = str(tmp_path / "schema")
    os.makedirs(artifact.uri)
    tfdv.write_schema_text(tfdv.load_schema_text(path), os.path.join(artifact.uri, gate.SCHEMA_FILE))
    return artifact


def no_anomalies(tmp_path):
    artifact = standard_artifacts.ExampleAnomalies()
    artifact.uri = str(tmp_path / "anomalies")
    artifact.split_names = artifact_utils.encode_split_names([])
    return artifact


def test_the_schema_gets_the_label_domain_of_the_training_split(tmp_path):
    artifact = stats_artifact(tmp_path, {"train": ["cat", "dog", "cat"], "eval": ["dog"]})
    curated = tfdv.load_schema_text(CURATED)
    assert not tfdv.get_feature(curated, "label").HasField("domain_info"), \
        "the curated file is static: the label domain is added at run time"
    schema = gate.run_schema(curated, gate.split_statistics(artifact))
    assert list(tfdv.get_domain(schema, "label").value) == ["cat", "dog"]
    assert tfdv.get_feature(schema, "image") == tfdv.get_feature(curated, "image")


def test_a_label_outside_the_training_domain_is_a_tfdv_anomaly_and_a_reason(tmp_path):
    artifact = stats_artifact(tmp_path, {"train": ["cat", "dog", "cat"],
                                         "eval": ["cat", "bird", "bird"], "test": ["dog"]})
    stats = gate.split_statistics(artifact)
    schema = gate.run_schema(tfdv.load_schema_text(CURATED), stats)
    label = tfdv.validate_statistics(stats["eval"], schema).anomaly_info["label"]
    assert any(r.type == gate._UNEXPECTED_VALUES and "bird" in r.description
               for r in label.reason), label
    assert "label" not in tfdv.validate_statistics(stats["test"], schema).anomaly_info
    reasons = gate.unseen_label_reasons(stats, schema)
    assert len(reasons) == 1 and "eval: label 'bird' (2 images) never appears in train" in reasons[0]
    assert gate.stop_reasons(artifact, no_anomalies(tmp_path), schema_artifact(tmp_path)) == reasons


@pytest.mark.parametrize("with_drift", [False, True])
def test_the_gate_passes_on_the_schema_with_the_label_domain(tmp_path, with_drift):
    """With or without the drift verdict (wired only with ``drift.policy: gate``)."""
    artifact = stats_artifact(tmp_path, {"train": ["cat", "dog"], "eval": ["dog", "cat"]})
    validated = standard_artifacts.Schema()
    validated.uri = str(tmp_path / "validated")
    os.makedirs(validated.uri)
    inputs = {"statistics": [artifact], "schema": [schema_artifact(tmp_path)],
              "anomalies": [no_anomalies(tmp_path)]}
    if with_drift:
        first_run = standard_artifacts.ExampleAnomalies()
        first_run.uri = str(tmp_path / "drift")
        os.makedirs(first_run.uri)
        with open(os.path.join(first_run.uri, drift.DRIFT_FILE), "w") as fh:
            json.dump(drift.not_compared("no serving version yet", "gate"), fh)
        inputs["drift"] = [first_run]
    gate.DataGate.EXECUTOR_SPEC.executor_class().Do(inputs, {"validated_schema": [validated]}, {})
    written = tfdv.load_schema_text(os.path.join(validated.uri, gate.SCHEMA_FILE))
    assert list(tfdv.get_domain(written, "label").value) == ["cat", "dog"]
