"""Model families behind one builder contract.

Every family is ``build(input_shape, num_classes, *, weights=None, options) -> tf.keras.Model``
taking transformed images (float, [H, W, C]) and returning class probabilities. ``weights`` follows
``keras.applications``: ``None`` (random init), a path to saved Keras weights, or ``'imagenet'``
where the family has a pre-trained part (``transfer``).
"""
from __future__ import annotations

from typing import Callable, Dict

from components.trainer.models import baseline_cnn, filter_bank, transfer
from pipeline.config import ConfigError, LensflowConfig

FAMILIES: Dict[str, Callable] = {
    "baseline_cnn": baseline_cnn.build,
    "transfer": transfer.build,
    "filter_bank": filter_bank.build,
}

DESCRIPTIONS = {
    "baseline_cnn": "the article's control: Conv/Pool x2 + Dense",
    "transfer": "ImageNet backbone as frozen feature extractor, then fine-tuned top layers",
    "filter_bank": "handcrafted kernels (Sobel, Laplacian, Gabor...) in parallel with a learned conv branch",
}


def build_model(cfg: LensflowConfig, input_shape, num_classes: int):
    """Build the configured family for transformed images of ``input_shape``."""
    family = cfg.model.family
    if family not in FAMILIES:
        raise ConfigError(f"model.family={family!r}; choose one of {', '.join(FAMILIES)}")
    return FAMILIES[family](input_shape, num_classes, weights=_weights(cfg), options=cfg.model,
                            cache_dir=cfg.weights_cache_dir)


def _weights(cfg: LensflowConfig):
    return cfg.model.weights if cfg.model.family == "transfer" else None

