"""ImageExampleGen: a FileBasedExampleGen whose executor reads image folders.

Everything TFX's ExampleGen does (artifact layout, span/version, caching on the input
fingerprint, TFRecord output) is kept; only the source-to-examples step is ours.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

from tfx.components import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from google.protobuf import struct_pb2
from tfx.proto import example_gen_pb2

from lensflow.components.image_example_gen import executor


class ImageExampleGen(FileBasedExampleGen):
    """Ingest a class-folder tree, a pre-split tree or a CSV manifest of images."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(self, input_base: str, custom_config: Optional[Dict[str, Any]] = None):
        """``input_base`` is the image folder (or the manifest's folder); ``custom_config``
        carries the lensflow config and a dataset fingerprint so that changed files re-run."""
        super().__init__(
            input_base=input_base,
            input_config=example_gen_pb2.Input(splits=[
                example_gen_pb2.Input.Split(name="all", pattern="*")]),
            custom_config=pack_custom_config(custom_config or {}))


def pack_custom_config(values: Dict[str, Any]) -> example_gen_pb2.CustomConfig:
    """ExampleGen's custom_config is a proto Any: carry the dict as a Struct."""
    struct = struct_pb2.Struct()
    struct.update(values)
    config = example_gen_pb2.CustomConfig()
    config.custom_config.Pack(struct)
    return config
