"""TF Serving's REST JSON for predict: row (``instances``) and columnar (``inputs``) requests,
``{"b64": ...}`` binary values, and the matching ``predictions`` / ``outputs`` responses."""
from __future__ import annotations

import base64
import binascii
from typing import Any, Dict, List, Mapping, Tuple

import numpy as np

from lensflow.serving.errors import BadRequest

ROW, COLUMNAR = "row", "columnar"
B64 = "b64"


def parse_predict_request(body: Any, input_names: List[str]) -> Tuple[Dict[str, Any], str]:
    """Inputs by name (b64 decoded) and the request format, for a signature taking ``input_names``."""
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object with 'instances' or 'inputs'")
    has_rows, has_columns = "instances" in body, "inputs" in body
    if has_rows == has_columns:
        raise BadRequest("exactly one of 'instances' (row format) or 'inputs' (columnar format) "
                         "must be given")
    if has_rows:
        return _rows_to_columns(body["instances"], input_names), ROW
    return _columns(body["inputs"], input_names), COLUMNAR


def _rows_to_columns(instances: Any, input_names: List[str]) -> Dict[str, List[Any]]:
    if not isinstance(instances, list) or not instances:
        raise BadRequest("'instances' must be a non-empty list")
    named = [_is_named(instance) for instance in instances]
    if any(named) and not all(named):
        raise BadRequest("'instances' mixes named (objects) and unnamed values")
    if not named[0]:
        name = _only_input(input_names, "instance")
        return {name: [decode_value(value) for value in instances]}
    columns: Dict[str, List[Any]] = {name: [] for name in instances[0]}
    for index, instance in enumerate(instances):
        if set(instance) != set(columns):
            raise BadRequest(f"instance {index} has keys {sorted(instance)}; "
                             f"instance 0 has {sorted(columns)}")
        for name, value in instance.items():
            columns[name].append(decode_value(value))
    return columns


def _columns(inputs: Any, input_names: List[str]) -> Dict[str, Any]:
    if _is_named(inputs):
        return {name: decode_value(value) for name, value in inputs.items()}
    return {_only_input(input_names, "'inputs' value"): decode_value(inputs)}


def _is_named(value: Any) -> bool:
    return isinstance(value, dict) and set(value) != {B64}


def _only_input(input_names: List[str], what: str) -> str:
    if len(input_names) != 1:
        raise BadRequest(f"the signature has inputs {sorted(input_names)}; "
                         f"each {what} must name them in an object")
    return input_names[0]


def decode_value(value: Any) -> Any:
    """Nested JSON value -> Python lists; ``{"b64": s}`` -> bytes, strings -> UTF-8 bytes."""
    if isinstance(value, list):
        return [decode_value(item) for item in value]
    if isinstance(value, dict):
        if set(value) != {B64} or not isinstance(value[B64], str):
            raise BadRequest(f"binary values must be {{\"b64\": \"...\"}}; got keys {sorted(value)}")
        try:
            return base64.b64decode(value[B64], validate=True)
        except (binascii.Error, ValueError) as err:
            raise BadRequest(f"invalid base64 in a 'b64' value: {err}") from err
    if isinstance(value, str):
        return value.encode("utf-8")
    return value


def format_predict_response(outputs: Mapping[str, np.ndarray], fmt: str) -> Dict[str, Any]:
    """``{"predictions": [...]}`` (row) or ``{"outputs": ...}`` (columnar), as TF Serving answers."""
    encoded = {name: encode_array(name, array) for name, array in outputs.items()}
    if fmt == COLUMNAR:
        return {"outputs": next(iter(encoded.values())) if len(encoded) == 1 else encoded}
    sizes = {name: len(value) if isinstance(value, list) else None
             for name, value in encoded.items()}
    if len(set(sizes.values())) != 1 or None in sizes.values():
        raise BadRequest(f"outputs have different batch sizes {sizes}; use the columnar "
                         f"'inputs' format")
    batch = next(iter(sizes.values()))
    if len(encoded) == 1:
        return {"predictions": next(iter(encoded.values()))}
    return {"predictions": [{name: value[i] for name, value in encoded.items()}
                            for i in range(batch)]}


def encode_array(name: str, array: np.ndarray) -> Any:
    """Numbers as JSON numbers; strings as text, or ``{"b64": ...}`` for ``*_bytes`` outputs and
    bytes that are not UTF-8."""
    array = np.asarray(array)
    if array.dtype.kind in "OSU":
        return _encode_strings(name.endswith("_bytes"), array.tolist())
    return array.tolist()


def _encode_strings(as_b64: bool, value: Any) -> Any:
    if isinstance(value, list):
        return [_encode_strings(as_b64, item) for item in value]
    if isinstance(value, str):
        value = value.encode("utf-8")
    if not as_b64:
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return {B64: base64.b64encode(value).decode("ascii")}
