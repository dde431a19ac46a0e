"""TF Serving's REST JSON: request parsing (row/columnar, b64) and response shapes."""
import base64

import numpy as np
import pytest

from lensflow.serving import json_codec
from lensflow.serving.errors import BadRequest

PNG = b"\x89PNG\r\n\x1a\nrest"


def b64(data):
    return {"b64": base64.b64encode(data).decode("ascii")}


def test_row_format_unnamed_b64_instances():
    inputs, fmt = json_codec.parse_predict_request({"instances": [b64(PNG), b64(b"x")]}, ["images"])
    assert fmt == json_codec.ROW
    assert inputs == {"images": [PNG, b"x"]}


def test_row_format_named_instances():
    body = {"instances": [{"images": b64(PNG)}, {"images": b64(b"y")}]}
    inputs, _ = json_codec.parse_predict_request(body, ["images"])
    assert inputs == {"images": [PNG, b"y"]}


def test_columnar_format_named_and_bare():
    named, fmt = json_codec.parse_predict_request({"inputs": {"images": [b64(PNG)]}}, ["images"])
    bare, _ = json_codec.parse_predict_request({"inputs": [b64(PNG)]}, ["images"])
    assert fmt == json_codec.COLUMNAR
    assert named == bare == {"images": [PNG]}


def test_plain_strings_become_utf8_bytes():
    inputs, _ = json_codec.parse_predict_request({"instances": ["héllo"]}, ["text"])
    assert inputs == {"text": ["héllo".encode("utf-8")]}


@pytest.mark.parametrize("body, message", [
    ({"instances": [b64(PNG)], "inputs": [b64(PNG)]}, "exactly one of"),
    ({"signature_name": "serving_default"}, "exactly one of"),
    ([1, 2], "JSON object"),
    ({"instances": []}, "non-empty list"),
    ({"instances": [{"images": b64(PNG)}, b64(PNG)]}, "mixes named"),
    ({"instances": [{"images": b64(PNG)}, {"other": b64(PNG)}]}, "instance 1 has keys"),
    ({"instances": [{"b64": "***not base64***"}]}, "invalid base64"),
    ({"instances": [{"b64": 5}]}, "binary values must be"),
])
def test_malformed_requests_are_bad_requests(body, message):
    with pytest.raises(BadRequest, match=message):
        json_codec.parse_predict_request(body, ["images"])


def test_unnamed_instances_need_a_single_input_signature():
    with pytest.raises(BadRequest, match="must name them"):
        json_codec.parse_predict_request({"instances": [1.0]}, ["a", "b"])


def test_row_response_with_several_outputs_is_one_object_per_instance():
    outputs = {"probabilities": np.array([[0.25, 0.75], [1.0, 0.0]], np.float32),
               "class_ids": np.array([1, 0], np.int64),
               "class_names": np.array([b"bag", b"coat"], object)}
    response = json_codec.format_predict_response(outputs, json_codec.ROW)
    assert response == {"predictions": [
        {"probabilities": [0.25, 0.75], "class_ids": 1, "class_names": "bag"},
        {"probabilities": [1.0, 0.0], "class_ids": 0, "class_names": "coat"}]}


def test_single_output_row_and_columnar_responses_are_bare_values():
    outputs = {"scores": np.array([0.5, 0.125], np.float32)}
    assert json_codec.format_predict_response(outputs, json_codec.ROW) == {"predictions": [0.5, 0.125]}
    assert json_codec.format_predict_response(outputs, json_codec.COLUMNAR) == {"outputs": [0.5, 0.125]}


def test_bytes_outputs_and_non_utf8_strings_are_b64():
    outputs = {"thumb_bytes": np.array([b"abc"], object), "label": np.array([b"\xff\xfe"], object)}
    response = json_codec.format_predict_response(outputs, json_codec.COLUMNAR)
    assert response == {"outputs": {"thumb_bytes": [b64(b"abc")], "label": [b64(b"\xff\xfe")]}}


def test_row_response_refuses_outputs_with_different_batch_sizes():
    outputs = {"a": np.zeros([2, 3], np.float32), "b": np.zeros([3], np.float32)}
    with pytest.raises(BadRequest, match="different batch sizes"):
        json_codec.format_predict_response(outputs, json_codec.ROW)
