"""Benchmarks 3 and 4: ingestion/Transform images/s against a plain ``tf.data`` loop, and the
Trainer's input pipeline against the same model fed from in-memory arrays."""
from __future__ import annotations

import glob
import os
import time
from typing import Dict, List

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tfx.components.trainer.fn_args_utils import DataAccessor
from tfx.components.util import tfxio_utils
from tfx.types import standard_artifacts

from lensflow.components.trainer import data as trainer_data
from lensflow.components.trainer import optim, scaling
from lensflow.components.trainer.models import build_model
from lensflow.components.trainer.run import compile_model
from lensflow.components.transform import augment, features, preprocessing
from lensflow.pipeline.config import LensflowConfig

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def image_files(root: str) -> List[str]:
    """Every image file under ``root`` (sorted, so both sides read the same list)."""
    return sorted(p for p in glob.glob(os.path.join(root, "**", "*"), recursive=True)
                  if p.lower().endswith(IMAGE_SUFFIXES))


def tf_data_decode(files: List[str], size: int, channels: int) -> Dict:
    """What a user would write instead of ingestion + Transform: read, decode, resize, scale."""
    def load(path):
        image = tf.io.decode_image(tf.io.read_file(path), channels=channels,
                                   expand_animations=False)
        return tf.image.resize(tf.cast(image, tf.float32) / 255.0, [size, size])

    dataset = tf.data.Dataset.from_tensor_slices(files).map(
        load, num_parallel_calls=tf.data.AUTOTUNE).batch(256).prefetch(tf.data.AUTOTUNE)
    start = time.perf_counter()
    count = sum(int(batch.shape[0]) for batch in dataset)
    seconds = time.perf_counter() - start
    return {"images": count, "seconds": seconds, "images_per_second": count / seconds}


def pipeline_stage_rates(summary: Dict) -> Dict:
    """Images/s of ImageExampleGen and Transform in a fresh run, from ML Metadata timings."""
    seconds = summary.get("execution_seconds", {})
    images = int(summary.get("ingested", 0))
    rates = {}
    for stage in ("ImageExampleGen", "StatisticsGen", "Transform"):
        if seconds.get(stage):
            rates[stage] = {"images": images, "seconds": seconds[stage],
                            "images_per_second": images / seconds[stage]}
    return rates


def _data_accessor() -> DataAccessor:
    """The accessor TFX's Trainer hands to ``run_fn`` (tf.Example payload)."""
    return DataAccessor(
        tf_dataset_factory=tfxio_utils.get_tf_dataset_factory_from_artifact(
            [standard_artifacts.Examples()], []),
        record_batch_factory=None, data_view_decode_fn=None)


def _fit_rate(model, dataset, steps: int, batch_size: int) -> float:
    """Training images/s over ``steps`` batches (a fresh iterator, as every Keras epoch has)."""
    start = time.perf_counter()
    model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
    return steps * batch_size / (time.perf_counter() - start)


def _input_only_rate(dataset, steps: int, batch_size: int) -> float:
    """Images/s the dataset delivers with no model: the ceiling the input pipeline sets."""
    start = time.perf_counter()
    for _ in dataset.take(steps):
        pass
    return steps * batch_size / (time.perf_counter() - start)


def _newest(artifact_dir: str) -> str:
    """The newest ``<artifact_dir>/<execution id>`` (ids compared as numbers: 27 after 7)."""
    return max(glob.glob(os.path.join(artifact_dir, "*")), key=lambda p: int(os.path.basename(p)))


def trainer_input(pipeline_root: str, cfg: LensflowConfig, steps: int, repeats: int = 3) -> Dict:
    """The Trainer's dataset over the transformed examples vs. the same arrays in memory
    (same batch size, training-only augmentation and model on both sides).

    Both models are built and warmed up first; then the two sides alternate ``repeats`` times
    and each side's median counts, so drift in the machine's speed (other tenants, CPU steal,
    oneDNN warm-up) hits both sides alike. A single back-to-back pair of 100-step fits ranged
    0.68-1.28 on the same data. The dataset's own rate with no model is reported as well.
    """
    transform = _newest(os.path.join(pipeline_root, "Transform", "transform_graph"))
    examples = _newest(os.path.join(pipeline_root, "Transform", "transformed_examples"))
    output = tft.TFTransformOutput(transform)
    pattern = [os.path.join(examples, "Split-train", "*")]
    classes = len(output.vocabulary_by_name(features.LABEL_VOCAB_NAME))
    stats = trainer_data.split_statistics(pattern, _data_accessor(), output, cfg)
    shape = stats.shape
    pipeline_ds = trainer_data.train_dataset(pattern, _data_accessor(), output, cfg,
                                             stats).repeat()
    pixel_scaling = scaling.PixelScaling.of(stats, cfg.effective_normalize)
    images, labels = [], []
    for x, y in trainer_data.labelled_images(pattern, _data_accessor(), output).batch(4096):
        images.append(pixel_scaling(preprocessing.decode_pixels(x, shape)).numpy())
        labels.append(y.numpy())
    x_all, y_all = np.concatenate(images), np.concatenate(labels)
    memory_ds = tf.data.Dataset.from_tensor_slices((x_all, y_all)).shuffle(
        4096, seed=cfg.train.seed).batch(cfg.train.batch_size)
    memory_ds = augment.augment_dataset(memory_ds, cfg.augment, shape).repeat().prefetch(
        tf.data.AUTOTUNE)
    if cfg.train.label_smoothing:
        pipeline_ds = optim.one_hot_labels(pipeline_ds, classes)
        memory_ds = optim.one_hot_labels(memory_ds, classes)
    sides = {}
    for name, dataset in (("transformed_examples", pipeline_ds), ("in_memory_arrays", memory_ds)):
        tf.keras.utils.set_random_seed(cfg.train.seed)
        model = build_model(cfg, shape, classes)
        compile_model(model, cfg.train.learning_rate, min(cfg.evaluation.top_k, classes),
                      cfg.train)
        _fit_rate(model, dataset, min(20, steps), cfg.train.batch_size)
        sides[name] = (model, dataset)
    runs = {name: [] for name in sides}
    for _ in range(repeats):
        for name, (model, dataset) in sides.items():
            runs[name].append(_fit_rate(model, dataset, steps, cfg.train.batch_size))
    rates = {name: float(np.median(values)) for name, values in runs.items()}
    input_only = _input_only_rate(sides["transformed_examples"][1], steps, cfg.train.batch_size)
    return {"steps": steps, "repeats": repeats, "batch_size": cfg.train.batch_size,
            "train_examples": int(len(y_all)), "images_per_second": rates, "runs": runs,
            "input_only_images_per_second": input_only,
            "ratio": rates["transformed_examples"] / rates["in_memory_arrays"],
            "target_ratio": 0.90}
