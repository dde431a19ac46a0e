"""The variants ``lensflow compare`` knows: named config overrides, one per lever of the article.

A variant is a set of dotted overrides applied on top of the user's config, so everything the
user configured (data, image size, epochs, thresholds, Beam...) stays the same across variants and
only the Trainer-side settings differ; ingestion and Transform are then shared through the TFX
cache. A value may be ``FromConfig("train.epochs")``: the user's own setting of that key.

Variants other than ``augment`` switch augmentation off entirely (preset ``none`` and no explicit
strengths), so each lever is measured alone against the baseline; ``augment`` uses the
``standard`` preset with the user's explicit strengths and ``allow_orientation_changes`` kept.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List

from lensflow.pipeline.config import ConfigError, LensflowConfig

_NO_AUGMENTATION = {"augment.preset": "none", "augment.horizontal_flip": None,
                    "augment.vertical_flip": None, "augment.rotation": None, "augment.zoom": None,
                    "augment.translation": None, "augment.contrast": None,
                    "augment.brightness": None, "augment.crop_padding": None,
                    "augment.erasing": None}
_TRANSFER = {"model.family": "transfer", "model.backbone": "efficientnet_lite0",
             "model.weights": "imagenet"}
FINE_TUNE_LAYERS = 20


@dataclass(frozen=True)
class FromConfig:
    """An override whose value is the user's setting of another key (read before overriding)."""

    key: str

    def __str__(self) -> str:
        return f"<{self.key}>"


@dataclass(frozen=True)
class Variant:
    """One named preset: what it shows and the overrides that make it."""

    name: str
    description: str
    overrides: Dict[str, Any]


VARIANTS: Dict[str, Variant] = {v.name: v for v in (
    Variant("baseline", "small CNN (Conv/Pool x2 + Dense), no augmentation: the control",
            {"model.family": "baseline_cnn", **_NO_AUGMENTATION}),
    Variant("augment", "baseline CNN + the standard on-the-fly augmentation (training only)",
            {"model.family": "baseline_cnn", "augment.preset": "standard"}),
    Variant("transfer_frozen", "EfficientNet-Lite0 (ImageNet weights) frozen, new head trained",
            {**_TRANSFER, **_NO_AUGMENTATION, "train.fine_tune_epochs": 0}),
    Variant("transfer_finetuned",
            f"EfficientNet-Lite0 frozen, then its top {FINE_TUNE_LAYERS} layers fine-tuned for as "
            "many epochs again at the fine-tuning learning rate",
            {**_TRANSFER, **_NO_AUGMENTATION, "train.fine_tune_epochs": FromConfig("train.epochs"),
             "model.fine_tune_layers": FINE_TUNE_LAYERS}),
    Variant("filter_fixed", "fixed handcrafted kernels (Sobel, Laplacian, Gabor...) in parallel "
            "with a learned conv branch",
            {"model.family": "filter_bank", "model.filter_mode": "fixed", **_NO_AUGMENTATION}),
    Variant("filter_init", "the same bank as a trainable initialisation",
            {"model.family": "filter_bank", "model.filter_mode": "init", **_NO_AUGMENTATION}),
)}


def parse_variants(text: str) -> List[str]:
    """``"baseline,augment"`` -> names in the given order; unknown or repeated names are errors."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in VARIANTS]
    if unknown or not names:
        raise ConfigError(f"unknown variant(s) {', '.join(unknown) or '(none given)'}; "
                          f"choose from {', '.join(VARIANTS)}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(f"variant(s) listed twice: {', '.join(repeated)}")
    return names


def resolved_overrides(cfg: LensflowConfig, name: str) -> Dict[str, Any]:
    """The variant's overrides with every ``FromConfig`` replaced by the user's value."""
    raw = cfg.to_dict()

    def lookup(key: str) -> Any:
        node: Any = raw
        for part in key.split("."):
            node = node[part]
        return node

    return {key: lookup(value.key) if isinstance(value, FromConfig) else value
            for key, value in VARIANTS[name].overrides.items()}


def variant_config(cfg: LensflowConfig, name: str, seed_index: int = 0) -> LensflowConfig:
    """The user's config with the variant applied and the seeds offset by ``seed_index``
    (``train.seed`` and ``augment.seed``, so augmentation draws differ between seeds too)."""
    return cfg.replace(**resolved_overrides(cfg, name),
                       **{"train.seed": cfg.train.seed + seed_index,
                          "augment.seed": cfg.augment.seed + seed_index})
