"""Each model family trains through the full pipeline and is blessed (tiny settings)."""
import io
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageOps

FAMILIES = {
    "filter_bank": {"model.family": "filter_bank", "model.filter_mode": "init",
                    "augment.preset": "light"},
    "transfer": {"model.family": "transfer", "model.backbone": "efficientnet_lite0",
                 "model.weights": "imagenet", "model.backbone_input_size": 48,
                 "train.epochs": 1, "train.fine_tune_epochs": 1, "model.fine_tune_layers": 10},
    "compact_resnet": {"model.family": "compact_resnet", "model.widths": [8, 16, 32],
                       "model.depths": [0, 0, 1], "model.flip_tta": True,
                       "train.optimizer": "sgd", "train.learning_rate": 0.05,
                       "train.lr_schedule": "cosine", "train.warmup_epochs": 0.5,
                       "train.weight_decay": 5e-4, "train.label_smoothing": 0.1,
                       "augment.horizontal_flip": True, "augment.crop_padding": 2},
}

AUGMENTATION_LAYERS = ("RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation",
                       "RandomContrast", "RandomBrightnessShift", "RandomPadCrop", "RandomErasing")


def graph_nodes(saved_model_dir):
    """(op type, node name) of every node in the serving graph and its functions."""
    from tensorflow.python.tools import saved_model_utils
    meta = saved_model_utils.get_meta_graph_def(saved_model_dir, "serve")
    nodes = {(n.op, n.name) for n in meta.graph_def.node}
    for function in meta.graph_def.library.function:
        nodes |= {(n.op, n.name) for n in function.node_def}
    return nodes


def layer_classes(model):
    out = set()
    for layer in model.layers:
        out.add(type(layer).__name__)
        if hasattr(layer, "layers"):
            out |= layer_classes(layer)
    return out


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_is_blessed_through_the_pipeline(e2e, pipeline_runner, family):
    cfg = e2e.config.replace(**{**FAMILIES[family], "evaluation.max_accuracy_drop": 1.0})
    run = pipeline_runner(cfg)
    assert run.summary["executions"]["ImageExampleGen"] == "CACHED"
    assert run.summary["executions"]["Trainer"] == "COMPLETE"
    assert run.summary["blessed"] is True, run.summary.get("failed_thresholds")
    pushed = run.summary["pushed_model_dir"]
    nodes = graph_nodes(pushed)
    assert not [n for n in nodes if n[0].startswith("ImageProjectiveTransform")
                or "augmentation" in n[1].lower()], "augmentation leaked into serving"
    assert not layer_classes(tf.keras.models.load_model(pushed)) & set(AUGMENTATION_LAYERS)
    model = tf.saved_model.load(pushed)
    image = open(sorted(__import__("glob").glob(os.path.join(
        cfg.data.path, "trouser", "*.png")))[0], "rb").read()
    first = model.signatures["serving_default"](images=tf.constant([image]))["probabilities"]
    second = model.signatures["serving_default"](images=tf.constant([image]))["probabilities"]
    np.testing.assert_array_equal(first.numpy(), second.numpy())
    if cfg.model.flip_tta:
        buffer = io.BytesIO()
        ImageOps.mirror(Image.open(io.BytesIO(image))).save(buffer, format="PNG")
        mirrored = model.signatures["serving_default"](
            images=tf.constant([buffer.getvalue()]))["probabilities"]
        np.testing.assert_allclose(mirrored.numpy(), first.numpy(), rtol=1e-5, atol=1e-6)
