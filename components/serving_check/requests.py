"""Real images of each class from the ingested examples: the warmup requests written into a
version (TF Serving's PredictionLog format, ``serving/warmup.py``) and a held-out canary."""
from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from typing import Dict, List, Sequence

import tensorflow as tf
from tensorflow_serving.apis import predict_pb2
from tfx.types import artifact_utils

from lensflow.components.transform import features
from lensflow.serving import warmup


@dataclass
class Sample:
    """Encoded images per class: ``warmup`` (``per_class`` each) and one ``canary`` image each
    (held out of the warmup when the split has enough)."""

    warmup: Dict[str, List[bytes]]
    canary: List[bytes]


def _records(split_uri: str):
    for path in sorted(tf.io.gfile.glob(os.path.join(split_uri, "*"))):
        compression = "GZIP" if path.endswith(".gz") else ""
        for record in tf.data.TFRecordDataset(path, compression_type=compression).as_numpy_iterator():
            yield record


def sample_images(examples, split: str, class_names: Sequence[str], per_class: int) -> Sample:
    """The first ``per_class`` + 1 images of every class in ``split`` of the Examples artifact
    (the order ingestion wrote them in); ValueError when a class has none."""
    if not class_names:
        raise ValueError("the model has no class names (assets.extra/class_names.json)")
    found: Dict[str, List[bytes]] = defaultdict(list)
    wanted = set(class_names)
    for record in _records(artifact_utils.get_split_uri([examples], split)):
        example = tf.train.Example.FromString(record)
        feature = example.features.feature
        label = feature[features.LABEL_KEY].bytes_list.value[0].decode("utf-8")
        if label in wanted and len(found[label]) <= per_class:
            found[label].append(feature[features.IMAGE_KEY].bytes_list.value[0])
            if all(len(found[name]) > per_class for name in wanted):
                break
    missing = sorted(name for name in wanted if not found[name])
    if missing:
        raise ValueError(f"no {split} example of class(es) {', '.join(missing)} for the warmup")
    return Sample({name: found[name][:per_class] for name in class_names},
                  [found[name][-1] for name in class_names])


def warmup_requests(sample: Sample, model_name: str) -> List[predict_pb2.PredictRequest]:
    """One single-image request per warmup image, then one batch of them all (so both the
    batch-1 and a batched shape are warm)."""
    images = [image for name in sample.warmup for image in sample.warmup[name]]
    return [warmup.image_request([image], model_name) for image in images] + \
        [warmup.image_request(images, model_name)]
