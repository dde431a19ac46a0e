"""Classify image files with a served lensflow model: a SavedModel in-process, or any TF Serving
endpoint over REST (``{"b64": ...}`` instances) or gRPC (the real ``PredictionServiceStub``)."""
from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np

from lensflow.components.transform import features
from lensflow.serving.errors import BadRequest
from lensflow.serving.model_store import resolve_version_dir
from lensflow.serving.saved_model import DEFAULT_SIGNATURE, MAX_STRING_BYTES, LoadedModel, read_class_names

IMAGE_SIGNATURES = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG", b"GIF87a": "GIF",
                    b"GIF89a": "GIF", b"BM": "BMP"}
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class PredictError(RuntimeError):
    """A prediction could not be made; the message says where and why."""


@dataclass
class Prediction:
    """Model outputs for a batch: ``probabilities`` [N, K], ``class_ids`` [N], ``class_names`` [N]."""

    probabilities: np.ndarray
    class_ids: np.ndarray
    class_names: List[str]
    version: Optional[int] = None


def read_image(path: str) -> bytes:
    """The bytes of an image file the model can decode (PNG, JPEG, GIF, BMP), or PredictError."""
    size = os.path.getsize(path)
    if size > MAX_STRING_BYTES:
        raise PredictError(f"{path}: {size} bytes; the model accepts images up to "
                           f"{MAX_STRING_BYTES} bytes")
    with open(path, "rb") as fh:
        data = fh.read()
    if not any(data.startswith(magic) for magic in IMAGE_SIGNATURES):
        raise PredictError(f"{path}: not a PNG, JPEG, GIF or BMP image")
    return data


def _prediction(outputs: Dict[str, object], version: Optional[int]) -> Prediction:
    names = [n.decode("utf-8") if isinstance(n, bytes) else str(n)
             for n in np.asarray(outputs[features.CLASS_NAMES]).reshape(-1).tolist()]
    return Prediction(np.asarray(outputs[features.PROBABILITIES], dtype=np.float32),
                      np.asarray(outputs[features.CLASS_IDS], dtype=np.int64).reshape(-1),
                      names, version)


class LocalPredictor:
    """The SavedModel at a version folder, or the newest version under a base folder, in-process."""

    def __init__(self, path: str, model_name: str):
        version_dir = resolve_version_dir(path, model_name)
        name = os.path.basename(version_dir)
        self.model = LoadedModel(version_dir, int(name) if name.isdigit() else None)
        self.class_names = self.model.class_names
        self.source = version_dir

    def predict(self, images: Sequence[bytes]) -> Prediction:
        try:
            outputs = self.model.predict({features.SERVING_IMAGES_INPUT: list(images)})
        except BadRequest as err:
            raise PredictError(f"{self.source}: {err}") from err
        return _prediction(outputs, self.model.version)


class RestPredictor:
    """TF Serving's REST predict API at ``url`` (``http://host:port``)."""

    def __init__(self, url: str, model_name: str, version: Optional[int] = None,
                 timeout: float = 30.0):
        base = url.rstrip("/") if "://" in url else f"http://{url.rstrip('/')}"
        suffix = f"/versions/{version}" if version is not None else ""
        self.endpoint = f"{base}/v1/models/{model_name}{suffix}:predict"
        self.source = self.endpoint
        self.timeout = timeout
        self.class_names: Optional[List[str]] = None
        self.version = version

    def predict(self, images: Sequence[bytes]) -> Prediction:
        body = json.dumps({"signature_name": DEFAULT_SIGNATURE,
                           "instances": [{"b64": base64.b64encode(i).decode("ascii")}
                                         for i in images]}).encode("utf-8")
        request = urllib.request.Request(self.endpoint, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = json.loads(response.read())
        except urllib.error.HTTPError as err:
            raise PredictError(f"{self.endpoint}: HTTP {err.code}: {_error_text(err)}") from err
        except (urllib.error.URLError, OSError) as err:
            raise PredictError(f"{self.endpoint}: cannot reach the server: {err}") from err
        rows = payload.get("predictions") if isinstance(payload, dict) else None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise PredictError(f"{self.endpoint}: unexpected response {str(payload)[:200]}")
        columns = {key: [row[key] for row in rows] for key in rows[0]} if rows else {}
        return _prediction(columns, self.version)


def _error_text(err: urllib.error.HTTPError) -> str:
    text = err.read().decode("utf-8", "replace")
    try:
        return str(json.loads(text).get("error", text))
    except (ValueError, AttributeError):
        return text[:500]


class GrpcPredictor:
    """TF Serving's gRPC PredictionService at ``address`` (``host:port``), via the real stub."""

    def __init__(self, address: str, model_name: str, version: Optional[int] = None,
                 timeout: float = 30.0):
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        self._grpc = grpc
        self.source = f"grpc://{address}"
        self.model_name, self.version, self.timeout = model_name, version, timeout
        self.class_names: Optional[List[str]] = None
        self._channel = grpc.insecure_channel(address, options=[
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)])
        self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)

    def predict(self, images: Sequence[bytes]) -> Prediction:
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        request.model_spec.name = self.model_name
        request.model_spec.signature_name = DEFAULT_SIGNATURE
        if self.version is not None:
            request.model_spec.version.value = self.version
        request.inputs[features.SERVING_IMAGES_INPUT].CopyFrom(tf.make_tensor_proto(list(images)))
        try:
            response = self._stub.Predict(request, timeout=self.timeout)
        except self._grpc.RpcError as err:
            raise PredictError(f"{self.source}: {err.code().name}: {err.details()}") from err
        outputs = {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}
        version = response.model_spec.version.value if response.model_spec.HasField("version") \
            else None
        return _prediction(outputs, version)

    def close(self) -> None:
        self._channel.close()


def load_vocabulary(path: str) -> List[str]:
    """Class names from a JSON list file or a model version folder's ``assets.extra``."""
    names = read_class_names(path) if os.path.isdir(path) else None
    if names is None and os.path.isfile(path):
        with open(path, encoding="utf-8") as fh:
            names = json.load(fh)
    if not isinstance(names, list) or not names:
        raise PredictError(f"{path}: no class names (want a JSON list, or a model version folder "
                           f"with assets.extra/class_names.json)")
    return [str(name) for name in names]


def vocabulary_of(path: str, model_name: str) -> List[str]:
    """Class names of the SavedModel at ``path`` or of the newest version under it."""
    return load_vocabulary(resolve_version_dir(path, model_name))


def vocabulary_matches(vocabulary: Sequence[str], prediction: Prediction) -> bool:
    """True when ``vocabulary`` has one name per probability and agrees with the model's top-1."""
    if len(vocabulary) != prediction.probabilities.shape[-1]:
        return False
    return all(vocabulary[int(i)] == name
               for i, name in zip(prediction.class_ids, prediction.class_names))


def top_k(prediction: Prediction, k: int, vocabulary: Optional[Sequence[str]] = None
          ) -> List[List[Dict[str, object]]]:
    """Per image the ``k`` most probable classes, each ``{class_id, class_name, probability}``.

    Names come from the model for the top class and from ``vocabulary`` for the rest (or
    ``class_<id>`` when no vocabulary is known, e.g. for a remote server)."""
    results = []
    for row, top_id, top_name in zip(prediction.probabilities, prediction.class_ids,
                                     prediction.class_names):
        order = np.argsort(-row, kind="stable")[:max(1, min(k, row.shape[-1]))]
        entries = []
        for class_id in (int(i) for i in order):
            name = top_name if class_id == int(top_id) else \
                vocabulary[class_id] if vocabulary else f"class_{class_id}"
            entries.append({"class_id": class_id, "class_name": name,
                            "probability": float(row[class_id])})
        results.append(entries)
    return results
