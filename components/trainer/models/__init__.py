"""Model families behind one builder contract.

Every family is ``build(input_shape, num_classes, *, weights=None, options) -> tf.keras.Model``
taking transformed images (float, [H, W, C]) and returning class probabilities. ``weights`` follows
``keras.applications``: ``None`` (random init), a path to saved Keras weights, or ``'imagenet'``
where the family has a pre-trained part (``transfer``). ``model.flip_tta`` wraps any family in
horizontal-flip test-time augmentation (``tta.py``). ``train.precision`` sets the numeric policy
the layers are built with (``components/trainer/precision.py``).
"""
from __future__ import annotations

from typing import Callable, Dict

from components.trainer import precision
from components.trainer.models import baseline_cnn, compact_resnet, filter_bank, transfer, tta
from pipeline.config import ConfigError, LensflowConfig

FAMILIES: Dict[str, Callable] = {
    "baseline_cnn": baseline_cnn.build,
    "transfer": transfer.build,
    "filter_bank": filter_bank.build,
    "compact_resnet": compact_resnet.build,
}

DESCRIPTIONS = {
    "baseline_cnn": "the article's control: Conv/Pool x2 + Dense",
    "transfer": "ImageNet backbone as frozen feature extractor, then fine-tuned top layers",
    "filter_bank": "handcrafted kernels (Sobel, Laplacian, Gabor...) in parallel with a learned conv branch",
    "compact_resnet": "BN residual CNN, widest layers on the smallest maps (model.widths, model.depths)",
}


def build_model(cfg: LensflowConfig, input_shape, num_classes: int):
    """Build the configured family for transformed images of ``input_shape``."""
    family = cfg.model.family
    if family not in FAMILIES:
        raise ConfigError(f"model.family={family!r}; choose one of {', '.join(FAMILIES)}")
    with precision.policy(cfg.train.precision, family):
        model = FAMILIES[family](input_shape, num_classes, weights=_weights(cfg),
                                 options=cfg.model, cache_dir=cfg.weights_cache_dir)
        return tta.with_flip_tta(model) if cfg.model.flip_tta else model


def _weights(cfg: LensflowConfig):
    return cfg.model.weights if cfg.model.family == "transfer" else None

