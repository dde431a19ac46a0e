"""The data gate: labels unseen in training and ExampleValidator anomalies stop the run."""
import os

import pandas as pd
import pytest
import tensorflow_data_validation as tfdv
from tfx.types import artifact_utils, standard_artifacts

from components.data_validation import gate


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


def test_label_in_eval_never_seen_in_train_is_reported(tmp_path):
    artifact = stats_artifact(tmp_path, {"train": ["cat", "dog", "cat"],
                                         "eval": ["cat", "bird", "bird"], "test": ["dog"]})
    values = gate.label_values(artifact)
    assert values["eval"] == {"cat": 1, "bird": 2}
    reasons = gate.unseen_label_reasons(values)
    assert len(reasons) == 1 and "eval: label 'bird' (2 images) never appears in train" in reasons[0]


def test_anomalies_become_readable_reasons(tmp_path):
    schema = tfdv.load_schema_text(os.path.join(os.path.dirname(__file__), "..", "..", "..",
                                                "schemas", "schema.pbtxt"))
    stats = tfdv.generate_statistics_from_dataframe(pd.DataFrame({"label": ["a", "b"]}))
    anomalies = tfdv.validate_statistics(stats, schema)
    artifact = standard_artifacts.ExampleAnomalies()
    artifact.uri = str(tmp_path / "anomalies")
    artifact.split_names = artifact_utils.encode_split_names(["eval"])
    os.makedirs(os.path.join(artifact.uri, "Split-eval"))
    with open(os.path.join(artifact.uri, "Split-eval", "SchemaDiff.pb"), "wb") as fh:
        fh.write(anomalies.SerializeToString())
    reasons = gate.anomaly_reasons(artifact)
    assert any(r.startswith("eval: feature 'image'") for r in reasons), reasons
    with pytest.raises(gate.DataGateError):
        raise gate.DataGateError("\n".join(reasons))
