"""TF Serving's gRPC PredictionService (Predict, GetModelMetadata) and ModelService
(GetModelStatus) over the servicer base classes of ``tensorflow-serving-api``.

Part of ``lensflow serve``, a stand-in for local development and tests; production serving is
TF Serving itself.
"""
from __future__ import annotations

import logging
from concurrent import futures
from typing import Optional

import grpc
import tensorflow as tf
from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2,
                                     model_service_pb2_grpc, predict_pb2,
                                     prediction_service_pb2_grpc)

from lensflow.serving import protos
from lensflow.serving.errors import BadRequest, NotFound, ServingError
from lensflow.serving.model_store import ModelStore
from lensflow.serving.saved_model import DEFAULT_SIGNATURE

log = logging.getLogger("lensflow.serving.grpc")

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def _requested_version(store: ModelStore, spec) -> Optional[int]:
    """The version a ModelSpec asks for (None: latest); NotFound for another model's name."""
    if not spec.name:
        raise BadRequest("Missing ModelSpec name")
    if spec.name != store.model_name:
        raise NotFound(f"Servable not found for request: Latest({spec.name})")
    if spec.WhichOneof("version_choice") == "version_label":
        return store.version_of_label(spec.version_label)
    return spec.version.value if spec.HasField("version") else None


def _answer(context: grpc.ServicerContext, call):
    """Run ``call``; report a ServingError with its status code and anything else as INTERNAL."""
    try:
        return call()
    except ServingError as err:
        context.abort(err.grpc_code, str(err))
    except Exception as err:  # noqa: BLE001 - a bug must reach the client as a status
        log.exception("gRPC request failed")
        context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(err).__name__}: {err}")


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict and GetModelMetadata; Classify, Regress and MultiInference stay UNIMPLEMENTED."""

    def __init__(self, store: ModelStore):
        self.store = store

    def Predict(self, request: predict_pb2.PredictRequest, context) -> predict_pb2.PredictResponse:
        return _answer(context, lambda: self._predict(request))

    def GetModelMetadata(self, request: get_model_metadata_pb2.GetModelMetadataRequest, context
                         ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        return _answer(context, lambda: self._metadata(request))

    def _predict(self, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
        model = self.store.get(_requested_version(self.store, request.model_spec))
        inputs = {name: _to_array(name, proto) for name, proto in request.inputs.items()}
        signature = request.model_spec.signature_name or DEFAULT_SIGNATURE
        outputs = self.store.predict(model, inputs, signature,
                                     list(request.output_filter) or None)
        response = predict_pb2.PredictResponse()
        response.model_spec.CopyFrom(protos.model_spec(self.store.model_name, model.version,
                                                       signature))
        for name, array in outputs.items():
            response.outputs[name].CopyFrom(tf.make_tensor_proto(array))
        return response

    def _metadata(self, request: get_model_metadata_pb2.GetModelMetadataRequest
                  ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        fields = list(request.metadata_field)
        if not fields:
            raise BadRequest("GetModelMetadataRequest must specify at least one metadata_field")
        unsupported = [f for f in fields if f != protos.SIGNATURE_DEF_FIELD]
        if unsupported:
            raise BadRequest(f"Metadata field(s) {unsupported} not supported; "
                             f"use {protos.SIGNATURE_DEF_FIELD!r}")
        model = self.store.get(_requested_version(self.store, request.model_spec))
        return protos.metadata_response(model, self.store.model_name)


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """GetModelStatus; HandleReloadConfigRequest stays UNIMPLEMENTED (the folder is polled)."""

    def __init__(self, store: ModelStore):
        self.store = store

    def GetModelStatus(self, request: get_model_status_pb2.GetModelStatusRequest, context
                       ) -> get_model_status_pb2.GetModelStatusResponse:
        return _answer(context, lambda: protos.status_response(
            self.store.status(_requested_version(self.store, request.model_spec))))


def _to_array(name: str, proto):
    try:
        return tf.make_ndarray(proto)
    except (TypeError, ValueError) as err:
        raise BadRequest(f"input {name!r} is not a readable TensorProto: {err}") from err


def make_grpc_server(store: ModelStore, host: str, port: int, max_workers: int = 4,
                     max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES):
    """A gRPC server with both services, bound but not started; returns (server, bound port)."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="lensflow-grpc"),
        options=[("grpc.max_receive_message_length", max_message_bytes),
                 ("grpc.max_send_message_length", max_message_bytes)])
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(store), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(store), server)
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError as err:
        raise OSError(f"cannot bind gRPC to {host}:{port}: {err}") from err
    if bound == 0:
        raise OSError(f"cannot bind gRPC to {host}:{port}")
    return server, bound
