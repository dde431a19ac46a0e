"""The data gate: stop the run, with readable reasons, when the data is not fit to train on.

ExampleValidator records anomalies but never stops a run. This component reads its anomalies
per split, and adds the one rule a curated schema cannot hold for arbitrary folders: the label
domain. The curated schema file is static, so the gate adds the labels of the ``train`` split
to it as a string domain when it runs, validates every other split against that schema with
TFDV (a label never seen in training is an anomaly), and passes this schema on to Transform and
the Trainer. With ``drift.policy: gate`` it also stops on the drift check's reasons
(``drift.py``).
"""

import os
from typing import Dict, List

import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import io_utils

from lensflow.components.data_validation import drift as drift_check
from lensflow.components.transform import features

SCHEMA_FILE = "schema.pbtxt"
_UNEXPECTED_VALUES = anomalies_pb2.AnomalyInfo.ENUM_TYPE_UNEXPECTED_STRING_VALUES


class DataGateError(RuntimeError):
    """The data failed validation; the message lists every reason."""


def anomaly_reasons(anomalies_artifact) -> List[str]:
    """One line per anomaly, per split, from ExampleValidator's output."""
    reasons = []
    for split in artifact_utils.decode_split_names(anomalies_artifact.split_names):
        path = os.path.join(artifact_utils.get_split_uri([anomalies_artifact], split),
                            "SchemaDiff.pb")
        anomalies = anomalies_pb2.Anomalies()
        anomalies.ParseFromString(io_utils.read_bytes_file(path))
        for name, info in sorted(anomalies.anomaly_info.items()):
            reasons.append(f"{split}: feature '{name}': {info.description or info.short_description}")
    return reasons


def split_statistics(statistics_artifact) -> Dict[str, object]:
    """StatisticsGen's statistics per split."""
    return {split: tfdv.load_stats_binary(os.path.join(
                artifact_utils.get_split_uri([statistics_artifact], split), "FeatureStats.pb"))
            for split in artifact_utils.decode_split_names(statistics_artifact.split_names)}


def label_counts(stats) -> Dict[str, int]:
    """Label value counts of one split's statistics (its rank histogram)."""
    for feature in stats.datasets[0].features:
        if feature.path.step == [features.LABEL_KEY]:
            return {bucket.label: int(bucket.sample_count)
                    for bucket in feature.string_stats.rank_histogram.buckets}
    return {}


def with_label_domain(schema: schema_pb2.Schema, labels) -> schema_pb2.Schema:
    """A copy of ``schema`` whose label feature has the string domain ``labels``."""
    out = schema_pb2.Schema()
    out.CopyFrom(schema)
    tfdv.set_domain(out, features.LABEL_KEY,
                    schema_pb2.StringDomain(name=features.LABEL_KEY, value=sorted(labels)))
    return out


def unseen_label_reasons(stats_by_split: Dict[str, object],
                         schema: schema_pb2.Schema) -> List[str]:
    """Labels of a split other than train outside ``schema``'s label domain (the labels seen in
    training), as TFDV's validation finds them, each with its image count."""
    known = set(tfdv.get_domain(schema, features.LABEL_KEY).value)
    reasons = []
    for split, stats in sorted(stats_by_split.items()):
        if split == "train":
            continue
        info = tfdv.validate_statistics(stats, schema).anomaly_info.get(features.LABEL_KEY)
        if info is None or not any(reason.type == _UNEXPECTED_VALUES for reason in info.reason):
            continue
        counts = label_counts(stats)
        for label in sorted(set(counts) - known):
            reasons.append(f"{split}: label '{label}' ({counts[label]} images) never appears in "
                           "train, so the model cannot learn it; add training images or remove it")
    return reasons


def run_schema(schema: schema_pb2.Schema, stats_by_split: Dict[str, object]) -> schema_pb2.Schema:
    """The curated schema plus the label domain of the ``train`` split."""
    train = stats_by_split.get("train")
    return with_label_domain(schema, label_counts(train) if train is not None else {})


def stop_reasons(statistics_artifact, anomalies_artifact, schema_artifact,
                 drift_artifact=None) -> List[str]:
    """Every reason to stop the run ([] when the data may go on to Transform)."""
    stats = split_statistics(statistics_artifact)
    schema = run_schema(read_schema(schema_artifact), stats)
    reasons = anomaly_reasons(anomalies_artifact) + unseen_label_reasons(stats, schema)
    if drift_artifact is not None:
        reasons += drift_check.read(drift_artifact)["gate_reasons"]
    return reasons


def read_schema(schema_artifact) -> schema_pb2.Schema:
    """The schema in a Schema artifact."""
    return tfdv.load_schema_text(os.path.join(schema_artifact.uri, SCHEMA_FILE))


@component
def DataGate(statistics: InputArtifact[standard_artifacts.ExampleStatistics],
             schema: InputArtifact[standard_artifacts.Schema],
             anomalies: InputArtifact[standard_artifacts.ExampleAnomalies],
             validated_schema: OutputArtifact[standard_artifacts.Schema],
             drift: InputArtifact[
                 standard_artifacts.ExampleAnomalies] = None):
    """Raise DataGateError listing every reason to stop; otherwise pass the schema on, with
    the label domain of the training split. ``drift`` (the drift check's verdict) is wired only
    with ``drift.policy: gate``, so a report-only drift check never invalidates the cached gate
    and Transform."""
    reasons = stop_reasons(statistics, anomalies, schema, drift)
    if reasons:
        raise DataGateError("the data failed validation:\n  - " + "\n  - ".join(reasons))
    tfdv.write_schema_text(run_schema(read_schema(schema), split_statistics(statistics)),
                           os.path.join(validated_schema.uri, SCHEMA_FILE))
