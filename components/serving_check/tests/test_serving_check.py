"""The serving check before push: a real model-server process (``lensflow serve``, the TF Serving
stand-in, here; ``tensorflow_model_server`` when installed) must load the candidate and answer
its warmup and a canary over REST and gRPC with the in-process outputs, or nothing is pushed."""
import json
import os
import shutil

import pytest
import tensorflow as tf
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import path_utils, proto_utils

from lensflow.components.pusher.component import Executor as PusherExecutor
from lensflow.components.serving_check import check, model_server, requests
from lensflow.components.serving_check.component import ServingCheck
from lensflow.components.transform import features
from lensflow.serving import warmup


def _artifact(cls, uri, **int_properties):
    artifact = cls()
    artifact.uri = str(uri)
    os.makedirs(artifact.uri, exist_ok=True)
    for key, value in int_properties.items():
        artifact.set_int_custom_property(key, value)
    return artifact


def _examples(e2e):
    examples = standard_artifacts.Examples()
    examples.uri = e2e.summary["examples_uri"]
    examples.split_names = artifact_utils.encode_split_names(sorted(e2e.summary["splits"]))
    return examples


@pytest.fixture(scope="module")
def pushed(e2e):
    """The e2e run's pushed version and one eval image of each class."""
    sample = requests.sample_images(_examples(e2e), "eval", e2e.summary["classes"], 1)
    return e2e.summary["pushed_model_dir"], sample.canary


def _snapshot(folder):
    out = {}
    for parent, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(parent, name)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, folder)] = fh.read()
    return out


class Broken(tf.Module):
    """Loads like a lensflow model, but serving_default fails on every request."""

    def __init__(self, classes):
        super().__init__()
        self.names = tf.constant(classes)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
    def serve(self, images):
        scores = tf.strings.to_number(images)          # raises on image bytes
        probabilities = tf.tile(scores[:, None], [1, self.names.shape[0]])
        ids = tf.argmax(probabilities, axis=-1)
        return {features.PROBABILITIES: probabilities, features.CLASS_IDS: ids,
                features.CLASS_NAMES: tf.gather(self.names, ids)}


def _broken_model(uri, classes):
    model_dir = path_utils.serving_model_dir(str(uri))
    module = Broken(classes)
    tf.saved_model.save(module, model_dir, signatures={"serving_default": module.serve})
    os.makedirs(os.path.join(model_dir, "assets.extra"))
    with open(os.path.join(model_dir, features.CLASS_NAMES_FILE), "w") as fh:
        json.dump(classes, fh)
    return _artifact(standard_artifacts.Model, uri)


def test_the_shared_run_was_checked_on_the_stand_in_and_pushed_what_it_checked(e2e):
    check_result = e2e.summary["serving_check"]
    assert check_result["passed"] is True, check_result
    expected_server = shutil.which("tensorflow_model_server") and model_server.REAL_BINARY
    assert check_result["server"] == (expected_server or model_server.STAND_IN)
    classes = len(e2e.summary["classes"])
    count = classes * e2e.config.serving_check.images_per_class + 1
    assert check_result["warmup_requests"] == count
    assert check_result["answered"] == {"rest": count + 1, "grpc": count + 1}
    pushed = e2e.summary["pushed_model_dir"]
    assert len(warmup.predict_requests(pushed)) == count


def test_sample_takes_real_images_of_every_class_from_the_eval_split(e2e):
    classes = e2e.summary["classes"]
    sample = requests.sample_images(_examples(e2e), "eval", classes, 2)
    assert list(sample.warmup) == classes
    assert all(len(images) == 2 for images in sample.warmup.values())
    assert len(sample.canary) == len(classes)
    held_out = {image for images in sample.warmup.values() for image in images}
    assert not held_out & set(sample.canary), "the canary must not repeat a warmup image"
    assert all(image.startswith(b"\x89PNG") for image in held_out)
    with pytest.raises(ValueError, match="no eval example of class"):
        requests.sample_images(_examples(e2e), "eval", [*classes, "unicorn"], 1)


def test_a_candidate_that_loads_but_cannot_answer_is_refused_and_nothing_is_pushed(
        e2e, tmp_path):
    serving = tmp_path / "serving"
    shutil.copytree(e2e.config.serving_dir, serving)
    before = _snapshot(serving)
    model = _broken_model(tmp_path / "model", e2e.summary["classes"])
    model_blessing = _artifact(standard_artifacts.ModelBlessing, tmp_path / "blessing", blessed=1)
    infra_blessing = _artifact(standard_artifacts.InfraBlessing, tmp_path / "infra")
    ServingCheck.EXECUTOR_SPEC.executor_class().Do(
        {"examples": [_examples(e2e)], "model": [model], "model_blessing": [model_blessing]},
        {"infra_blessing": [infra_blessing]},
        {"model_name": e2e.config.push.model_name, "timeout_seconds": 120.0,
         "images_per_class": 1, "start_server": 1})

    assert infra_blessing.get_int_custom_property("blessed") == 0
    reason = infra_blessing.get_string_custom_property("reason")
    assert "could not load the candidate" in reason and "warmup request 0 failed" in reason, reason
    assert os.path.exists(os.path.join(infra_blessing.uri, "INFRA_NOT_BLESSED"))

    pushed = _artifact(standard_artifacts.PushedModel, tmp_path / "pushed")
    destination = pusher_pb2.PushDestination(filesystem=pusher_pb2.PushDestination.Filesystem(
        base_directory=str(serving / e2e.config.push.model_name)))
    PusherExecutor().Do(
        {"model": [model], "model_blessing": [model_blessing], "infra_blessing": [infra_blessing]},
        {"pushed_model": [pushed]},
        {"push_destination": proto_utils.proto_to_json(destination),
         "custom_config": json.dumps({"model_name": e2e.config.push.model_name,
                                      "serving_dir": str(serving), "keep_versions": 5})})
    assert pushed.get_int_custom_property("pushed") == 0
    assert _snapshot(serving) == before

    from lensflow.pipeline import outcome, summary
    run = summary.RunArtifacts("refused", executions=dict(e2e.summary["executions"]), blessed=True,
                               serving_check=summary.serving_check_of(infra_blessing))
    summary.apply_push(run, pushed)
    assert outcome.describe(summary.summarise_artifacts(run)) == {
        "name": "not_serveable", "exit_code": 5, "reasons": [reason]}


def test_an_unblessed_candidate_is_not_served_or_checked(e2e, tmp_path):
    infra_blessing = _artifact(standard_artifacts.InfraBlessing, tmp_path / "infra")
    ServingCheck.EXECUTOR_SPEC.executor_class().Do(
        {"examples": [_examples(e2e)],
         "model": [_artifact(standard_artifacts.Model, tmp_path / "model")],
         "model_blessing": [_artifact(standard_artifacts.ModelBlessing, tmp_path / "b", blessed=0)]},
        {"infra_blessing": [infra_blessing]},
        {"model_name": "lensflow", "timeout_seconds": 60.0, "images_per_class": 1,
         "start_server": 1})
    assert infra_blessing.get_int_custom_property("blessed") == 0
    assert "not blessed by the Evaluator" in infra_blessing.get_string_custom_property("reason")
    assert not os.path.exists(path_utils.stamped_model_path(infra_blessing.uri))


def test_a_server_that_misses_the_time_limit_fails_the_check(pushed):
    pushed_model_dir, images = pushed
    result = check.run(pushed_model_dir, "lensflow", [warmup.image_request(images, "lensflow")],
                       images, timeout_seconds=0.5)
    assert not result.passed
    assert "time limit" in result.reason, result.reason


def test_the_real_tensorflow_model_server_answers_like_the_model(pushed):
    binary = model_server.find_binary()
    if binary is None:
        pytest.skip("tensorflow_model_server is not on PATH (no registry ships it; install TF "
                    "Serving or use its Docker image to run the check against the real server)")
    pushed_model_dir, images = pushed
    result = check.run(pushed_model_dir, "lensflow", warmup.predict_requests(pushed_model_dir),
                       images, timeout_seconds=300, binary=binary)
    assert result.passed, result.reason
    assert result.server == model_server.REAL_BINARY


def test_the_run_summary_says_why_a_checked_candidate_was_not_pushed():
    from lensflow.pipeline.summary import format_text

    text = format_text({"run_id": "r", "blessed": True, "pushed_model_dir": None,
                        "serving_check": {"passed": False, "server": model_server.STAND_IN,
                                          "reason": "could not load the candidate: boom"}})
    assert "model BLESSED" in text
    assert "serving check FAILED: could not load the candidate: boom" in text
    assert "pushed model: not pushed" in text
    passed = format_text({"run_id": "r", "serving_check": {
        "passed": True, "server": model_server.STAND_IN, "reason": "", "seconds": 12.5}})
    assert f"serving check PASSED on {model_server.STAND_IN} in 12.5s" in passed


def test_disabled_check_writes_the_warmup_but_starts_no_server(e2e, tmp_path):
    from lensflow.components.serving_check.component import NO_SERVER

    model = standard_artifacts.Model()
    model.uri = e2e.summary["model_uri"]
    infra_blessing = _artifact(standard_artifacts.InfraBlessing, tmp_path / "infra")
    ServingCheck.EXECUTOR_SPEC.executor_class().Do(
        {"examples": [_examples(e2e)], "model": [model],
         "model_blessing": [_artifact(standard_artifacts.ModelBlessing, tmp_path / "b", blessed=1)]},
        {"infra_blessing": [infra_blessing]},
        {"model_name": "lensflow", "timeout_seconds": 60.0, "images_per_class": 1,
         "start_server": 0})
    assert infra_blessing.get_int_custom_property("blessed") == 1
    assert infra_blessing.get_string_custom_property("server") == NO_SERVER
    stamped = path_utils.stamped_model_path(infra_blessing.uri)
    assert len(warmup.predict_requests(stamped)) == len(e2e.summary["classes"]) + 1
