"""The data gate: stop the run, with readable reasons, when the data is not fit to train on.

ExampleValidator records anomalies but never stops a run. This component reads its anomalies
per split, and adds the one check a curated schema cannot hold for arbitrary folders: every
label in eval/test must have been seen in training. It passes the schema on, so Transform
depends on it.
"""

import os
from typing import Dict, List, Set

import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx import v1 as tfx
from tfx.types import artifact_utils
from tfx.utils import io_utils

from components.transform import features

SCHEMA_FILE = "schema.pbtxt"


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


def label_values(statistics_artifact) -> Dict[str, Dict[str, int]]:
    """Label value counts per split from StatisticsGen's rank histogram."""
    out: Dict[str, Dict[str, int]] = {}
    for split in artifact_utils.decode_split_names(statistics_artifact.split_names):
        stats = tfdv.load_stats_binary(os.path.join(
            artifact_utils.get_split_uri([statistics_artifact], split), "FeatureStats.pb"))
        values: Dict[str, int] = {}
        for feature in stats.datasets[0].features:
            if feature.path.step == [features.LABEL_KEY]:
                for bucket in feature.string_stats.rank_histogram.buckets:
                    values[bucket.label] = int(bucket.sample_count)
        out[split] = values
    return out


def unseen_label_reasons(values: Dict[str, Dict[str, int]]) -> List[str]:
    """Labels that appear in a split other than train but never in train."""
    seen: Set[str] = set(values.get("train", {}))
    reasons = []
    for split, counts in sorted(values.items()):
        if split == "train":
            continue
        for label in sorted(set(counts) - seen):
            reasons.append(f"{split}: label '{label}' ({counts[label]} images) never appears in "
                           "train, so the model cannot learn it; add training images or remove it")
    return reasons


def stop_reasons(statistics_artifact, anomalies_artifact) -> List[str]:
    """Every reason to stop the run ([] when the data may go on to Transform)."""
    return anomaly_reasons(anomalies_artifact) + unseen_label_reasons(
        label_values(statistics_artifact))


@tfx.dsl.components.component
def DataGate(statistics: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ExampleStatistics],
             schema: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Schema],
             anomalies: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ExampleAnomalies],
             validated_schema: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.Schema]):
    """Raise DataGateError listing every anomaly; otherwise pass the schema on."""
    reasons = stop_reasons(statistics, anomalies)
    if reasons:
        raise DataGateError("the data failed validation:\n  - " + "\n  - ".join(reasons))
    io_utils.copy_file(os.path.join(schema.uri, SCHEMA_FILE),
                       os.path.join(validated_schema.uri, SCHEMA_FILE), overwrite=True)
