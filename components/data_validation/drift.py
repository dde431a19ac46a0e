"""DriftCheck: this run's data against the data the serving version was trained on.

The serving version is found when the step runs (never when the pipeline is compiled: on
Kubeflow the package is built elsewhere), by the rule the Evaluator's baseline uses
(``lensflow.components.pusher.versions.incumbent``): the newest pushed version not trained from this
run's own inputs. Its push record names the training statistics it carries
(``lensflow.components.pusher.training_statistics``), so no earlier run's pipeline root is needed.

TFDV's drift comparators measure the ``train`` split against them: the L-infinity distance of
the label distribution and of the categorical image attributes (size and brightness buckets),
the approximate Jensen-Shannon divergence of the numeric ones (width, height, channels), with
the thresholds of ``drift`` in the config. The output (an ExampleAnomalies artifact) holds
TFDV's anomalies per split and ``drift.json``: every measurement, the verdict, and the reasons
to stop when ``drift.policy`` is ``gate``; the data gate stops on those. No serving version (a
first run), or one pushed without statistics, is said so and never stops a run.
"""

import json
import os
from typing import Any, Dict, List, Optional

import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import io_utils

from lensflow.components.pusher import training_statistics, versions
from lensflow.components.pusher.fingerprint import data_fingerprint_of, training_fingerprint
from lensflow.components.transform import features
from lensflow.pipeline.config import ComponentConfig, DriftConfig

DRIFT_FILE = "drift.json"
ANOMALIES_FILE = "SchemaDiff.pb"
SPLIT = training_statistics.TRAIN_SPLIT
FOUND_PROPERTY = "baseline_found"
VERSION_PROPERTY = "serving_version"
DRIFTED_PROPERTY = "drifted"

# feature -> (TFDV comparator, the DriftConfig field holding its threshold)
COMPARED = {
    features.LABEL_KEY: ("infinity_norm", "label_infinity_norm"),
    features.SIZE_BUCKET_KEY: ("infinity_norm", "attribute_infinity_norm"),
    features.BRIGHTNESS_BUCKET_KEY: ("infinity_norm", "attribute_infinity_norm"),
    features.WIDTH_KEY: ("jensen_shannon_divergence", "attribute_jensen_shannon"),
    features.HEIGHT_KEY: ("jensen_shannon_divergence", "attribute_jensen_shannon"),
    features.CHANNELS_KEY: ("jensen_shannon_divergence", "attribute_jensen_shannon"),
}
_TYPES = {"infinity_norm": schema_pb2.BYTES, "jensen_shannon_divergence": schema_pb2.INT}
_DRIFT_REASONS = {anomalies_pb2.AnomalyInfo.COMPARATOR_L_INFTY_HIGH,
                  anomalies_pb2.AnomalyInfo.COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH}
_MEASURES = {"L_INFTY": "L-infinity distance",
             "JENSEN_SHANNON_DIVERGENCE": "Jensen-Shannon divergence"}


def comparison_schema(settings: DriftConfig) -> schema_pb2.Schema:
    """A schema holding only the compared features and their drift comparators (no domains
    or presence rules: those are ExampleValidator's and the gate's business)."""
    schema = schema_pb2.Schema()
    for name, (comparator, key) in COMPARED.items():
        feature = schema.feature.add(name=name, type=_TYPES[comparator])
        getattr(feature.drift_comparator, comparator).threshold = getattr(settings, key)
    return schema


def compare(current: statistics_pb2.DatasetFeatureStatisticsList,
            baseline: statistics_pb2.DatasetFeatureStatisticsList,
            settings: DriftConfig) -> anomalies_pb2.Anomalies:
    """TFDV's drift comparison of ``current`` with ``baseline`` (the previous statistics)."""
    return tfdv.validate_statistics(current, comparison_schema(settings),
                                    previous_statistics=baseline)


def measurements(anomalies: anomalies_pb2.Anomalies) -> List[Dict[str, Any]]:
    """One row per compared feature: measure, value, threshold, drifted (TFDV's verdict) and
    TFDV's description when drifted."""
    drifted = {name: info for name, info in anomalies.anomaly_info.items()
               if any(reason.type in _DRIFT_REASONS for reason in info.reason)}
    rows = []
    for info in anomalies.drift_skew_info:
        name = ".".join(info.path.step)
        for measured in info.drift_measurements:
            kind = anomalies_pb2.DriftSkewInfo.Measurement.Type.Name(measured.type)
            rows.append({"feature": name, "measure": _MEASURES.get(kind, kind),
                         "value": round(float(measured.value), 6),
                         "threshold": float(measured.threshold),
                         "drifted": name in drifted,
                         "description": drifted[name].description if name in drifted else ""})
    return sorted(rows, key=lambda row: (not row["drifted"], row["feature"]))


def verdict(rows: List[Dict[str, Any]], version: str, policy: str) -> Dict[str, Any]:
    """``drift.json``'s content for a comparison with serving version ``version``."""
    drifted = [row for row in rows if row["drifted"]]
    lines = [f"{SPLIT}: feature '{row['feature']}' drifted from the data serving version "
             f"{version} was trained on: {row['measure']} {row['value']:.3g} > threshold "
             f"{row['threshold']:g}" for row in drifted]
    return {"baseline_found": True, "serving_version": version, "split": SPLIT,
            "policy": policy, "measurements": rows, "drifted": lines,
            "gate_reasons": lines if policy == "gate" else [],
            "message": (f"{len(drifted)} of {len(rows)} compared features drifted from the data "
                        f"serving version {version} was trained on" if drifted else
                        f"no drift from the data serving version {version} was trained on "
                        f"({len(rows)} features compared)")}


def not_compared(message: str, policy: str, version: Optional[str] = None) -> Dict[str, Any]:
    """``drift.json`` when there is nothing to compare with (never a reason to stop)."""
    return {"baseline_found": False, "serving_version": version, "split": SPLIT,
            "policy": policy, "measurements": [], "drifted": [], "gate_reasons": [],
            "message": message}


def serving_statistics(model_base: str, fingerprint: str):
    """(serving version or None, its training statistics or None)."""
    version = versions.incumbent(model_base, fingerprint)
    if version is None:
        return None, None
    record = versions.push_record(model_base, version)
    return str(version), training_statistics.load(os.path.join(model_base, str(version)), record)


def read(drift_artifact) -> Dict[str, Any]:
    """``drift.json`` of a DriftCheck output (an artifact or its URI)."""
    uri = getattr(drift_artifact, "uri", drift_artifact)
    return json.loads(io_utils.read_string_file(os.path.join(uri, DRIFT_FILE)))


def summary_line(result: Dict[str, Any]) -> str:
    """One line for the run summary: the verdict and the policy."""
    line = f"drift vs. serving data: {result['message']}"
    if result.get("drifted"):
        line += " (gating)" if result["policy"] == "gate" else " (report-only)"
    return line


@component
def DriftCheck(examples: InputArtifact[standard_artifacts.Examples],
               statistics: InputArtifact[standard_artifacts.ExampleStatistics],
               serving_dir: Parameter[str],
               model_name: Parameter[str],
               settings_fingerprint: Parameter[str],
               serving_state: Parameter[str],
               drift_config: Parameter[str],
               drift: OutputArtifact[standard_artifacts.ExampleAnomalies]):
    """Compare the ``train`` statistics with the serving version's; write ``drift.json`` and
    TFDV's anomalies. ``serving_state`` is a cache key only; ``drift_config`` is the config's
    ``drift`` section as JSON."""
    del serving_state
    settings = ComponentConfig.from_json(drift_config, "DriftCheck").drift
    fingerprint = training_fingerprint(data_fingerprint_of(examples), settings_fingerprint)
    version, baseline = serving_statistics(os.path.join(serving_dir, model_name), fingerprint)
    drift.split_names = artifact_utils.encode_split_names([SPLIT])
    if version is None:
        result = not_compared("no serving version yet (a first run): nothing to compare with",
                              settings.policy)
        anomalies = anomalies_pb2.Anomalies()
    elif baseline is None:
        result = not_compared(f"serving version {version} carries no training statistics "
                              "(pushed before they were recorded): nothing to compare with",
                              settings.policy, version)
        anomalies = anomalies_pb2.Anomalies()
    else:
        current = statistics_pb2.DatasetFeatureStatisticsList()
        current.ParseFromString(training_statistics.read_split(statistics, SPLIT))
        anomalies = compare(current, baseline, settings)
        result = verdict(measurements(anomalies), version, settings.policy)
    io_utils.write_bytes_file(os.path.join(artifact_utils.get_split_uri([drift], SPLIT),
                                           ANOMALIES_FILE), anomalies.SerializeToString())
    io_utils.write_string_file(os.path.join(drift.uri, DRIFT_FILE),
                               json.dumps(result, indent=2, sort_keys=True))
    drift.set_int_custom_property(FOUND_PROPERTY, int(result["baseline_found"]))
    drift.set_int_custom_property(DRIFTED_PROPERTY, len(result["drifted"]))
    if version is not None:
        drift.set_string_custom_property(VERSION_PROPERTY, version)
