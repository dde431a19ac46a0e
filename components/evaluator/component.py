"""LensflowEvaluator: TFX's Evaluator, aware of an absent baseline and of the class count."""
from __future__ import annotations

import json
import os

import tensorflow as tf
import tensorflow_model_analysis as tfma
from tfx.components import Evaluator
from tfx.components.evaluator import executor as tfx_executor
from tfx.dsl.components.base import executor_spec
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import path_utils, proto_utils

from components.evaluator.baseline import FOUND_PROPERTY
from components.evaluator.eval_config import expand_per_class
from components.transform import features



def class_names_of(model_uri: str) -> list:
    """Class names the Trainer stored with the serving model."""
    path = os.path.join(path_utils.serving_model_path(model_uri), features.CLASS_NAMES_FILE)
    with tf.io.gfile.GFile(path) as fh:
        return json.load(fh)


class Executor(tfx_executor.Executor):
    """Drops a baseline that found nothing serving; expands per-class metrics to every class."""

    def Do(self, input_dict, output_dict, exec_properties):
        baselines = input_dict.get(standard_component_specs.BASELINE_MODEL_KEY) or []
        if baselines and not baselines[0].get_int_custom_property(FOUND_PROPERTY):
            input_dict = {k: v for k, v in input_dict.items()
                          if k != standard_component_specs.BASELINE_MODEL_KEY}
        model = artifact_utils.get_single_instance(input_dict[standard_component_specs.MODEL_KEY])
        eval_config = tfma.EvalConfig()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.EVAL_CONFIG_KEY],
                                  eval_config)
        eval_config = expand_per_class(eval_config, len(class_names_of(model.uri)))
        exec_properties = dict(exec_properties)
        exec_properties[standard_component_specs.EVAL_CONFIG_KEY] = proto_utils.proto_to_json(
            eval_config)
        super().Do(input_dict, output_dict, exec_properties)


class LensflowEvaluator(Evaluator):
    """Evaluator with the lensflow executor; same inputs, outputs and parameters."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
