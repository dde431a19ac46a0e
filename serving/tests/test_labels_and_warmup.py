"""Version labels (``models.config``, moved by ``lensflow serve labels``) answered by the stand-in
over REST and gRPC, retention that spares labelled versions, and warmup requests: written in
TF Serving's PredictionLog format, read back with TF Serving's protos, replayed on load by
``lensflow serve`` (the TF Serving stand-in) before a version is AVAILABLE."""
import base64
import os

import grpc
import pytest
import tensorflow as tf
from click.testing import CliRunner
from google.protobuf import text_format
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2, prediction_service_pb2_grpc

from lensflow.components.pusher import models_config, versions
from lensflow.serving import warmup
from lensflow.serving.cli import serve
from lensflow.serving.model_store import AVAILABLE, END, ModelStore
from lensflow.serving.saved_model import LoadedModel
from lensflow.serving.server import StandInServer
from lensflow.serving.tests.helpers import assert_same_answer, http


def _labelled_copy(serving_copy):
    """Two versions (old, new) of the pushed model and a models.config labelling them."""
    base, name, old = serving_copy
    new = old + 1
    versions.publish(os.path.join(base, str(old)), base, new)
    serving_dir = os.path.dirname(base)
    models_config.update(serving_dir, name, base, keep_versions=5, newest=new)
    return base, name, old, new, os.path.join(serving_dir, models_config.CONFIG_FILE)


def _cli(*args):
    return CliRunner().invoke(serve, list(args), catch_exceptions=False)


def test_labels_command_moves_labels_checks_versions_and_pins_the_policy(serving_copy, tmp_path):
    base, name, old, new, config = _labelled_copy(serving_copy)
    result = _cli("--model-name", name, "labels", "--file", config,
                  "--set", f"stable={old}", "--set", f"canary={new}")
    assert result.exit_code == 0, result.output
    assert f"canary     {new}" in result.output and f"stable     {old}" in result.output
    entry = models_config.entry(models_config.read(config), name)
    assert dict(entry.version_labels) == {"stable": old, "canary": new}
    assert list(entry.model_version_policy.specific.versions) == [old, new]

    missing = _cli("--model-name", name, "labels", "--file", config, "--set", "canary=42")
    assert missing.exit_code != 0 and "no complete version 42" in missing.output
    bad = _cli("--model-name", name, "labels", "--file", config, "--set", "canary")
    assert bad.exit_code != 0 and "expected LABEL=VERSION" in bad.output
    assert dict(models_config.entry(models_config.read(config), name).version_labels) == \
        {"stable": old, "canary": new}, "a refused move leaves the file as it was"

    newer = new + 1
    versions.publish(os.path.join(base, str(new)), base, newer)
    models_config.update(os.path.dirname(base), name, base, keep_versions=5, newest=newer)
    entry = models_config.entry(models_config.read(config), name)
    assert dict(entry.version_labels) == {"stable": old, "canary": new}, "a push keeps labels"
    assert list(entry.model_version_policy.specific.versions) == [old, new, newer]
    assert versions.prune(base, 1, protected=models_config.protected_versions(
        os.path.dirname(base), name)) == []
    assert versions.versions(base) == [old, new, newer]


def test_stand_in_answers_by_label_over_rest_and_grpc(serving_copy, sample_images,
                                                      reference_outputs):
    base, name, old, new, config = _labelled_copy(serving_copy)
    models_config.set_labels(config, name, {"stable": old, "canary": new},
                             on_disk=versions.versions(base))
    images = [data for _, data in sample_images]
    with StandInServer(base, name, rest_port=0, grpc_port=0, poll_seconds=0.2,
                       model_config_file=config) as server:
        assert server.store.loaded_versions() == [old, new]
        url = f"{server.rest_url}/v1/models/{name}/labels"
        body = {"instances": [{"b64": base64.b64encode(i).decode()} for i in images]}
        for label, version in (("stable", old), ("canary", new)):
            status, answer = http(f"{url}/{label}:predict", "POST", body)
            assert status == 200, answer
            rows = answer["predictions"]
            assert_same_answer({k: [r[k] for r in rows] for k in rows[0]}, reference_outputs)
        status, answer = http(f"{url}/nightly:predict", "POST", body)
        assert status == 400 and "Unrecognized servable version label: nightly" in answer["error"]

        with grpc.insecure_channel(server.grpc_address) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            for label, version in (("stable", old), ("canary", new)):
                request = warmup.image_request(images, name)
                request.model_spec.version_label = label
                response = stub.Predict(request, timeout=60)
                assert response.model_spec.version.value == version
            request.model_spec.version_label = "nightly"
            with pytest.raises(grpc.RpcError) as caught:
                stub.Predict(request, timeout=30)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_pushed_version_carries_warmup_requests_in_tf_serving_format(pushed_model_dir,
                                                                     reference_model):
    path = os.path.join(pushed_model_dir, "assets.extra", "tf_serving_warmup_requests")
    logs = [prediction_log_pb2.PredictionLog.FromString(record)
            for record in tf.data.TFRecordDataset(path).as_numpy_iterator()]
    assert len(logs) >= len(reference_model.class_names) + 1
    answered = set()
    for log in logs:
        assert log.WhichOneof("log_type") == "predict_log"
        request = log.predict_log.request
        assert request.model_spec.signature_name == "serving_default"
        images = tf.make_ndarray(request.inputs["images"]).tolist()
        assert all(image.startswith(b"\x89PNG") for image in images)
        outputs = reference_model.predict({"images": images})
        answered.update(n.decode() for n in outputs["class_names"])
    assert len(answered) >= len(reference_model.class_names) // 2, \
        "warmup images should span the classes (real images of each class)"


class CountingModel(LoadedModel):
    """The real loaded model, counting the requests it answers."""

    calls = 0

    def predict(self, *args, **kwargs):
        CountingModel.calls += 1
        return super().predict(*args, **kwargs)


def test_store_replays_warmup_before_available_and_a_failing_warmup_fails_the_load(
        serving_copy, pushed_model_dir):
    base, name, old = serving_copy
    CountingModel.calls = 0
    store = ModelStore(base, name, loader=CountingModel)
    store.refresh()
    assert store.status(old)[0].state == AVAILABLE
    assert CountingModel.calls == len(warmup.predict_requests(pushed_model_dir))

    broken = old + 1
    versions.publish(os.path.join(base, str(old)), base, broken)
    bad = predict_pb2.PredictRequest()
    text_format.Parse('model_spec { name: "x" signature_name: "serving_default" }', bad)
    bad.inputs["images"].CopyFrom(tf.make_tensor_proto([b"not an image"]))
    warmup.write(os.path.join(base, str(broken)), [bad])
    store.refresh()
    status = store.status(broken)[0]
    assert status.state == END and "warmup request 0 failed" in status.error_message
    assert store.get().version == old, "the previous version keeps serving"
