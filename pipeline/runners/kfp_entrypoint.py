"""The command of every task in the compiled Kubeflow package: TFX's V2 container entrypoint
(``tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor``) behind two fixes for
open-source Kubeflow Pipelines v2. It takes the same arguments as TFX's entrypoint.

- **Artifact types the open-source driver loses** (tensorflow/tfx#7768): KFP's driver reads input
  artifacts back from ML Metadata without their schema and hands them to the executor with an
  empty ``instanceSchema`` (or a ``system.*`` title), from which TFX cannot find the artifact class
  (``'NoneType' object has no attribute 'get'`` / ``Could not import system.Artifact``). The task's
  own ``--json_serialized_inputs_spec_args`` (written by TFX's compiler) holds each input's type,
  so such types are filled in from it before TFX parses the ``ExecutorInput``. Prior art:
  sky-uk/kfp-operator's ``tfx-patch`` shim.
- **``s3://`` pipeline roots**: TFX writes artifacts straight to their URIs with ``tf.io.gfile``,
  which knows ``s3://`` only once ``tensorflow_io`` is imported (it registers its S3 filesystem,
  configured by ``S3_ENDPOINT``, ``AWS_*``, ``S3_USE_HTTPS``, ``S3_VERIFY_SSL``); KFP's default
  ``minio://`` root cannot be written this way at all (kubeflow/pipelines#13476 and the notes in
  ``kubeflow/README.md``). Importing it here makes every task's process, and the Beam workers it
  forks, able to read and write the root.

- **Empty files written by Beam to ``s3://``** (apache/beam#21427): Beam's S3 uploader completes
  a multipart upload without parts for a zero-byte file, which S3 (and MinIO, and moto) refuse
  with ``MalformedXML``; TFX and lensflow write such files (e.g. an empty shard, no rejected
  images). Such an upload gets one empty part first.
- **The abort at exit** of tensorflow-io 0.37.1's S3 filesystem on TF 2.16.2 ("pure virtual method
  called", exit code 134 after the work is done; tensorflow/io#2039, #1912): the process ends
  with ``os._exit`` and TFX's own status once its output is flushed, so a finished task is not
  reported as failed.

A launcher module rather than a ``sitecustomize`` so that the fix is visible in the package's
``command`` and applies only to pipeline tasks.
"""
from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Any, Dict, List

from lensflow.pipeline import object_store

INVOCATION_FLAG = "--json_serialized_invocation_args"
INPUTS_SPEC_FLAG = "--json_serialized_inputs_spec_args"


def _flag_value(argv: List[str], flag: str):
    """Index and value of ``flag`` given as ``--flag value`` or ``--flag=value``."""
    for i, word in enumerate(argv):
        if word == flag and i + 1 < len(argv):
            return i + 1, argv[i + 1]
        if word.startswith(flag + "="):
            return i, word[len(flag) + 1:]
    return None, None


def _type_is_lost(artifact_type: Dict[str, Any]) -> bool:
    """True for a type TFX cannot map to a class: empty, an empty ``instanceSchema``, or a KFP
    ``system.*`` title."""
    if not artifact_type:
        return True
    if "instanceSchema" in artifact_type:
        return not artifact_type["instanceSchema"].strip()
    return str(artifact_type.get("schemaTitle", "")).startswith("system.") or \
        not artifact_type.get("schemaTitle")


def restore_artifact_types(executor_input: Dict[str, Any], inputs_spec: Dict[str, Any]
                           ) -> List[str]:
    """Give each input artifact whose type was lost the type of its input definition
    (tensorflow/tfx#7768); return the keys restored."""
    restored = []
    definitions = inputs_spec.get("artifacts", {})
    for key, listing in executor_input.get("inputs", {}).get("artifacts", {}).items():
        declared = definitions.get(key, {}).get("artifactType")
        if not declared:
            continue
        for artifact in listing.get("artifacts", []):
            if _type_is_lost(artifact.get("type", {})):
                artifact["type"] = dict(declared)
                restored.append(key)
    return restored


def fix_arguments(argv: List[str]) -> List[str]:
    """TFX entrypoint arguments with the lost input artifact types restored."""
    argv = list(argv)
    at, raw = _flag_value(argv, INVOCATION_FLAG)
    _, spec_raw = _flag_value(argv, INPUTS_SPEC_FLAG)
    if raw is None or not spec_raw:
        return argv
    executor_input = json.loads(raw)
    if restore_artifact_types(executor_input, json.loads(spec_raw)):
        fixed = json.dumps(executor_input)
        argv[at] = fixed if argv[at] == raw else f"{INVOCATION_FLAG}={fixed}"
    return argv


def register_filesystems() -> None:
    """Make ``s3://`` known to ``tf.io.gfile`` (tensorflow-io's S3 filesystem) and let Beam's S3
    filesystem write empty files (apache/beam#21427)."""
    object_store.register_s3()
    _patch_beam_s3()


def _patch_beam_s3() -> None:
    """apache/beam#21427: an empty file gets one empty part."""
    from apache_beam.io.aws import s3io

    if not getattr(s3io.S3Uploader.finish, "lensflow_patched", False):
        s3io.S3Uploader.finish = _finish_with_one_part(s3io.S3Uploader.finish)


def _finish_with_one_part(finish):
    """``S3Uploader.finish`` that uploads an empty part when nothing was uploaded."""
    def patched(self):
        if not self.buffer and not self.parts and self.last_error is None:
            self._write_to_s3(b"")  # pylint: disable=protected-access
        return finish(self)

    patched.lensflow_patched = True
    return patched


def run(argv: List[str]) -> int:
    """Run TFX's entrypoint on the fixed arguments; its exit status."""
    from absl import app
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor as tfx_entry

    register_filesystems()
    sys.argv = [tfx_entry.__file__] + fix_arguments(argv)
    try:
        app.run(tfx_entry.main, flags_parser=tfx_entry._parse_flags)  # pylint: disable=protected-access
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else int(done.code is not None)
    except BaseException:  # pylint: disable=broad-except
        traceback.print_exc()
        return 1
    return 0


def main(argv: List[str]) -> None:
    """Exit with ``os._exit`` so tensorflow-io's S3 teardown cannot abort a finished task
    (tensorflow/io#2039)."""
    object_store.exit_now(run(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
