"""The training data's statistics, carried inside each pushed version.

A later run compares its own data with the data the serving version was trained on (the drift
check, ``components/data_validation/drift.py``). That run may be on another machine or a
Kubeflow cluster, without the earlier run's pipeline root, so the Pusher copies StatisticsGen's
``train`` statistics into the version itself (``assets.extra``, which TF Serving ignores) and
the push record names the file. Whatever reads the serving volume can then find them.
"""
from __future__ import annotations

import os
from typing import Optional

from tensorflow_metadata.proto.v0 import statistics_pb2
from tfx.types import artifact_utils
from tfx.utils import io_utils

TRAIN_SPLIT = "train"
STATISTICS_FILE = "FeatureStats.pb"       # StatisticsGen's file name per split
PATH_IN_VERSION = os.path.join("assets.extra", "lensflow_train_statistics.pb")
RECORD_FIELD = "train_statistics"          # the push record's pointer to it


def read_split(statistics_artifact, split: str = TRAIN_SPLIT) -> bytes:
    """The serialized statistics of ``split`` from an ExampleStatistics artifact (any
    filesystem ``tf.io.gfile`` reads, so ``s3://`` on Kubeflow)."""
    return io_utils.read_bytes_file(os.path.join(
        artifact_utils.get_split_uri([statistics_artifact], split), STATISTICS_FILE))


def load(version_dir: str, record: dict) -> Optional[statistics_pb2.DatasetFeatureStatisticsList]:
    """The training statistics a pushed version carries (None for a version pushed without
    them, e.g. before they were recorded)."""
    relative = record.get(RECORD_FIELD)
    if not relative:
        return None
    path = os.path.join(version_dir, relative)
    if not os.path.exists(path):
        return None
    stats = statistics_pb2.DatasetFeatureStatisticsList()
    with open(path, "rb") as fh:
        stats.ParseFromString(fh.read())
    return stats
