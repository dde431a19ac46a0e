"""TF Serving's SavedModel warmup file: ``assets.extra/tf_serving_warmup_requests``, a TFRecord of
``PredictionLog`` protos that the model server replays on a version before reporting it
AVAILABLE, so the first real requests do not pay the graph's start-up.

Written by the serving check (``components/serving_check``) into every version it validates,
read back here with TF Serving's own protos and replayed by ``lensflow serve`` the way
``tensorflow_model_server`` does: every predict record in order, a failing record fails the load,
at most ``MAX_RECORDS`` records.
"""
from __future__ import annotations

import os
from typing import List, Sequence

import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

from lensflow.components.transform import features

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_RECORDS = 1000          # TF Serving's kMaxNumRecords for a warmup file


class WarmupError(ValueError):
    """The warmup file is unreadable or holds something the server cannot replay."""


def image_request(images: Sequence[bytes], model_name: str,
                  signature_name: str = "serving_default") -> predict_pb2.PredictRequest:
    """A PredictRequest for ``serving_default`` on encoded images (no version: whatever loads)."""
    request = predict_pb2.PredictRequest(
        model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature_name))
    request.inputs[features.SERVING_IMAGES_INPUT].CopyFrom(tf.make_tensor_proto(list(images)))
    return request


def write(version_dir: str, requests: Sequence[predict_pb2.PredictRequest]) -> str:
    """Write ``requests`` as PredictionLogs into ``version_dir``'s warmup file; return its path."""
    if not requests or len(requests) > MAX_RECORDS:
        raise WarmupError(f"{len(requests)} warmup requests; TF Serving replays 1 to {MAX_RECORDS}")
    path = os.path.join(version_dir, WARMUP_FILE)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.TFRecordWriter(path) as writer:
        for request in requests:
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


def read(version_dir: str) -> List[prediction_log_pb2.PredictionLog]:
    """The PredictionLogs of ``version_dir``'s warmup file ([] when it has none)."""
    path = os.path.join(version_dir, WARMUP_FILE)
    if not tf.io.gfile.exists(path):
        return []
    logs = []
    try:
        for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
            if len(logs) == MAX_RECORDS:
                raise WarmupError(f"{path}: more than {MAX_RECORDS} records; TF Serving refuses it")
            log = prediction_log_pb2.PredictionLog()
            log.ParseFromString(record)
            logs.append(log)
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as err:
        raise WarmupError(f"{path}: not a TFRecord of PredictionLog: {err.message}") from err
    return logs


def predict_requests(version_dir: str) -> List[predict_pb2.PredictRequest]:
    """The PredictRequests of the warmup file; any other kind of record is a WarmupError
    (lensflow models export predict signatures only)."""
    out = []
    for index, log in enumerate(read(version_dir)):
        kind = log.WhichOneof("log_type")
        if kind != "predict_log":
            raise WarmupError(f"warmup record {index} is a {kind}; only predict_log is replayed")
        out.append(log.predict_log.request)
    return out


def replay(model, requests: Sequence[predict_pb2.PredictRequest]) -> int:
    """Run every request on ``model`` (a ``lensflow.serving.saved_model.LoadedModel``) as TF Serving does
    before a version becomes AVAILABLE; the first failure raises WarmupError; return the count."""
    for index, request in enumerate(requests):
        try:
            inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
            model.predict(inputs, request.model_spec.signature_name or None,
                          list(request.output_filter) or None)
        except Exception as err:  # noqa: BLE001 - any failure fails the load, with its reason
            raise WarmupError(f"warmup request {index} failed: {err}") from err
    return len(requests)
