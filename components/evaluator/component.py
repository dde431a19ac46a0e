"""LensflowEvaluator: TFX's Evaluator, aware of an absent baseline."""
from __future__ import annotations

import json
import os

import tensorflow as tf
from tfx.components import Evaluator
from tfx.components.evaluator import executor as tfx_executor
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_component_specs
from tfx.utils import path_utils

from lensflow.components.evaluator.baseline import FOUND_PROPERTY
from lensflow.components.transform import features


def class_names_of(model_uri: str) -> list:
    """Class names the Trainer stored with the serving model."""
    path = os.path.join(path_utils.serving_model_path(model_uri), features.CLASS_NAMES_FILE)
    with tf.io.gfile.GFile(path) as fh:
        return json.load(fh)


class Executor(tfx_executor.Executor):
    """Drops a baseline that found nothing serving (TFMA would fail on an empty model)."""

    def Do(self, input_dict, output_dict, exec_properties):
        baselines = input_dict.get(standard_component_specs.BASELINE_MODEL_KEY) or []
        if baselines and not baselines[0].get_int_custom_property(FOUND_PROPERTY):
            input_dict = {k: v for k, v in input_dict.items()
                          if k != standard_component_specs.BASELINE_MODEL_KEY}
        super().Do(input_dict, output_dict, exec_properties)


class LensflowEvaluator(Evaluator):
    """Evaluator with the lensflow executor; same inputs, outputs and parameters."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
