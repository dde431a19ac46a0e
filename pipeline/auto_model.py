"""``model.family: auto``: choose the family, image size and colour mode from the data itself.

What a dataset *is* (grey or colour, tiny or large) is known before any component runs: the
files are on disk when the pipeline is built (``create_pipeline`` already fingerprints them).
Ingestion's statistics come too late, since the Trainer's settings are fixed when the pipeline
is built. So the choice comes from a cheap look at an evenly spread sample of the images
(Pillow reads the header for the size; a 32-px thumbnail, composited over white as ingestion
does, tells colour from grey). The rule is the registry's (``AUTO_*`` in
``pipeline/registry.py``). Keys the user set (``--model``, ``--image-size``, ``--set``, YAML)
are never overridden, and the choice and its reason go to the Trainer, which records them for
the summary and the report (``components/trainer/choice.py``).
"""
from __future__ import annotations

import io
import statistics
from dataclasses import dataclass
from typing import Any, Dict, FrozenSet, Iterable, Optional, Tuple

import numpy as np
from PIL import Image

from lensflow.components.image_example_gen.scan import DatasetError, scan_directory, scan_manifest
from lensflow.pipeline.config import LensflowConfig
from lensflow.pipeline.object_store import ensure_filesystem, is_uri
from lensflow.pipeline.registry import (AUTO, AUTO_FALLBACK, AUTO_MAX_CNN_SIZE,
                                        AUTO_TRANSFER_MIN_SIDE)

SAMPLE_SIZE = 200
IMAGE_KEYS = ("image.size", "image.color_mode")
GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
COLOUR_TOLERANCE = 12       # channel spread (0-255) below which a pixel counts as grey
COLOUR_PIXELS = 0.02        # share of coloured pixels that makes an image colour


@dataclass(frozen=True)
class DataLook:
    """What the sample showed: how many images were read, the share in colour and the
    median short and long sides."""

    sampled: int
    colour_share: float
    short_side: int
    long_side: int
    unreadable: int = 0

    def describe(self) -> str:
        return (f"{self.sampled} sampled images, {self.colour_share:.0%} in colour, "
                f"median {self.long_side}x{self.short_side} px (long x short side)")


def look(cfg: LensflowConfig, sample_size: int = SAMPLE_SIZE) -> DataLook:
    """Sample up to ``sample_size`` of the data's images evenly (in path order) and look at
    them. DatasetError when the data cannot be listed or holds no readable image."""
    source = cfg.data.manifest or cfg.data.path
    if not source:
        raise DatasetError("no data.path or data.manifest to look at")
    scanned = scan_manifest(source) if cfg.data.manifest else scan_directory(source)
    paths = [candidate.path for candidate in scanned.candidates]
    if not paths:
        raise DatasetError(f"{source!r} holds no image files")
    step = max(1, len(paths) // sample_size)
    sizes, colours, unreadable = [], [], 0
    for path in paths[::step][:sample_size]:
        try:
            width, height, colour = _inspect(path)
        except (OSError, ValueError, Image.DecompressionBombError):
            unreadable += 1  # ingestion rejects and reports it; the choice skips it
            continue
        sizes.append((width, height))
        colours.append(colour)
    if not sizes:
        raise DatasetError(f"none of the {unreadable} sampled images under {source!r} is readable")
    return DataLook(sampled=len(sizes), colour_share=sum(colours) / len(colours),
                    short_side=int(statistics.median(min(s) for s in sizes)),
                    long_side=int(statistics.median(max(s) for s in sizes)),
                    unreadable=unreadable)


def _inspect(path: str) -> Tuple[int, int, bool]:
    """(width, height, in colour) of one image file or object."""
    if is_uri(path):
        import tensorflow as tf

        ensure_filesystem(path)
        with tf.io.gfile.GFile(path, "rb") as fh:
            source: Any = io.BytesIO(fh.read())
    else:
        source = path
    with Image.open(source) as image:
        width, height = image.size
        if image.mode in GREY_MODES:
            return width, height, False
        image.draft("RGB", (64, 64))  # JPEG: decode at a reduced scale
        thumb = image.convert("RGBA")
    thumb.thumbnail((32, 32))
    flat = Image.new("RGBA", thumb.size, (255, 255, 255, 255))
    flat.alpha_composite(thumb)
    pixels = np.asarray(flat.convert("RGB"), dtype=np.int16)
    spread = pixels.max(axis=-1) - pixels.min(axis=-1)
    return width, height, bool((spread > COLOUR_TOLERANCE).mean() > COLOUR_PIXELS)


def decide(data: DataLook, cfg: LensflowConfig,
           weights_problem: Optional[str] = None) -> Tuple[Dict[str, Any], str]:
    """The settings the rule picks for ``data`` (``model.family``, ``image.size``,
    ``image.color_mode``) and the reason, in words. ``weights_problem``: why the backbone's
    ImageNet weights cannot be loaded here (transfer is then not chosen)."""
    colour = data.colour_share >= 0.5
    seen = data.describe()
    if colour and data.short_side >= AUTO_TRANSFER_MIN_SIDE and not weights_problem:
        size = cfg.model.backbone_input_size
        return ({"model.family": "transfer", "image.size": size, "image.color_mode": "rgb"},
                f"{seen}: colour images of at least {AUTO_TRANSFER_MIN_SIDE} px suit an "
                f"ImageNet backbone, so transfer with {cfg.model.backbone} at {size} px")
    size = int(min(max(data.long_side, 8), AUTO_MAX_CNN_SIZE))
    mode = "rgb" if colour else "grayscale"
    if colour and data.short_side >= AUTO_TRANSFER_MIN_SIDE:
        why = (f"colour images of at least {AUTO_TRANSFER_MIN_SIDE} px would take transfer, but "
               f"{weights_problem}")
    elif colour:
        why = f"colour but smaller than {AUTO_TRANSFER_MIN_SIDE} px, too small for an ImageNet backbone"
    else:
        why = "grey images, far from an ImageNet backbone's colour photos"
    return ({"model.family": AUTO_FALLBACK, "image.size": size, "image.color_mode": mode},
            f"{seen}: {why}; the small CNN ({AUTO_FALLBACK}) at {size} px {mode}")


def _weights_problem(cfg: LensflowConfig) -> Optional[str]:
    """Why transfer's ImageNet weights cannot be loaded offline, or None when they can (or when
    the weights are a file or none, which the Trainer checks itself)."""
    if cfg.model.weights != "imagenet":
        return None
    from lensflow.components.trainer.backbones import list_backbones

    entry = next(e for e in list_backbones(cfg.weights_cache_dir) if e["name"] == cfg.model.backbone)
    return None if entry["available"] else (
        f"{cfg.model.backbone}'s ImageNet weights are not available offline ({entry['detail']})")


def explicit_image_keys(cfg: LensflowConfig) -> FrozenSet[str]:
    """The image keys that differ from the schema's defaults (what the user must have set when
    nothing else says so)."""
    default = LensflowConfig()
    return frozenset(key for key in IMAGE_KEYS if _get(cfg, key) != _get(default, key))


def _get(cfg: LensflowConfig, key: str) -> Any:
    section, name = key.split(".")
    return getattr(getattr(cfg, section), name)


def resolve(cfg: LensflowConfig, explicit: Optional[Iterable[str]] = None,
            offline: bool = False) -> Tuple[LensflowConfig, Dict[str, Any]]:
    """``cfg`` with ``model.family: auto`` replaced by the data's choice, and the record of
    what was chosen and why. ``explicit``: dotted keys the user set (kept as set); by default
    the image keys that differ from the schema's defaults. ``offline``: the data is not
    readable here (a Kubeflow compile), so ``auto`` trains the small CNN, and says so."""
    if cfg.model.family != AUTO:
        return cfg, {"source": "config", "family": cfg.model.family,
                     "reason": f"model.family={cfg.model.family} was set (--model, --set or YAML)"}
    keep = set(explicit if explicit is not None else ()) | set(explicit_image_keys(cfg))
    if offline:
        chosen, reason = {"model.family": AUTO_FALLBACK}, (
            f"the data is not read when compiling for another place, so auto falls back to the "
            f"small CNN ({AUTO_FALLBACK}); set model.family to choose")
    else:
        try:
            data = look(cfg)
        except (DatasetError, OSError) as err:
            data, chosen = None, {"model.family": AUTO_FALLBACK}
            reason = f"the data could not be sampled ({err}); the small CNN ({AUTO_FALLBACK})"
        if data is not None:
            wants_transfer = data.colour_share >= 0.5 and data.short_side >= AUTO_TRANSFER_MIN_SIDE
            chosen, reason = decide(data, cfg, _weights_problem(cfg) if wants_transfer else None)
    kept = sorted(key for key in chosen if key in keep and _get(cfg, key) != chosen[key])
    if kept:
        reason += f" (kept as set: {', '.join(f'{k}={_get(cfg, k)}' for k in kept)})"
    resolved = cfg.replace(**{k: v for k, v in chosen.items() if k not in keep})
    return resolved, {"source": "auto", "family": resolved.model.family, "reason": reason}

