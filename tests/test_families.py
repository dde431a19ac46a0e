"""Each model family trains through the full pipeline and is blessed (tiny settings)."""
import os

import numpy as np
import pytest
import tensorflow as tf

from conftest import run_pipeline

FAMILIES = {
    "filter_bank": {"model.family": "filter_bank", "model.filter_mode": "init",
                    "augment.preset": "light"},
    "transfer": {"model.family": "transfer", "model.backbone": "efficientnet_lite0",
                 "model.weights": "imagenet", "model.backbone_input_size": 48,
                 "train.epochs": 1, "train.fine_tune_epochs": 1, "model.fine_tune_layers": 10},
}

RANDOM_OPS = ("RandomUniform", "RandomStandardNormal", "StatelessRandom", "RngReadAndSkip",
              "StatefulUniform", "ImageProjectiveTransform")


def graph_op_types(saved_model_dir):
    from tensorflow.python.tools import saved_model_utils
    meta = saved_model_utils.get_meta_graph_def(saved_model_dir, "serve")
    ops = {node.op for node in meta.graph_def.node}
    for function in meta.graph_def.library.function:
        ops |= {node.op for node in function.node_def}
    return ops


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_is_blessed_through_the_pipeline(e2e, family):
    cfg = e2e.config.replace(**{**FAMILIES[family], "evaluation.max_accuracy_drop": 1.0})
    run = run_pipeline(cfg)
    assert run.summary["executions"]["ImageExampleGen"] == "CACHED"
    assert run.summary["executions"]["Trainer"] == "COMPLETE"
    assert run.summary["blessed"] is True, run.summary.get("failed_thresholds")
    pushed = run.summary["pushed_model_dir"]
    ops = graph_op_types(pushed)
    assert not [op for op in ops if op.startswith(RANDOM_OPS)], "augmentation leaked into serving"
    model = tf.saved_model.load(pushed)
    image = open(sorted(__import__("glob").glob(os.path.join(
        cfg.data.path, "trouser", "*.png")))[0], "rb").read()
    first = model.signatures["serving_default"](images=tf.constant([image]))["probabilities"]
    second = model.signatures["serving_default"](images=tf.constant([image]))["probabilities"]
    np.testing.assert_array_equal(first.numpy(), second.numpy())
