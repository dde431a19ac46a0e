"""Read legacy-format PyTorch state dicts into numpy arrays, without torch.

The legacy format (torch < 1.6) is a run of pickles -- magic number, protocol version, sys info,
the state dict (tensors point at storages by persistent id), the list of storage keys -- followed by
each storage as an 8-byte little-endian element count and its raw little-endian data. Only a short
allow-list of globals may be loaded, so a hostile file cannot run code.
"""
import collections
import pickle
from typing import BinaryIO, Dict

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class UnsafePickleError(pickle.UnpicklingError):
    """The file names a global outside the allow-list."""


class _StorageType:
    """Stands in for a torch.*Storage class: only its numpy dtype matters."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = np.dtype(STORAGE_DTYPES[name]).newbyteorder("<")


class _TensorRef:
    """A tensor whose storage bytes come later in the file."""

    def __init__(self, storage_key, offset, shape, stride):
        self.storage_key = storage_key
        self.offset = int(offset)
        self.shape = tuple(int(s) for s in shape)
        self.stride = tuple(int(s) for s in stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    """Allow-listed replacement for torch._utils._rebuild_tensor_v2."""
    key, offset = storage
    return _TensorRef(key, offset + storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    """Allow-listed replacement for torch._utils._rebuild_parameter: a parameter is its data."""
    return data


_ALLOWED_FUNCTIONS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only OrderedDict, tensor rebuilders and torch storage types."""

    def __init__(self, file: BinaryIO, storages: Dict[str, tuple]):
        super().__init__(file)
        self._storages = storages

    def find_class(self, module, name):
        if (module, name) in _ALLOWED_FUNCTIONS:
            return _ALLOWED_FUNCTIONS[(module, name)]
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise UnsafePickleError(
            f"refusing to load global {module}.{name}: only OrderedDict, tensor rebuilders and "
            "torch storage types are allowed in a weights file")

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        _, storage_type, key, _location, numel, view_metadata = pid
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"persistent id names no storage type: {pid!r}")
        self._storages.setdefault(key, (storage_type.dtype, int(numel)))
        if view_metadata is not None:
            view_key, view_offset, _view_size = view_metadata
            self._storages.setdefault(view_key, (storage_type.dtype, int(numel)))
            return (key, int(view_offset))
        return (key, 0)


def _safe_load(f: BinaryIO, storages: Dict[str, tuple]):
    return RestrictedUnpickler(f, storages).load()


def _read_storages(f: BinaryIO, keys, declared: Dict[str, tuple]) -> Dict[str, np.ndarray]:
    data = {}
    for key in keys:
        if key not in declared:
            raise pickle.UnpicklingError(f"storage {key!r} listed but never referenced")
        dtype, _ = declared[key]
        numel = int.from_bytes(_read_exact(f, 8), "little", signed=True)
        raw = _read_exact(f, numel * dtype.itemsize)
        data[key] = np.frombuffer(raw, dtype=dtype)
    return data


def _read_exact(f: BinaryIO, n: int) -> bytes:
    buf = f.read(n)
    if len(buf) != n:
        raise pickle.UnpicklingError(f"truncated file: wanted {n} bytes, got {len(buf)}")
    return buf


def _materialise(ref: _TensorRef, storages: Dict[str, np.ndarray]) -> np.ndarray:
    flat = storages[ref.storage_key]
    if not ref.shape:
        return np.array(flat[ref.offset], dtype=flat.dtype.newbyteorder("="))
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.shape, ref.stride))
    if ref.offset < 0 or last >= flat.size:
        raise pickle.UnpicklingError(f"tensor view exceeds storage {ref.storage_key!r}")
    view = np.lib.stride_tricks.as_strided(
        flat[ref.offset:], shape=ref.shape,
        strides=tuple(s * flat.itemsize for s in ref.stride), writeable=False)
    return np.ascontiguousarray(view).astype(flat.dtype.newbyteorder("="))


def _resolve(obj, storages):
    if isinstance(obj, _TensorRef):
        return _materialise(obj, storages)
    if isinstance(obj, dict):
        return collections.OrderedDict((k, _resolve(v, storages)) for k, v in obj.items())
    return obj


def load_legacy_state_dict(f: BinaryIO) -> "collections.OrderedDict[str, np.ndarray]":
    """Parse a legacy PyTorch checkpoint stream; returns {name: numpy array}."""
    storages: Dict[str, tuple] = {}
    magic = _safe_load(f, storages)
    if magic != LEGACY_MAGIC:
        raise pickle.UnpicklingError(
            "not a legacy PyTorch file (bad magic number); zip-format checkpoints are unsupported")
    protocol = _safe_load(f, storages)
    if protocol != LEGACY_PROTOCOL:
        raise pickle.UnpicklingError(f"unsupported legacy protocol version {protocol!r}")
    sys_info = _safe_load(f, storages)
    if not sys_info.get("little_endian", False):
        raise pickle.UnpicklingError("big-endian checkpoints are not supported")
    state = _safe_load(f, storages)
    keys = _safe_load(f, storages)
    data = _read_storages(f, keys, storages)
    return _resolve(state, data)


def load_legacy_state_dict_file(path: str) -> "collections.OrderedDict[str, np.ndarray]":
    """Parse a legacy PyTorch checkpoint file; returns {name: numpy array}."""
    with open(path, "rb") as f:
        return load_legacy_state_dict(f)
