"""TF Serving's ``BatchingParameters`` (servables/tensorflow/session_bundle_config.proto) and
``MonitoringConfig`` (config/monitoring_config.proto) as protobuf messages.

``tensorflow-serving-api`` ships neither, so they are transcribed here field for field (names,
numbers, types), which lets the batching and monitoring files be parsed exactly as TF Serving
parses them (text proto; an unknown or misspelt field is an error) by the tests and by
``lensflow serve --batching-parameters-file``.
"""
from __future__ import annotations

from google.protobuf import (descriptor_pb2, descriptor_pool, message_factory, text_format,
                             wrappers_pb2)

_FIELD = descriptor_pb2.FieldDescriptorProto


def _messages():
    file = descriptor_pb2.FileDescriptorProto(name="lensflow/tf_serving_config.proto",
                                              package="tensorflow.serving",
                                              dependency=["google/protobuf/wrappers.proto"])
    batching = file.message_type.add(name="BatchingParameters")
    for number, name, wrapper in ((1, "max_batch_size", "Int64Value"),
                                  (2, "batch_timeout_micros", "Int64Value"),
                                  (3, "max_enqueued_batches", "Int64Value"),
                                  (4, "num_batch_threads", "Int64Value"),
                                  (5, "thread_pool_name", "StringValue")):
        batching.field.add(name=name, number=number, label=_FIELD.LABEL_OPTIONAL,
                           type=_FIELD.TYPE_MESSAGE, type_name=f".google.protobuf.{wrapper}")
    batching.field.add(name="allowed_batch_sizes", number=6, label=_FIELD.LABEL_REPEATED,
                       type=_FIELD.TYPE_INT64)
    batching.field.add(name="pad_variable_length_inputs", number=7, label=_FIELD.LABEL_OPTIONAL,
                       type=_FIELD.TYPE_BOOL)
    prometheus = file.message_type.add(name="PrometheusConfig")
    prometheus.field.add(name="enable", number=1, label=_FIELD.LABEL_OPTIONAL,
                         type=_FIELD.TYPE_BOOL)
    prometheus.field.add(name="path", number=2, label=_FIELD.LABEL_OPTIONAL,
                         type=_FIELD.TYPE_STRING)
    monitoring = file.message_type.add(name="MonitoringConfig")
    monitoring.field.add(name="prometheus_config", number=1, label=_FIELD.LABEL_OPTIONAL,
                         type=_FIELD.TYPE_MESSAGE,
                         type_name=".tensorflow.serving.PrometheusConfig")
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(file)
    factory = message_factory.MessageFactory(pool)
    return tuple(factory.GetPrototype(pool.FindMessageTypeByName(f"tensorflow.serving.{name}"))
                 for name in ("BatchingParameters", "MonitoringConfig"))


BatchingParameters, MonitoringConfig = _messages()


def parse(path: str, message_type):
    """Parse the text proto at ``path`` as ``message_type`` (text_format.ParseError when not)."""
    message = message_type()
    with open(path, encoding="utf-8") as fh:
        text_format.Parse(fh.read(), message)
    return message
