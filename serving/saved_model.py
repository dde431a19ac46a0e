"""One loaded SavedModel version: its signatures, their metadata, and checked predictions."""
from __future__ import annotations

import json
import os
import re
from typing import Any, Dict, List, Mapping, Optional

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

from lensflow.components.transform import features
from lensflow.pipeline.config import DataConfig
from lensflow.serving.errors import BadRequest, ModelNotFound

SERVE_TAG = "serve"
DEFAULT_SIGNATURE = "serving_default"
CLASS_NAMES_FILE = features.CLASS_NAMES_FILE
# The stand-in's transport ceiling per string; the model's own limit (``data.max_file_bytes``,
# enforced inside ``serving_default``) is the one that matters, this default included.
MAX_STRING_BYTES = DataConfig.max_file_bytes

_TF_NOISE = re.compile(r"^(Graph execution error:|Detected at node|<stack traces|\s*\[\[|\s*$)")


def is_version_dir(path: str) -> bool:
    """True when ``path`` holds a SavedModel (``saved_model.pb``)."""
    return os.path.isfile(os.path.join(path, "saved_model.pb"))


def read_meta_graph(path: str, tag: str = SERVE_TAG) -> meta_graph_pb2.MetaGraphDef:
    """The MetaGraphDef tagged ``tag`` in the SavedModel at ``path`` (what TF Serving loads)."""
    saved = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as fh:
        saved.ParseFromString(fh.read())
    for meta_graph in saved.meta_graphs:
        if tag in meta_graph.meta_info_def.tags:
            return meta_graph
    raise ModelNotFound(f"{path}: no MetaGraph tagged {tag!r}")


def read_class_names(path: str) -> Optional[List[str]]:
    """The class vocabulary from ``assets.extra/class_names.json``, or None when absent."""
    file = os.path.join(path, CLASS_NAMES_FILE)
    if not os.path.isfile(file):
        return None
    with open(file, encoding="utf-8") as fh:
        return [str(name) for name in json.load(fh)]


def tf_error_message(err: tf.errors.OpError) -> str:
    """The useful lines of a TensorFlow runtime error, without graph-execution boilerplate."""
    lines = [line.strip() for line in str(err.message).splitlines() if not _TF_NOISE.match(line)]
    return " ".join(lines) or err.__class__.__name__


class LoadedModel:
    """A SavedModel loaded for serving; ``predict`` validates inputs before running a signature."""

    def __init__(self, path: str, version: Optional[int] = None):
        if not is_version_dir(path):
            raise ModelNotFound(f"{path}: no saved_model.pb (not a SavedModel version folder)")
        self.path = path
        self.version = version
        self.meta_graph = read_meta_graph(path)
        self.class_names = read_class_names(path)
        self._model = tf.saved_model.load(path, tags=[SERVE_TAG])
        self._signatures = dict(self._model.signatures)

    @property
    def signature_names(self) -> List[str]:
        return sorted(self._signatures)

    def input_specs(self, signature_name: Optional[str] = None) -> Dict[str, tf.TensorSpec]:
        """Input name -> TensorSpec of a signature (BadRequest when the signature is unknown)."""
        return dict(self._signature(signature_name).structured_input_signature[1])

    def predict(self, inputs: Mapping[str, Any], signature_name: Optional[str] = None,
                output_filter: Optional[List[str]] = None) -> Dict[str, np.ndarray]:
        """Run a signature on ``inputs`` (lists or arrays); bad input raises BadRequest."""
        function = self._signature(signature_name)
        specs = dict(function.structured_input_signature[1])
        _check_names("input", sorted(inputs), sorted(specs))
        tensors = {name: _to_tensor(name, inputs[name], spec) for name, spec in specs.items()}
        try:
            outputs = function(**tensors)
        except (tf.errors.InvalidArgumentError, tf.errors.FailedPreconditionError) as err:
            raise BadRequest(tf_error_message(err)) from err
        if output_filter:
            unknown = sorted(set(output_filter) - set(outputs))
            if unknown:
                raise BadRequest(f"output_filter names unknown output(s) {unknown}; "
                                 f"outputs: {sorted(outputs)}")
            outputs = {name: outputs[name] for name in output_filter}
        return {name: value.numpy() for name, value in outputs.items()}

    def _signature(self, name: Optional[str]):
        name = name or DEFAULT_SIGNATURE
        if name not in self._signatures:
            raise BadRequest(f"Serving signature name: {name!r} not found in signature def; "
                             f"available: {self.signature_names}")
        return self._signatures[name]


def _check_names(kind: str, given: List[str], expected: List[str]) -> None:
    if given != expected:
        raise BadRequest(f"{kind} names {given} do not match the signature's {expected}")


def _to_tensor(name: str, value: Any, spec: tf.TensorSpec) -> tf.Tensor:
    """Convert one input to ``spec``'s dtype and check its shape and string sizes."""
    try:
        tensor = tf.convert_to_tensor(value, dtype=spec.dtype)
    except (TypeError, ValueError, tf.errors.InvalidArgumentError) as err:
        raise BadRequest(f"input {name!r} cannot be read as {spec.dtype.name} "
                         f"{spec.shape}: {err}") from err
    if not spec.shape.is_compatible_with(tensor.shape):
        raise BadRequest(f"input {name!r} has shape {tensor.shape.as_list()}; "
                         f"the signature expects {spec.shape}")
    if tensor.shape.rank and tensor.shape[0] == 0:
        raise BadRequest(f"input {name!r} is empty; send at least one instance")
    if spec.dtype == tf.string:
        _check_string_sizes(name, tensor)
    return tensor


def _check_string_sizes(name: str, tensor: tf.Tensor) -> None:
    lengths = tf.reshape(tf.strings.length(tensor), [-1]).numpy()
    too_big = np.flatnonzero(lengths > MAX_STRING_BYTES)
    if too_big.size:
        index = int(too_big[0])
        raise BadRequest(f"input {name!r} element {index} is {int(lengths[index])} bytes; "
                         f"the limit is {MAX_STRING_BYTES} bytes")
