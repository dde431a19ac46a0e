"""Why the model said what it said: SmoothGrad saliency, Grad-CAM and filter-bank responses.

All maps are computed on the network's input (what the network sees), through the Keras
model restored from the serving SavedModel (the trained network itself): its ``tft_layer``
turns encoded bytes into stored pixels exactly as serving does, and the scaling written beside
it (``scaling.PixelScaling.read``) turns those into the network's input, as the serving
signatures do.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf

from lensflow.components.trainer import filters, scaling
from lensflow.components.trainer.backbones import preprocessing  # noqa: F401 - registers ScaleShift
from lensflow.components.trainer.models import tta
from lensflow.components.transform import features, preprocessing

SMOOTHGRAD_SAMPLES = 8
SMOOTHGRAD_NOISE = 0.1


def load_keras_model(serving_dir: str) -> tf.keras.Model:
    """The trained Keras model (with its ``tft_layer``) from the serving SavedModel."""
    model = tf.keras.models.load_model(serving_dir, compile=False)
    if not hasattr(model, "tft_layer"):
        raise ValueError(f"{serving_dir} has no tft_layer: not a lensflow serving model")
    return model


def transformed_images(model: tf.keras.Model, encoded: Sequence[bytes],
                       pixel_scaling: scaling.PixelScaling) -> np.ndarray:
    """Encoded image bytes -> what the trained network sees ``[N, H, W, C]``: Transform's graph,
    then the scaling the network was trained with (``scaling.PixelScaling.read(serving_dir)``)."""
    raw = {features.IMAGE_KEY: tf.reshape(tf.constant(list(encoded)), [-1, 1])}
    pixels = preprocessing.decode_pixels(model.tft_layer(raw)[features.IMAGE_XF],
                                         model.input_shape[1:])
    return pixel_scaling(pixels).numpy()


def _normalise(maps: np.ndarray) -> np.ndarray:
    """Scale each map to [0, 1] (all-zero maps stay zero)."""
    flat = maps.reshape(len(maps), -1)
    low = flat.min(axis=1)[:, None, None]
    span = (flat.max(axis=1) - flat.min(axis=1))[:, None, None]
    return np.where(span > 0, (maps - low) / np.where(span > 0, span, 1), 0.0)


def saliency(model: tf.keras.Model, images: np.ndarray, class_ids: Sequence[int],
             samples: int = SMOOTHGRAD_SAMPLES, seed: int = 0) -> np.ndarray:
    """SmoothGrad: mean |d score(class) / d pixel| over noisy copies (the pre-softmax score),
    max over channels, in [0, 1]."""
    scores_of = score_function(model)
    images = tf.convert_to_tensor(images, tf.float32)
    class_ids = tf.constant(list(class_ids), tf.int32)
    spread = SMOOTHGRAD_NOISE * (tf.reduce_max(images) - tf.reduce_min(images))
    rng = tf.random.Generator.from_seed(seed)
    total = tf.zeros_like(images)
    for _ in range(samples):
        noisy = images + rng.normal(tf.shape(images)) * spread
        with tf.GradientTape() as tape:
            tape.watch(noisy)
            scores = tf.gather(scores_of(noisy), class_ids, axis=1, batch_dims=1)
        total += tf.abs(tape.gradient(scores, noisy))
    return _normalise(tf.reduce_max(total, axis=-1).numpy())


def _graph_nodes(model: tf.keras.Model):
    """(depth, node) of the functional graph; depth 0 is the output."""
    if not getattr(model, "_is_graph_network", False):
        raise ValueError(f"Grad-CAM needs a functional or Sequential model, got {model.name!r}")
    return [(depth, node) for depth, nodes in model._nodes_by_depth.items() for node in nodes]


def _single(tensors):
    flat = tf.nest.flatten(tensors)
    return flat[0] if len(flat) == 1 else None


def _is_spatial(tensor) -> bool:
    return tensor is not None and tensor.shape.rank == 4 and \
        (tensor.shape[1] or 0) > 1 and (tensor.shape[2] or 0) > 1


def _candidates(model: tf.keras.Model):
    """(depth, node) of spatial feature maps, and of nested models that pool theirs away."""
    found = []
    for depth, node in _graph_nodes(model):
        if isinstance(node.layer, tf.keras.layers.InputLayer):
            continue
        output = _single(node.output_tensors)
        nested = isinstance(node.layer, tf.keras.Model) and not _is_spatial(output)
        if _is_spatial(output) or (nested and _single(node.input_tensors) is not None):
            found.append((depth, node))
    return sorted(found, key=lambda c: c[0])


def _identity(x, training=False):
    del training
    return x


def _score_head(model: tf.keras.Model, scores: bool = True):
    """``(tensor, head)`` with ``head(tensor)`` the model's pre-softmax class scores when its
    output layer is a softmax Dense (every lensflow family); else the output itself."""
    layer, node_index, _ = model.outputs[0]._keras_history
    if scores and isinstance(layer, tf.keras.layers.Dense) and \
            getattr(layer.activation, "__name__", "") == "softmax":
        def head(x, layer=layer):
            logits = tf.matmul(tf.cast(x, layer.kernel.dtype), layer.kernel)
            return logits + layer.bias if layer.use_bias else logits
        return _single(layer._inbound_nodes[node_index].input_tensors), head
    return model.outputs[0], _identity


def score_function(model: tf.keras.Model):
    """``x -> [N, classes]`` pre-softmax class scores; for a flip-TTA model the mean over the
    image and its mirror (the gradient then flows through both passes, as the prediction does).
    ``x`` is the network's input (``transformed_images``)."""
    inner = tta.unwrap(model)
    score_input, head = _score_head(inner)
    body = tf.keras.Model(inner.inputs, score_input)

    def scores(x):
        return head(body(x, training=False))

    if inner is model:
        return scores
    return lambda x: (scores(x) + scores(tta.mirror(x))) / 2.0


def feature_probe(model: tf.keras.Model, scores: bool = True):
    """(name, fn) for the spatial feature map nearest the output; ``fn(x) -> (features,
    class scores)``, the scores taken before the softmax (a saturated probability has no
    gradient left to explain; ``scores=False``: the model's output). Looks inside nested models
    (a backbone ending in global pooling)."""
    score_input, head = _score_head(model, scores)
    for _, node in _candidates(model):
        output = _single(node.output_tensors)
        if _is_spatial(output):
            probe = tf.keras.Model(model.inputs, [output, score_input])
            name = node.layer.name
        else:
            try:
                inner_name, inner = feature_probe(node.layer, scores=False)
            except ValueError:
                continue
            into = _single(node.input_tensors)
            before = _identity if any(into is t for t in model.inputs) \
                else tf.keras.Model(model.inputs, into)
            after = _identity if score_input is output else tf.keras.Model(output, score_input)

            def probe(x, training=False, before=before, inner=inner, after=after):
                features, nested_output = inner(before(x, training=training))
                return features, after(nested_output, training=training)

            name = f"{node.layer.name}/{inner_name}"

        def fn(x, probe=probe, head=head):
            features, before_head = probe(x, training=False)
            return features, head(before_head)

        return name, fn
    raise ValueError(f"model {model.name!r} has no spatial feature map for Grad-CAM")


def _raw_cam(probe, images: tf.Tensor, class_ids: tf.Tensor) -> tf.Tensor:
    """Grad-CAM before scaling: ReLU of the gradient-weighted feature maps, at input size."""
    with tf.GradientTape() as tape:
        activations, scores = probe(images)
        chosen = tf.gather(scores, class_ids, axis=1, batch_dims=1)
    grads = tf.cast(tape.gradient(chosen, activations), tf.float32)
    activations = tf.cast(activations, tf.float32)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * activations, axis=-1))[..., tf.newaxis]
    return tf.image.resize(cam, tf.shape(images)[1:3], method="bilinear")[..., 0]


def grad_cam(model: tf.keras.Model, images: np.ndarray,
             class_ids: Sequence[int]) -> Dict[str, object]:
    """Grad-CAM of the predicted class's pre-softmax score on the last spatial feature map.

    A flip-TTA model predicts from an image and its mirror; its map is the mean of the two
    passes' maps, the mirror's flipped back. Returns ``{"layer": name, "maps": [N, H, W] in
    [0, 1]}`` resized to the input size.
    """
    inner = tta.unwrap(model)
    layer_name, probe = feature_probe(inner)
    images = tf.convert_to_tensor(images, tf.float32)
    class_ids = tf.constant(list(class_ids), tf.int32)
    cam = _raw_cam(probe, images, class_ids)
    if inner is not model:
        mirrored = _raw_cam(probe, tta.mirror(images), class_ids)
        cam = (cam + tta.mirror(mirrored)) / 2.0
        layer_name = f"{tta.LAYER_NAME}/{layer_name}"
    return {"layer": layer_name, "maps": _normalise(cam.numpy())}


def filter_banks(model: tf.keras.Model) -> List[filters.FilterBank]:
    """The handcrafted FilterBank layers of a model (empty for other families)."""
    return [m for m in model.submodules if isinstance(m, filters.FilterBank)]


def filter_bank_view(model: tf.keras.Model, image: np.ndarray) -> Optional[Dict[str, object]]:
    """Kernels (input channel 0) and their responses on ``image`` (mean over channels)."""
    banks = filter_banks(model)
    if not banks:
        return None
    bank = banks[0]
    kernels = bank.kernels
    responses = filters.responses(model, image, bank_name=bank.name)
    return {"bank": bank.name, "mode": bank.mode,
            "kernels": {name: kernels[:, :, 0, i] for i, name in enumerate(bank.base_names)},
            "responses": {name: maps.mean(axis=-1) for name, maps in responses.items()}}
