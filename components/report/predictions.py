"""The candidate's predictions on (a bounded number of) raw examples of the evaluated split."""
from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import List, Sequence

import numpy as np
import tensorflow as tf
from PIL import Image

from lensflow.components.transform import features

BATCH_SIZE = 64
THUMBNAIL_PX = 112


@dataclass
class Predictions:
    """Raw examples and what the serving signature said about them, row-aligned."""

    serialized: List[bytes]
    labels: List[str]
    paths: List[str]
    images: List[bytes]
    probabilities: np.ndarray

    @property
    def predicted(self) -> np.ndarray:
        return self.probabilities.argmax(axis=-1)

    @property
    def confidence(self) -> np.ndarray:
        return self.probabilities.max(axis=-1)


def split_files(examples_uri: str, split: str) -> List[str]:
    """The TFRecord files of one split; a clear error when the split is absent."""
    files = sorted(tf.io.gfile.glob(os.path.join(examples_uri, f"Split-{split}", "*")))
    if not files:
        known = [p.rstrip("/").split("Split-")[-1]
                 for p in tf.io.gfile.glob(os.path.join(examples_uri, "Split-*"))]
        raise LookupError(f"no examples for split {split!r} in {examples_uri}; splits: {known}")
    return files


def read_examples(examples_uri: str, split: str, limit: int) -> List[bytes]:
    """Up to ``limit`` serialized tf.Examples of a split, in file order."""
    dataset = tf.data.TFRecordDataset(split_files(examples_uri, split), compression_type="GZIP")
    return [record.numpy() for record in dataset.take(limit)]


def _feature(example: tf.train.Example, key: str) -> bytes:
    values = example.features.feature[key].bytes_list.value
    return values[0] if values else b""


def predict(serving_model, serialized: Sequence[bytes]) -> Predictions:
    """Run the ``serving_examples`` signature (raw tf.Examples in) in batches."""
    signature = serving_model.signatures["serving_examples"]
    chunks = []
    for start in range(0, len(serialized), BATCH_SIZE):
        batch = tf.constant(serialized[start:start + BATCH_SIZE])
        outputs = signature(**{features.SERVING_EXAMPLES_INPUT: batch})
        chunks.append(outputs[features.PROBABILITIES].numpy())
    parsed = [tf.train.Example.FromString(s) for s in serialized]
    return Predictions(
        serialized=list(serialized),
        labels=[_feature(e, features.LABEL_KEY).decode("utf-8", "replace") for e in parsed],
        paths=[_feature(e, features.PATH_KEY).decode("utf-8", "replace") for e in parsed],
        images=[_feature(e, features.IMAGE_KEY) for e in parsed],
        probabilities=np.concatenate(chunks) if chunks else np.zeros((0, 0)))


def thumbnail_png(encoded: bytes, size: int = THUMBNAIL_PX) -> bytes:
    """A small PNG of an encoded image (nearest-neighbour upscaling keeps tiny images crisp)."""
    with Image.open(io.BytesIO(encoded)) as image:
        image = image.convert("RGB" if image.mode not in ("L", "RGB") else image.mode)
        scale = size / max(image.size)
        target = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        resample = Image.NEAREST if scale > 1 else Image.LANCZOS
        buffer = io.BytesIO()
        image.resize(target, resample).save(buffer, format="PNG")
    return buffer.getvalue()


def confidently_wrong(preds: Predictions, class_names: Sequence[str], count: int) -> List[dict]:
    """The ``count`` wrong predictions with the highest confidence, most confident first."""
    index = {name: i for i, name in enumerate(class_names)}
    truth = np.array([index.get(label, -1) for label in preds.labels])
    wrong = np.flatnonzero((preds.predicted != truth) & (truth >= 0))
    order = wrong[np.argsort(-preds.confidence[wrong], kind="stable")][:count]
    return [{"row": int(i), "label": preds.labels[i], "path": preds.paths[i],
             "predicted": class_names[preds.predicted[i]],
             "confidence": float(preds.confidence[i]),
             "label_probability": float(preds.probabilities[i, truth[i]]),
             "thumbnail": thumbnail_png(preds.images[i])} for i in order]


def accuracy(preds: Predictions, class_names: Sequence[str]) -> float:
    """Top-1 accuracy of these predictions (a cross-check against TFMA's value)."""
    index = {name: i for i, name in enumerate(class_names)}
    truth = np.array([index.get(label, -1) for label in preds.labels])
    return float(np.mean(preds.predicted == truth)) if len(truth) else float("nan")
