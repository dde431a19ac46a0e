"""ServingBaseline: the model that is serving now, as the Evaluator's baseline.

Open-source Kubeflow Pipelines cannot run TFX ``Resolver`` nodes, so instead of resolving the
latest blessed model from ML Metadata this component reads the push destination itself: the
newest version folder under ``<serving_dir>/<model_name>/`` is copied into the output Model
artifact. With nothing serving, the artifact is marked ``found=0`` and the evaluator applies
only absolute thresholds. It works the same under LocalDagRunner and on Kubeflow.
"""

import os
from typing import Optional

from tfx import v1 as tfx
from tfx.utils import io_utils, path_utils

from components.pusher.versions import versions

FOUND_PROPERTY = "found"
VERSION_PROPERTY = "serving_version"


def newest_version(model_base: str) -> Optional[str]:
    """The newest complete version folder under ``model_base``, or None."""
    found = versions(model_base)
    return str(found[-1]) if found else None


@tfx.dsl.components.component
def ServingBaseline(serving_dir: tfx.dsl.components.Parameter[str],
                    model_name: tfx.dsl.components.Parameter[str],
                    serving_state: tfx.dsl.components.Parameter[str],
                    baseline_model: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.Model]):
    """Copy the newest served version into ``baseline_model``; ``serving_state`` (the version
    seen when the pipeline was built) keeps a cached result from outliving a new push."""
    del serving_state
    version = newest_version(os.path.join(serving_dir, model_name))
    baseline_model.set_int_custom_property(FOUND_PROPERTY, int(version is not None))
    if version is None:
        return
    baseline_model.set_string_custom_property(VERSION_PROPERTY, version)
    io_utils.copy_dir(os.path.join(serving_dir, model_name, version),
                      path_utils.serving_model_dir(baseline_model.uri))
