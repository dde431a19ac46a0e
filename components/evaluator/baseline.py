"""ServingBaseline: the model that is serving now, as the Evaluator's baseline.

Open-source Kubeflow Pipelines cannot run TFX ``Resolver`` nodes, so instead of resolving the
latest blessed model from ML Metadata this component reads the push destination itself: the
newest version folder under ``<serving_dir>/<model_name>/`` that was not trained from this
run's inputs (its push record's training fingerprint differs) is copied into the output Model
artifact. A candidate is thus never its own baseline, and an unchanged re-run resolves the same
baseline as the run that pushed it, so it stays cached end to end. With no such version the
artifact is marked ``found=0`` and the evaluator applies only absolute thresholds. It works the
same under LocalDagRunner and on Kubeflow.
"""

import os
from typing import Optional

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts
from tfx.utils import io_utils, path_utils

from lensflow.components.pusher.fingerprint import data_fingerprint_of, training_fingerprint
from lensflow.components.pusher.versions import incumbent

FOUND_PROPERTY = "found"
VERSION_PROPERTY = "serving_version"


FINGERPRINT_PROPERTY = "training_fingerprint"


def baseline_version(model_base: str, fingerprint: str,
                     field: str = "training_fingerprint") -> Optional[str]:
    """The served version a candidate whose push record would carry ``fingerprint`` in
    ``field`` is judged against."""
    found = incumbent(model_base, fingerprint, field)
    return None if found is None else str(found)


@component
def ServingBaseline(examples: InputArtifact[standard_artifacts.Examples],
                    serving_dir: Parameter[str],
                    model_name: Parameter[str],
                    settings_fingerprint: Parameter[str],
                    serving_state: Parameter[str],
                    baseline_model: OutputArtifact[standard_artifacts.Model]):
    """Copy the incumbent for this run's training fingerprint (from ``examples`` and
    ``settings_fingerprint``) into ``baseline_model``; ``serving_state`` is a cache key only."""
    del serving_state
    fingerprint = training_fingerprint(data_fingerprint_of(examples), settings_fingerprint)
    version = baseline_version(os.path.join(serving_dir, model_name), fingerprint)
    baseline_model.set_string_custom_property(FINGERPRINT_PROPERTY, fingerprint)
    baseline_model.set_int_custom_property(FOUND_PROPERTY, int(version is not None))
    if version is None:
        return
    baseline_model.set_string_custom_property(VERSION_PROPERTY, version)
    io_utils.copy_dir(os.path.join(serving_dir, model_name, version),
                      path_utils.serving_model_dir(baseline_model.uri))
