"""ServingCheck: no version is pushed that a model server cannot load and answer.

Between the Evaluator and the Pusher, what TFX's InfraValidator does, in a form open-source
Kubeflow Pipelines can run (InfraValidator is unsupported under the V2 runner,
tensorflow/tfx#5512): for an Evaluator-blessed candidate it copies the model into its
``InfraBlessing`` artifact with warmup requests (real images of each class from the ingested
``eval`` split, ``assets.extra/tf_serving_warmup_requests``), serves that copy in a separate
model-server process (``tensorflow_model_server`` when on PATH, else ``lensflow serve``) and
requires the warmup and a canary request to be answered over REST and gRPC within
``serving_check.timeout_seconds`` with the in-process outputs. The Pusher takes the artifact as
``infra_blessing`` and pushes exactly that copy, so the version that appears is the one checked.
"""

import json
import logging
import os

import tensorflow as tf
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts
from tfx.utils import io_utils, path_utils

from lensflow.components.pusher.component import HAS_MODEL
from lensflow.components.serving_check import check, requests
from lensflow.serving import warmup
from lensflow.components.transform import features

BLESSED = "blessed"
SERVER = "server"
REASON = "reason"
RESULT_FILE = "serving_check.json"
WARMUP_SPLIT = "eval"
NO_SERVER = "none (serving_check.enabled=false)"

log = logging.getLogger(__name__)


def _class_names(model_dir: str) -> list:
    """The model's class vocabulary ([] when absent); ``model_dir`` may be remote."""
    path = os.path.join(model_dir, features.CLASS_NAMES_FILE)
    if not tf.io.gfile.exists(path):
        return []
    with tf.io.gfile.GFile(path) as fh:
        return [str(name) for name in json.load(fh)]


def _record(blessing, result: check.CheckResult, warmup_count: int) -> None:
    """Blessing flags (TFX's ``blessed``/``has_model``, the marker files) and the result."""
    blessing.set_int_custom_property(BLESSED, int(result.passed))
    blessing.set_string_custom_property(SERVER, result.server)
    blessing.set_string_custom_property(REASON, result.reason)
    blessing.set_int_custom_property("warmup_requests", warmup_count)
    io_utils.write_string_file(
        os.path.join(blessing.uri, "INFRA_BLESSED" if result.passed else "INFRA_NOT_BLESSED"), "")
    io_utils.write_string_file(os.path.join(blessing.uri, RESULT_FILE),
                               json.dumps({**result.to_dict(), "warmup_requests": warmup_count},
                                          indent=2))
    if not result.passed:
        log.warning("serving check refused the candidate: %s", result.reason)


@component
def ServingCheck(examples: InputArtifact[standard_artifacts.Examples],
                 model: InputArtifact[standard_artifacts.Model],
                 model_blessing: InputArtifact[standard_artifacts.ModelBlessing],
                 infra_blessing: OutputArtifact[standard_artifacts.InfraBlessing],
                 model_name: Parameter[str],
                 timeout_seconds: Parameter[float],
                 images_per_class: Parameter[int],
                 start_server: Parameter[int]):
    """Write warmup requests into a copy of the blessed candidate and check a model server
    answers them; ``start_server`` 0 (``serving_check.enabled=false``) writes the warmup only."""
    if not model_blessing.get_int_custom_property(BLESSED):
        _record(infra_blessing, check.CheckResult(
            False, "none", "not blessed by the Evaluator; not checked"), 0)
        return
    model_dir = path_utils.serving_model_path(model.uri)
    try:
        sample = requests.sample_images(examples, WARMUP_SPLIT, _class_names(model_dir),
                                        images_per_class)
    except ValueError as err:
        _record(infra_blessing, check.CheckResult(False, "none", str(err)), 0)
        return
    prepared = requests.warmup_requests(sample, model_name)
    stamped = path_utils.stamped_model_path(infra_blessing.uri)
    io_utils.copy_dir(model_dir, stamped)
    warmup.write(stamped, prepared)
    infra_blessing.set_int_custom_property(HAS_MODEL, 1)
    if start_server:
        result = check.run(stamped, model_name, prepared, sample.canary, timeout_seconds)
    else:
        result = check.CheckResult(True, NO_SERVER,
                                   "warmup written; no model server started")
    _record(infra_blessing, result, len(prepared))
