"""LensflowPusher: TFX's Pusher with atomic versions, retention and models.config.

With an ``infra_blessing`` from the serving check (``components/serving_check``) it pushes the
folder that check served and validated (the trained model plus its warmup requests) instead of
the Trainer's export, and only when both blessings say yes.

It also takes the Examples artifact the model was trained from, to record the training
fingerprint (``lensflow.components.pusher.fingerprint``) computed at run time, and optionally their
statistics, whose ``train`` split each version carries for later drift checks
(``lensflow.components.pusher.training_statistics``).
"""
from __future__ import annotations

import json
import os
import time
from typing import Dict, Optional, Tuple

from tfx import types
from tfx.components import Pusher
from tfx.components.pusher import executor as tfx_executor
from tfx.dsl.components.base import base_component, executor_spec
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter
from tfx.utils import json_utils, path_utils, proto_utils

from lensflow.components.pusher import models_config, remote, training_statistics, versions
from lensflow.components.pusher.fingerprint import data_fingerprint_of, training_fingerprint
from lensflow.pipeline.object_store import is_uri


ALREADY_SERVING = "already_serving"
HAS_MODEL = "has_model"       # TFX's InfraBlessing flag: the blessing holds the model to push
EXAMPLES_KEY = standard_component_specs.EXAMPLES_KEY
STATISTICS_KEY = standard_component_specs.STATISTICS_KEY


class Executor(tfx_executor.Executor):
    """Push blessed models as ``<base>/<version>/``, whole or not at all, with a push record
    (training fingerprint, source model); a model identical to the newest served version is
    not pushed twice."""

    def Do(self, input_dict, output_dict, exec_properties):
        self._log_startup(input_dict, output_dict, exec_properties)
        model_push = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(model_push)
            return
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY],
                                  destination)
        base = destination.filesystem.base_directory
        custom = json.loads(exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY) or "{}")
        keep = int(custom.get("keep_versions", 5))
        model_path = self.validated_model_path(input_dict)
        serving = versions.serving_copy_of(model_path, base)
        if serving is not None:
            model_push.set_int_custom_property(ALREADY_SERVING, 1)
            self._MarkPushed(model_push, pushed_destination=os.path.join(base, str(serving)),
                             pushed_version=str(serving))
            return
        trained = os.path.dirname(self.GetModelPath(input_dict).rstrip("/"))
        examples = artifact_utils.get_single_instance(input_dict[EXAMPLES_KEY])
        record = {"training_fingerprint": training_fingerprint(
                      data_fingerprint_of(examples), custom.get("settings_fingerprint", "")),
                  "cache_key": custom.get("cache_key", ""),
                  "model_uri": trained, "pushed_at": time.time()}
        added = {}
        if input_dict.get(STATISTICS_KEY):
            statistics = artifact_utils.get_single_instance(input_dict[STATISTICS_KEY])
            added[training_statistics.PATH_IN_VERSION] = training_statistics.read_split(statistics)
            record[training_statistics.RECORD_FIELD] = training_statistics.PATH_IN_VERSION
        version, final = push_version(
            model_path, base, custom.get("serving_dir", os.path.dirname(base)),
            custom.get("model_name", os.path.basename(base)), keep, record, added)
        self._MarkPushed(model_push, pushed_destination=final, pushed_version=str(version))

    def validated_model_path(self, input_dict) -> str:
        """The serving check's copy of the model (with warmup requests) when it made one,
        else the Trainer's export."""
        checked = input_dict.get(standard_component_specs.INFRA_BLESSING_KEY)
        if checked:
            blessing = artifact_utils.get_single_instance(checked)
            if blessing.get_int_custom_property(HAS_MODEL):
                return path_utils.stamped_model_path(blessing.uri)
        return self.GetModelPath(input_dict)


def push_version(model_path: str, base: str, serving_dir: str, name: str, keep: int,
                 record: dict, added: Optional[Dict[str, bytes]] = None) -> Tuple[int, str]:
    """Publish ``model_path`` (with the ``added`` files) as the next version under ``base`` (a
    folder: staged and renamed, ``versions``; a URI: uploaded, then named in models.config,
    ``remote``), update ``models.config`` and prune; a failed models.config update withdraws
    the new version."""
    publisher = remote if is_uri(base) else versions
    version, final = publisher.publish_next(model_path, base, record=record, added=added)
    complete = versions.versions(base) if is_uri(base) else None
    try:
        models_config.update(serving_dir, name, base, keep, newest=version, complete=complete)
    except BaseException:
        publisher.withdraw(base, version)  # a failed push leaves no new version
        raise
    publisher.prune(base, keep, protected=models_config.protected_versions(serving_dir, name))
    return version, final


class LensflowPusherSpec(standard_component_specs.PusherSpec):
    """TFX's Pusher spec plus the Examples the model was trained from (and their statistics)."""

    INPUTS = {**standard_component_specs.PusherSpec.INPUTS,
              EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
              STATISTICS_KEY: ChannelParameter(type=standard_artifacts.ExampleStatistics,
                                               optional=True)}


class LensflowPusher(Pusher):
    """Pusher with the lensflow executor; TFX's inputs plus ``examples`` (and ``statistics``)."""

    SPEC_CLASS = LensflowPusherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, examples: types.BaseChannel, model: types.BaseChannel,
                 model_blessing: types.BaseChannel,
                 push_destination: pusher_pb2.PushDestination, custom_config: dict,
                 infra_blessing: Optional[types.BaseChannel] = None,
                 statistics: Optional[types.BaseChannel] = None):
        base_component.BaseComponent.__init__(self, spec=LensflowPusherSpec(
            examples=examples, statistics=statistics, model=model, model_blessing=model_blessing,
            infra_blessing=infra_blessing, push_destination=push_destination, custom_config=json_utils.dumps(custom_config),
            pushed_model=types.Channel(type=standard_artifacts.PushedModel)))
