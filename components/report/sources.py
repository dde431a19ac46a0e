"""Where a run report's artifacts come from, besides the local ML Metadata store
(``lensflow.pipeline.summary.from_store``): the report component's own inputs, and the folder of one
Kubeflow run in the pipeline root's bucket.

On Kubeflow the artifacts' metadata (blessing, push) lives in the cluster's ML Metadata, out of
reach of a user's machine; what the bucket holds is read instead: TFX's ``BLESSED`` /
``NOT_BLESSED`` marker in the blessing artifact, and the push recorded in the report
component's metrics file when that task ran.
"""
from __future__ import annotations

import json
import posixpath
import re
from typing import Dict, List, Mapping, Optional

import tensorflow as tf
from tfx.components.evaluator import constants as evaluator_constants

from lensflow.pipeline import object_store
from lensflow.pipeline.summary import RunArtifacts, apply_blessing, apply_push

# (task, output key) of each artifact the report reads: the pipeline's component ids.
KFP_OUTPUTS = {
    "examples": ("ImageExampleGen", "examples"),
    "model": ("Trainer", "model"),
    "model_run": ("Trainer", "model_run"),
    "evaluation": ("LensflowEvaluator", "evaluation"),
    "blessing": ("LensflowEvaluator", "blessing"),
    "metrics": ("RunReport", "metrics"),
    "drift": ("DriftCheck", "drift"),
}
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class ArtifactsNotFound(LookupError):
    """The folder holds no output of a lensflow Kubeflow run."""


def from_component(input_dict: Mapping[str, List], run_id: str,
                   evaluation_split: str) -> RunArtifacts:
    """The report component's input artifacts (TFX artifacts, any orchestrator)."""
    def uri(key: str) -> Optional[str]:
        artifacts = input_dict.get(key) or []
        return artifacts[0].uri if artifacts else None

    run = RunArtifacts(run_id, examples_uri=uri("examples"), evaluation_uri=uri("evaluation"),
                       model_uri=uri("model"), model_run_uri=uri("model_run"),
                       drift_uri=uri("drift"), evaluation_split=evaluation_split)
    if input_dict.get("blessing"):
        apply_blessing(run, input_dict["blessing"][0])
    if input_dict.get("pushed_model"):
        apply_push(run, input_dict["pushed_model"][0])
    return run


def kfp_run_id(uri: str) -> Optional[str]:
    """The Kubeflow run id in an output URI (``<pipeline root>/<run id>/<task>/...``)."""
    for part in uri.split("/"):
        if _UUID.match(part):
            return part
    return None


def kfp_output_uri(run_root: str, task: str, key: str) -> Optional[str]:
    """URI of a task's output in a Kubeflow run folder: ``<run>/<task>/<key>``, or
    ``<run>/<task>/<salt>/<key>`` as newer KFP drivers write it; None if absent."""
    direct = posixpath.join(run_root, task, key)
    if tf.io.gfile.exists(direct):
        return direct
    salted = sorted(tf.io.gfile.glob(posixpath.join(run_root, task, "*", key)))
    if len(salted) > 1:
        raise ArtifactsNotFound(f"{run_root}: {task} has several {key!r} outputs ({salted}); "
                                "point at one run's folder")
    return salted[0] if salted else None


def _blessing_marker(blessing_uri: str) -> Optional[bool]:
    for name, value in ((evaluator_constants.BLESSED_FILE_NAME, True),
                        (evaluator_constants.NOT_BLESSED_FILE_NAME, False)):
        if tf.io.gfile.exists(posixpath.join(blessing_uri, name)):
            return value
    return None


def _s3_filesystem(uri: str) -> None:
    """``tf.io.gfile`` reads ``s3://`` only once tensorflow-io registered its filesystem."""
    if object_store.uses_s3(uri):
        try:
            object_store.register_s3()
        except object_store.ObjectStoreUnavailable as err:
            raise ArtifactsNotFound(f"{uri}: {err}") from err


def from_kfp_run(run_root: str) -> RunArtifacts:
    """The artifacts of one Kubeflow run from its folder under the pipeline root
    (``gs://…``, ``s3://…`` with tensorflow-io, or a local copy)."""
    _s3_filesystem(run_root)
    run_root = run_root.rstrip("/")
    found: Dict[str, Optional[str]] = {name: kfp_output_uri(run_root, task, key)
                                       for name, (task, key) in KFP_OUTPUTS.items()}
    if not any(found.values()):
        expected = ", ".join(f"{t}/{k}" for t, k in KFP_OUTPUTS.values())
        raise ArtifactsNotFound(f"no output of a lensflow run under {run_root} (expected "
                                f"{expected}); pass the folder of one run: "
                                "<pipeline root>/<run id>")
    run = RunArtifacts(kfp_run_id(run_root + "/") or posixpath.basename(run_root),
                       examples_uri=found["examples"], evaluation_uri=found["evaluation"],
                       model_uri=found["model"], model_run_uri=found["model_run"],
                       drift_uri=found["drift"])
    if found["blessing"]:
        run.blessed = _blessing_marker(found["blessing"])
    run.push_known = bool(found["metrics"])
    if found["metrics"]:
        with tf.io.gfile.GFile(found["metrics"]) as fh:
            recorded = json.load(fh)
        run.evaluation_split = recorded.get("evaluation_split")
        run.pushed_model_dir = recorded.get("pushed_model_dir")
        run.already_serving = bool(recorded.get("already_serving"))
        if run.blessed is None:
            run.blessed = recorded.get("blessed")
    return run
