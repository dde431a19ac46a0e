"""Test helper: write legacy-format PyTorch files without torch, by emitting pickle opcodes.

Produces the same layout torch < 1.6 wrote (magic, protocol, sys info, state dict with
persistent-id storages, storage keys, then raw storages), so the reader can be checked on
tensors with offsets and non-contiguous strides, and on hostile globals.
"""
import pickle
import struct
from typing import Dict, Tuple

import numpy as np

MAGIC = 0x1950A86A20F9469CFC6C
SYS_INFO = {"protocol_version": 1001, "little_endian": True,
            "type_sizes": {"short": 2, "int": 4, "long": 4}}


def op_global(module: str, name: str) -> bytes:
    return pickle.GLOBAL + f"{module}\n{name}\n".encode()


def op_str(text: str) -> bytes:
    raw = text.encode()
    return pickle.BINUNICODE + struct.pack("<I", len(raw)) + raw


def op_int(value: int) -> bytes:
    return pickle.BININT + struct.pack("<i", value)


def op_tuple(*items: bytes) -> bytes:
    return pickle.MARK + b"".join(items) + pickle.TUPLE


def op_tensor(key: str, numel: int, offset: int, shape: Tuple[int, ...],
              stride: Tuple[int, ...]) -> bytes:
    """Opcodes for _rebuild_tensor_v2(storage, offset, shape, stride, False, OrderedDict())."""
    storage = op_tuple(op_str("storage"), op_global("torch", "FloatStorage"), op_str(key),
                       op_str("cpu"), op_int(numel), pickle.NONE) + pickle.BINPERSID
    hooks = op_global("collections", "OrderedDict") + pickle.EMPTY_TUPLE + pickle.REDUCE
    args = op_tuple(storage, op_int(offset), op_tuple(*map(op_int, shape)),
                    op_tuple(*map(op_int, stride)), pickle.NEWFALSE, hooks)
    return op_global("torch._utils", "_rebuild_tensor_v2") + args + pickle.REDUCE


def state_dict_pickle(tensors: Dict[str, bytes]) -> bytes:
    """An OrderedDict pickle whose values are the given tensor opcodes."""
    body = b"".join(op_str(name) + ops for name, ops in tensors.items())
    return (pickle.PROTO + b"\x02" + op_global("collections", "OrderedDict") + pickle.EMPTY_TUPLE
            + pickle.REDUCE + pickle.MARK + body + pickle.SETITEMS + pickle.STOP)


def legacy_file(state_pickle: bytes, storages: Dict[str, np.ndarray]) -> bytes:
    """Assemble a complete legacy checkpoint around an already-pickled state dict."""
    parts = [pickle.dumps(MAGIC, protocol=2), pickle.dumps(1001, protocol=2),
             pickle.dumps(SYS_INFO, protocol=2), state_pickle,
             pickle.dumps(list(storages), protocol=2)]
    for array in storages.values():
        flat = np.ascontiguousarray(array, dtype="<f4").ravel()
        parts.append(struct.pack("<q", flat.size) + flat.tobytes())
    return b"".join(parts)


def hostile_pickle(module: str, name: str, argument: str) -> bytes:
    """A pickle that calls module.name(argument) when loaded by an unrestricted unpickler."""
    return (pickle.PROTO + b"\x02" + op_global(module, name) + op_tuple(op_str(argument))
            + pickle.REDUCE + pickle.STOP)
