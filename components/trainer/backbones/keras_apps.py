"""keras.applications backbones with their preprocessing inside the model; offline weight lookup.

ImageNet weights come from the Keras cache (the exact file ``keras.utils.get_file`` would download,
in the directory it would put it). The cache is checked before Keras is called, so an offline
machine gets a ``WeightsUnavailable`` naming the file instead of a download attempt; downloads
happen only when explicitly allowed.
"""
import os
from typing import Callable, Dict, NamedTuple, Optional, Tuple

import tensorflow as tf

from lensflow.components.trainer.backbones.errors import WeightsUnavailable
from lensflow.components.trainer.backbones.preprocessing import ScaleShift
from lensflow.pipeline.registry import BACKBONES

MOBILENET_V2_ROWS = (96, 128, 160, 192, 224)


class KerasBackbone(NamedTuple):
    """How to build one keras.applications model and name its ImageNet weights file (what
    ``lensflow.pipeline.registry.BACKBONES`` says of it -- preprocessing, licence, source -- is there)."""

    constructor: Callable[..., tf.keras.Model]
    weight_file: Callable[[bool, Tuple[int, int, int]], str]


def _mobilenet_v2_file(include_top: bool, input_shape) -> str:
    rows, cols = input_shape[0], input_shape[1]
    size = rows if rows == cols and rows in MOBILENET_V2_ROWS else 224
    suffix = "" if include_top else "_no_top"
    return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{size}{suffix}.h5"


def _efficientnet_b0_file(include_top: bool, input_shape) -> str:
    return "efficientnetb0.h5" if include_top else "efficientnetb0_notop.h5"


def _tf_kernels_file(prefix: str):
    def file_name(include_top: bool, input_shape) -> str:
        return f"{prefix}_weights_tf_dim_ordering_tf_kernels{'' if include_top else '_notop'}.h5"
    return file_name


KERAS_BACKBONES: Dict[str, KerasBackbone] = {
    "mobilenet_v2": KerasBackbone(tf.keras.applications.MobileNetV2, _mobilenet_v2_file),
    "efficientnet_b0": KerasBackbone(tf.keras.applications.EfficientNetB0,
                                     _efficientnet_b0_file),
    "resnet50": KerasBackbone(tf.keras.applications.ResNet50, _tf_kernels_file("resnet50")),
    "vgg16": KerasBackbone(tf.keras.applications.VGG16, _tf_kernels_file("vgg16")),
}


def keras_cache_dir() -> str:
    """The directory keras.utils.get_file uses for applications weights (``~/.keras/models``).

    Mirrors get_file: when ``~/.keras`` is not writable (or does not exist) Keras falls back to
    ``/tmp/.keras``.
    """
    base = os.path.expanduser(os.path.join("~", ".keras"))
    if not os.access(base, os.W_OK):
        base = os.path.join("/tmp", ".keras")
    return os.path.join(base, "models")


def imagenet_weights_path(name: str, include_top: bool, input_shape) -> str:
    """Where the ImageNet weights file for this backbone and configuration must be."""
    spec = KERAS_BACKBONES[name]
    return os.path.join(keras_cache_dir(), spec.weight_file(include_top, tuple(input_shape)))


def downloads_allowed(allow_download: Optional[bool]) -> bool:
    """Explicit argument wins; otherwise ``LENSFLOW_ALLOW_DOWNLOAD=1`` opts in to downloads."""
    if allow_download is not None:
        return bool(allow_download)
    return os.environ.get("LENSFLOW_ALLOW_DOWNLOAD", "") == "1"


def _resolve_weights(name: str, weights, include_top: bool, input_shape,
                     allow_download: Optional[bool]):
    if weights is None:
        return None
    if weights != "imagenet":
        if not os.path.exists(weights):
            raise FileNotFoundError(f"weights file for backbone '{name}' not found: {weights}")
        return weights
    path = imagenet_weights_path(name, include_top, input_shape)
    if os.path.exists(path) or downloads_allowed(allow_download):
        return "imagenet"
    raise WeightsUnavailable(
        name, os.path.basename(path), os.path.dirname(path),
        "or set LENSFLOW_ALLOW_DOWNLOAD=1 on a machine with network access")


def build_keras_backbone(name: str, input_shape, weights, cache_dir: Optional[str] = None,
                         include_top: bool = False,
                         allow_download: Optional[bool] = None) -> tf.keras.Model:
    """Wrap keras.applications.<name> so it takes [0, 255] pixels and preprocesses them itself
    (the registry entry's ``preprocess``); ``cache_dir`` is unused (the Keras cache is fixed).

    include_top=False gives the global-average-pooled feature vector; True gives ImageNet
    softmax probabilities.
    """
    spec = KERAS_BACKBONES[name]
    preprocess = BACKBONES[name].preprocess
    resolved = _resolve_weights(name, weights, include_top, input_shape, allow_download)
    base = spec.constructor(include_top=include_top, weights=resolved,
                            input_shape=tuple(input_shape), pooling=None if include_top else "avg")
    inputs = tf.keras.Input(shape=tuple(input_shape), name="image")
    x = ScaleShift(name="preprocess", **preprocess)(inputs) if preprocess else inputs
    return tf.keras.Model(inputs, base(x), name=name)
