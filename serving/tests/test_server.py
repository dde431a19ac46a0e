"""``lensflow serve`` answers real TF Serving clients (REST and the gRPC stub) exactly like the
SavedModel in-process, reports status/metadata in TF Serving's shapes, picks up new versions,
and turns bad input into 400 / INVALID_ARGUMENT."""
import base64
import os
import shutil

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2,
                                     get_model_status_pb2, model_service_pb2_grpc, predict_pb2,
                                     prediction_service_pb2_grpc)

from lensflow.components.pusher import versions
from lensflow.serving.server import StandInServer
from lensflow.serving.tests.helpers import assert_same_answer, http, wait_for


def b64(data):
    return {"b64": base64.b64encode(data).decode("ascii")}


def columns(predictions):
    return {key: [row[key] for row in predictions] for key in predictions[0]}


@pytest.fixture(scope="module")
def images(sample_images):
    return [data for _, data in sample_images]


@pytest.fixture(scope="module")
def model_url(stand_in):
    return f"{stand_in.rest_url}/v1/models/{stand_in.store.model_name}"


@pytest.fixture(scope="module")
def channel(stand_in):
    with grpc.insecure_channel(stand_in.grpc_address) as ch:
        yield ch


def grpc_request(stand_in, images, version=None, name=None):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name or stand_in.store.model_name
    if version is not None:
        request.model_spec.version.value = version
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(images))
    return request


# ---- REST -------------------------------------------------------------------------------------
def test_rest_status_has_tf_serving_shape(model_url, stand_in):
    status, body = http(model_url)
    version = str(stand_in.store.get().version)
    assert status == 200
    assert body == {"model_version_status": [{"version": version, "state": "AVAILABLE",
                                               "status": {"error_code": "OK", "error_message": ""}}]}
    assert http(f"{model_url}/versions/{version}") == (200, body)


def test_rest_metadata_carries_the_signature_defs(model_url, stand_in):
    status, body = http(f"{model_url}/metadata")
    assert status == 200
    assert body["model_spec"] == {"name": stand_in.store.model_name, "signature_name": "",
                                  "version": str(stand_in.store.get().version)}
    default = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert default["method_name"] == "tensorflow/serving/predict"
    assert default["inputs"]["images"]["dtype"] == "DT_STRING"
    assert set(default["outputs"]) == {"probabilities", "class_ids", "class_names"}


def test_rest_row_format_matches_in_process(model_url, images, reference_outputs):
    status, body = http(f"{model_url}:predict", "POST", {"instances": [b64(i) for i in images]})
    assert status == 200 and len(body["predictions"]) == len(images)
    assert_same_answer(columns(body["predictions"]), reference_outputs)


def test_rest_named_instances_and_columnar_match_in_process(model_url, images, reference_outputs,
                                                            stand_in):
    named = {"signature_name": "serving_default",
             "instances": [{"images": b64(i)} for i in images]}
    version = stand_in.store.get().version
    status, body = http(f"{model_url}/versions/{version}:predict", "POST", named)
    assert status == 200
    assert_same_answer(columns(body["predictions"]), reference_outputs)
    status, body = http(f"{model_url}:predict", "POST", {"inputs": {"images": [b64(i) for i in images]}})
    assert status == 200
    assert_same_answer(body["outputs"], reference_outputs)


def test_rest_serving_examples_signature_agrees_with_serving_default(model_url, images,
                                                                     reference_outputs):
    examples = [tf.train.Example(features=tf.train.Features(feature={
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[i]))})).SerializeToString()
        for i in images]
    status, body = http(f"{model_url}:predict", "POST",
                        {"signature_name": "serving_examples", "instances": [b64(e) for e in examples]})
    assert status == 200, body
    assert_same_answer(columns(body["predictions"]), reference_outputs)


@pytest.mark.parametrize("path, body, code, message", [
    (":predict", b"{not json", 400, "not valid JSON"),
    (":predict", b"", 400, "empty request body"),
    (":predict", {"instances": [b64(b"this is not an image")]}, 400,
     "not an image the served model can decode"),
    (":predict", {"instances": [{"b64": "%%%"}]}, 400, "invalid base64"),
    (":predict", {"instances": [b64(b"x")], "signature_name": "nope"}, 400, "not found in signature"),
    (":predict", {"instances": [b64(b"x")], "inputs": [b64(b"x")]}, 400, "exactly one of"),
    ("/versions/1:predict", {"instances": [b64(b"x")]}, 404, "Servable not found"),
    ("/versions/1", None, 404, "Could not find version 1"),
    ("/versions/abc", None, 400, "non-negative integer"),
    (":classify", {"examples": []}, 400, "not supported"),
])
def test_rest_errors_are_json_with_tf_serving_codes(model_url, path, body, code, message):
    status, answer = http(f"{model_url}{path}", "POST" if body is not None else "GET", body)
    assert status == code
    assert set(answer) == {"error"} and message in answer["error"]


def test_rest_unknown_model_and_route_are_404(stand_in):
    assert http(f"{stand_in.rest_url}/v1/models/nope")[0] == 404
    assert http(f"{stand_in.rest_url}/v2/anything")[0] == 404


def test_rest_oversized_body_is_a_clear_400(model_url, stand_in):
    status, body = http(f"{model_url}:predict", "POST", b"x" * (3 * 1024 * 1024))
    assert status == 400 and "the limit is 2097152 bytes" in body["error"]
    assert http(model_url)[0] == 200, "the server keeps serving after refusing a body"


# ---- gRPC -------------------------------------------------------------------------------------
def test_grpc_predict_with_the_tf_serving_stub_matches_in_process(stand_in, channel, images,
                                                                  reference_outputs):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    response = stub.Predict(grpc_request(stand_in, images), timeout=60)
    outputs = {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}
    assert_same_answer(outputs, reference_outputs)
    assert response.model_spec.version.value == stand_in.store.get().version
    assert response.model_spec.signature_name == "serving_default"


def test_grpc_output_filter_limits_outputs(stand_in, channel, images):
    request = grpc_request(stand_in, images)
    request.output_filter.append("class_names")
    response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=60)
    assert list(response.outputs) == ["class_names"]


def test_grpc_metadata_and_status(stand_in, channel):
    version = stand_in.store.get().version
    metadata_request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    metadata_request.model_spec.name = stand_in.store.model_name
    metadata = prediction_service_pb2_grpc.PredictionServiceStub(channel).GetModelMetadata(
        metadata_request, timeout=30)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    assert metadata.metadata["signature_def"].Unpack(signature_map)
    assert signature_map.signature_def["serving_default"].inputs["images"].dtype == tf.string.as_datatype_enum
    assert metadata.model_spec.version.value == version

    status_request = get_model_status_pb2.GetModelStatusRequest()
    status_request.model_spec.name = stand_in.store.model_name
    status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(status_request, timeout=30)
    assert [(s.version, s.state) for s in status.model_version_status] == \
        [(version, get_model_status_pb2.ModelVersionStatus.AVAILABLE)]


@pytest.mark.parametrize("kind, code, message", [
    ("undecodable", grpc.StatusCode.INVALID_ARGUMENT, "not an image the served model can decode"),
    ("unknown_model", grpc.StatusCode.NOT_FOUND, "Latest(nope)"),
    ("unknown_version", grpc.StatusCode.NOT_FOUND, "Specific("),
])
def test_grpc_errors_carry_tf_serving_status_codes(stand_in, channel, images, kind, code, message):
    request = {"undecodable": lambda: grpc_request(stand_in, [b"not an image"]),
               "unknown_model": lambda: grpc_request(stand_in, images, name="nope"),
               "unknown_version": lambda: grpc_request(stand_in, images, version=1)}[kind]()
    with pytest.raises(grpc.RpcError) as caught:
        prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
    assert caught.value.code() == code and message in caught.value.details()


def test_grpc_classify_is_unimplemented(stand_in, channel):
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = stand_in.store.model_name
    with pytest.raises(grpc.RpcError) as caught:
        prediction_service_pb2_grpc.PredictionServiceStub(channel).Classify(request, timeout=30)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


# ---- version pick-up --------------------------------------------------------------------------
def rest_states(url):
    status, body = http(url)
    return {int(s["version"]): s["state"] for s in body.get("model_version_status", [])}


def test_new_versions_are_picked_up_and_removed_ones_dropped(serving_copy, images):
    base, name, old = serving_copy
    with StandInServer(base, name, rest_port=0, grpc_port=0, poll_seconds=0.2) as server:
        url = f"{server.rest_url}/v1/models/{name}"
        assert rest_states(url) == {old: "AVAILABLE"}

        new = versions.next_version(base)
        versions.publish(os.path.join(base, str(old)), base, new)
        wait_for(lambda: rest_states(url) == {new: "AVAILABLE", old: "END"})
        with grpc.insecure_channel(server.grpc_address) as ch:
            response = prediction_service_pb2_grpc.PredictionServiceStub(ch).Predict(
                grpc_request(server, images[:1]), timeout=60)
            assert response.model_spec.version.value == new
            status_request = get_model_status_pb2.GetModelStatusRequest()
            status_request.model_spec.name = name
            status = model_service_pb2_grpc.ModelServiceStub(ch).GetModelStatus(status_request)
            assert [s.version for s in status.model_version_status] == [new, old]

        shutil.rmtree(os.path.join(base, str(new)))
        wait_for(lambda: rest_states(url) == {new: "END", old: "AVAILABLE"})
        status, body = http(f"{url}:predict", "POST", {"instances": [b64(images[0])]})
        assert status == 200 and np.isclose(sum(body["predictions"][0]["probabilities"]), 1.0,
                                            atol=1e-4)
