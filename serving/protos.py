"""TF Serving's status and metadata messages, built once and sent as protos (gRPC) or JSON (REST)."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from google.protobuf import json_format
from tensorflow.core.protobuf import error_codes_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, model_pb2

from lensflow.serving.model_store import VersionStatus
from lensflow.serving.saved_model import LoadedModel

SIGNATURE_DEF_FIELD = "signature_def"


def status_response(statuses: List[VersionStatus]) -> get_model_status_pb2.GetModelStatusResponse:
    """A GetModelStatusResponse listing ``statuses``."""
    response = get_model_status_pb2.GetModelStatusResponse()
    for status in statuses:
        entry = response.model_version_status.add()
        entry.version = status.version
        entry.state = get_model_status_pb2.ModelVersionStatus.State.Value(status.state)
        entry.status.error_code = error_codes_pb2.Code.Value(status.error_code)
        entry.status.error_message = status.error_message
    return response


def model_spec(name: str, version: Optional[int], signature_name: str = "") -> model_pb2.ModelSpec:
    """A ModelSpec naming the model (and version) that answered."""
    spec = model_pb2.ModelSpec(name=name, signature_name=signature_name)
    if version is not None:
        spec.version.value = version
    return spec


def metadata_response(model: LoadedModel, name: str
                      ) -> get_model_metadata_pb2.GetModelMetadataResponse:
    """A GetModelMetadataResponse carrying the SignatureDefMap of ``model``'s serve MetaGraph."""
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for key, signature in model.meta_graph.signature_def.items():
        signature_map.signature_def[key].CopyFrom(signature)
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.CopyFrom(model_spec(name, model.version))
    response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_map)
    return response


def to_json_dict(message) -> Dict[str, Any]:
    """A proto as TF Serving's REST API prints it: proto field names, defaults included."""
    return json_format.MessageToDict(message, including_default_value_fields=True,
                                     preserving_proto_field_name=True)


def metadata_json(response: get_model_metadata_pb2.GetModelMetadataResponse) -> Dict[str, Any]:
    """REST shape of model metadata: ``{"model_spec": ..., "metadata": {"signature_def": ...}}``."""
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata[SIGNATURE_DEF_FIELD].Unpack(signature_map)
    return {"model_spec": to_json_dict(response.model_spec),
            "metadata": {SIGNATURE_DEF_FIELD: to_json_dict(signature_map)}}
