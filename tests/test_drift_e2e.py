"""Drift against the serving model's data on the shared end-to-end run: the first run has no
serving version to compare with, the version it pushed carries its training statistics, and a
later run's data is compared with them (unchanged data: no drift; three classes removed: the
label distribution drifts and, with ``drift.policy: gate``, the data gate stops), and a real
``lensflow run`` on drifted data stops before Transform with the reason."""
import json
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tfx.types import artifact_utils, standard_artifacts

from lensflow.components.data_validation import drift, gate
from lensflow.components.data_validation.tests.drift_steps import run_drift_check
from lensflow.components.pusher import training_statistics, versions
from lensflow.components.transform import features
from lensflow.pipeline import summary as run_summary
from lensflow.pipeline import outcome
from lensflow.pipeline.config import REPO_ROOT, SAMPLE_DATA

ATTRIBUTES = [features.LABEL_KEY, features.SIZE_BUCKET_KEY, features.BRIGHTNESS_BUCKET_KEY,
              features.WIDTH_KEY, features.HEIGHT_KEY, features.CHANNELS_KEY]


def _artifacts(e2e):
    """The shared run's StatisticsGen, ImportSchemaGen and ExampleValidator outputs."""
    store = run_summary.open_store(e2e.config.metadata_path)
    found = run_summary.run_artifacts(store, e2e.summary["run_id"])["artifacts"]
    wanted = {key: found[key] for key in (("StatisticsGen", "statistics"),
                                          ("ImportSchemaGen", "schema"),
                                          ("ExampleValidator", "anomalies"))}
    types = {t.id: t for t in store.get_artifact_types_by_id(
        list({a.type_id for a in wanted.values()}))}
    return {key[0]: artifact_utils.deserialize_artifact(types[a.type_id], a)
            for key, a in wanted.items()}


def _train_attributes(examples_uri):
    """The image attributes of the shared run's ingested train split, read back."""
    rows = []
    folder = os.path.join(examples_uri, "Split-train")
    for name in sorted(os.listdir(folder)):
        for record in tf.data.TFRecordDataset(os.path.join(folder, name), compression_type="GZIP"):
            example = tf.train.Example.FromString(record.numpy())
            feats = example.features.feature
            rows.append({key: (feats[key].bytes_list.value[0].decode()
                               if feats[key].HasField("bytes_list") else
                               feats[key].int64_list.value[0]) for key in ATTRIBUTES})
    return pd.DataFrame(rows)


def _statistics(tmp_path, name, frame):
    artifact = standard_artifacts.ExampleStatistics()
    artifact.uri = str(tmp_path / name)
    artifact.split_names = artifact_utils.encode_split_names(["train"])
    os.makedirs(os.path.join(artifact.uri, "Split-train"))
    with open(os.path.join(artifact.uri, "Split-train", "FeatureStats.pb"), "wb") as fh:
        fh.write(tfdv.generate_statistics_from_dataframe(frame).SerializeToString())
    return artifact


def test_the_first_run_reports_that_there_was_nothing_to_compare_with(e2e):
    result = e2e.summary["drift"]
    assert result["baseline_found"] is False and result["measurements"] == []
    assert "no serving version yet" in result["message"]
    assert "drift vs. serving data: no serving version yet" in run_summary.format_text(e2e.summary)


def test_the_pushed_versions_training_statistics_are_found_and_compared(e2e, tmp_path):
    pushed = e2e.summary["pushed_model_dir"]
    assert pushed and not e2e.summary.get("already_serving")
    version = os.path.basename(pushed.rstrip("/"))
    record = versions.push_record(os.path.dirname(pushed.rstrip("/")), int(version))
    carried = training_statistics.load(pushed, record)
    artifacts = _artifacts(e2e)
    assert carried.SerializeToString() == training_statistics.read_split(
        artifacts["StatisticsGen"])
    assert carried.datasets[0].num_examples == e2e.summary["splits"]["train"]["total"]

    serving = tmp_path / "serving"  # later tests may push newer versions into the shared home
    shutil.copytree(pushed, serving / e2e.config.push.model_name / version)

    same = drift.read(run_drift_check(tmp_path, serving, artifacts["StatisticsGen"], "gate", "same"))
    assert same["baseline_found"] is True and same["serving_version"] == version
    assert {row["feature"] for row in same["measurements"]} == set(drift.COMPARED)
    assert same["drifted"] == [] and same["gate_reasons"] == []
    assert all(row["value"] == 0 for row in same["measurements"]), same["measurements"]

    frame = _train_attributes(e2e.summary["examples_uri"])
    assert len(frame) == carried.datasets[0].num_examples
    kept = sorted(frame[features.LABEL_KEY].unique())[3:]
    fewer = _statistics(tmp_path, "fewer_classes", frame[frame[features.LABEL_KEY].isin(kept)])
    out = run_drift_check(tmp_path, serving, fewer, "gate", "fewer")
    result = drift.read(out)
    label = next(row for row in result["measurements"] if row["feature"] == features.LABEL_KEY)
    assert label["drifted"] and label["value"] > label["threshold"], result["measurements"]
    assert any("feature 'label' drifted from the data serving version " + version in line
               for line in result["gate_reasons"])

    reasons = gate.stop_reasons(fewer, artifacts["ExampleValidator"], artifacts["ImportSchemaGen"],
                                out)
    assert set(result["gate_reasons"]) <= set(reasons)
    with pytest.raises(gate.DataGateError, match="feature 'label' drifted"):
        gate.DataGate.EXECUTOR_SPEC.executor_class().Do(
            {"statistics": [fewer], "schema": [artifacts["ImportSchemaGen"]],
             "anomalies": [artifacts["ExampleValidator"]], "drift": [out]},
            {"validated_schema": [standard_artifacts.Schema()]}, {})


@pytest.mark.slow
def test_a_run_on_drifted_data_stops_before_transform_when_drift_gates(e2e, tmp_path):
    """A home serving the shared run's version, and a dataset of three of its ten classes: the
    label distribution drifted, so ``drift.policy=gate`` stops the run at the data gate (exit 6)
    with the reason on screen, in the summary and in the report. Nothing after the gate runs."""
    pushed = e2e.summary["pushed_model_dir"].rstrip("/")
    version = os.path.basename(pushed)
    home, data, out = tmp_path / "home", tmp_path / "data", tmp_path / "summary.json"
    shutil.copytree(pushed, home / "serving" / e2e.config.push.model_name / version)
    for label in sorted(os.listdir(SAMPLE_DATA))[:3]:
        shutil.copytree(SAMPLE_DATA / label, data / label)

    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [sys.executable, "-m", "lensflow.pipeline.cli", "run", "--home", str(home), "--data", str(data),
         "--set", "drift.policy=gate", "--summary-json", str(out)],
        capture_output=True, text=True, cwd=str(REPO_ROOT), env=env, timeout=900)

    assert done.returncode == outcome.DATA_STOPPED.code, (done.stdout[-3000:], done.stderr[-3000:])
    reason = f"train: feature 'label' drifted from the data serving version {version}"
    assert reason in done.stdout and "outcome: data_stopped (exit code 6)" in done.stdout
    summary = json.loads(out.read_text())
    assert any(line.startswith(reason) for line in summary["outcome"]["reasons"])
    assert summary["drift"]["serving_version"] == version and summary["drift"]["policy"] == "gate"
    assert summary["executions"]["DriftCheck"] == "COMPLETE"
    assert summary["executions"]["DataGate"] == "FAILED"
    assert not {"Transform", "Trainer", "LensflowPusher"} & set(summary["executions"])
    html = open(summary["report_path"], encoding="utf-8").read()
    assert 'id="drift"' in html and "the run stops: drift.policy is gate" in html
