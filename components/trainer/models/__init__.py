"""Model families behind one builder contract.

Every family is ``build(input_shape, num_classes, *, weights=None, options) -> tf.keras.Model``
taking transformed images (float, [H, W, C]) and returning class probabilities. ``weights`` follows
``keras.applications``: ``None`` (random init), a path to saved Keras weights, or ``'imagenet'``
where the family has a pre-trained part (``transfer``). The families are registered in
``pipeline/registry.py``. ``model.flip_tta`` wraps any family in
horizontal-flip test-time augmentation (``tta.py``). ``train.precision`` sets the numeric policy
the layers are built with (``components/trainer/precision.py``).
"""
from __future__ import annotations

from lensflow.components.trainer import precision
from lensflow.components.trainer.models import tta
from lensflow.pipeline.config import LensflowConfig
from lensflow.pipeline.registry import FAMILIES, family_of

__all__ = ["FAMILIES", "build_model"]


def build_model(cfg: LensflowConfig, input_shape, num_classes: int):
    """Build the configured family (``pipeline/registry.py``) for images of ``input_shape``."""
    family = family_of(cfg.model.family)
    weights = cfg.model.weights if family.imagenet_weights else None
    with precision.policy(cfg.train.precision, family.name):
        model = family.load_builder()(input_shape, num_classes, weights=weights,
                                      options=cfg.model, cache_dir=cfg.weights_cache_dir)
        return tta.with_flip_tta(model) if cfg.model.flip_tta else model
