"""Benchmark 5: the pushed SavedModel given encoded PNGs vs. the bare Keras model on decoded
tensors — p50/p95 latency at batch 1, throughput at batch 64."""
from __future__ import annotations

import time
from typing import Callable, Dict, List, Sequence

import numpy as np
import tensorflow as tf

from lensflow.components.report.interpret import load_keras_model, transformed_images
from lensflow.components.trainer import scaling


def _latencies(call: Callable, inputs: Sequence, repeats: int) -> List[float]:
    """Milliseconds per call over ``repeats`` calls, after 10 warm-up calls."""
    for item in inputs[:10]:
        call(item)
    out = []
    for i in range(repeats):
        start = time.perf_counter()
        call(inputs[i % len(inputs)])
        out.append((time.perf_counter() - start) * 1000.0)
    return out


def _profile(call: Callable, singles: Sequence, batches: Sequence, repeats: int) -> Dict:
    one = np.asarray(_latencies(call, singles, repeats))
    many = np.asarray(_latencies(call, batches, max(5, repeats // 10)))
    batch = len(batches[0]) if not hasattr(batches[0], "shape") else int(batches[0].shape[0])
    return {"p50_ms_batch1": float(np.percentile(one, 50)),
            "p95_ms_batch1": float(np.percentile(one, 95)),
            "images_per_second_batch64": float(batch * 1000.0 / np.median(many))}


def serving(model_dir: str, encoded: List[bytes], repeats: int = 200) -> Dict:
    """Both sides on the same images; ratios are SavedModel / bare Keras."""
    loaded = tf.saved_model.load(model_dir)
    signature = loaded.signatures["serving_default"]
    singles = [tf.constant([png]) for png in encoded[:64]]
    batches = [tf.constant(encoded[i:i + 64]) for i in range(0, len(encoded) - 63, 64)]
    saved = _profile(lambda x: signature(images=x), singles, batches, repeats)

    model = load_keras_model(model_dir)
    decoded = transformed_images(model, encoded, scaling.PixelScaling.read(model_dir))
    spec = tf.TensorSpec([None, *decoded.shape[1:]], tf.float32)
    forward = tf.function(lambda x: model(x, training=False), input_signature=[spec])
    singles_t = [tf.constant(decoded[i:i + 1]) for i in range(min(64, len(decoded)))]
    batches_t = [tf.constant(decoded[i:i + 64]) for i in range(0, len(decoded) - 63, 64)]
    bare = _profile(forward, singles_t, batches_t, repeats)
    return {"saved_model_encoded_png": saved, "bare_keras_decoded_tensors": bare,
            "p50_ratio": saved["p50_ms_batch1"] / bare["p50_ms_batch1"],
            "target_p50_ratio": 1.5,
            "throughput_ratio": saved["images_per_second_batch64"] /
            bare["images_per_second_batch64"]}
