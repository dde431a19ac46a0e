"""Kubeflow Pipelines' ``system.HTML``, ``system.Markdown`` and ``system.Metrics`` as TFX artifacts.

The KFP UI renders an output artifact only by its ML Metadata type name (the schema title):
``system.HTML`` and ``system.Markdown`` files are shown inline, the custom properties of a
``system.Metrics`` artifact as a table of scalar metrics (each needs a ``display_name``).
TFX's KubeflowV2 compiler writes a custom artifact type's ``TYPE_NAME`` as its schema title,
and TFX's container entrypoint imports the class back *by that title*
(``kubeflow_v2_entrypoint_utils._retrieve_class_path``). So these classes must live at exactly
the import path ``system.<Title>``: that is why this package is named ``system``. No patch of
TFX or KFP is involved.

Each is a single file at the artifact's URI (a ``ValueArtifact``), because the KFP UI reads the
URI of an HTML or Markdown artifact as one file; under LocalDagRunner the URI is
``.../<execution id>/value``.
"""
from tfx.types.value_artifact import ValueArtifact


class _TextFile(ValueArtifact):
    """A UTF-8 text file at the artifact URI."""

    def encode(self, value: str) -> bytes:
        return value.encode("utf-8")

    def decode(self, serialized_value: bytes) -> str:
        return serialized_value.decode("utf-8")


class HTML(_TextFile):
    """A self-contained HTML page (KFP UI: "Static HTML")."""

    TYPE_NAME = "system.HTML"


class Markdown(_TextFile):
    """A Markdown text (KFP UI: "Static Markdown")."""

    TYPE_NAME = "system.Markdown"


class Metrics(_TextFile):
    """Scalar metrics as custom properties (KFP UI: "Scalar Metrics"); the file holds them as
    JSON with the run summary, for readers of the bucket."""

    TYPE_NAME = "system.Metrics"


__all__ = ["HTML", "Markdown", "Metrics"]
