"""Steps that touch an object store, each run as its own process by the tests
(``python -m tests.object_store_steps STEP ...``, the store's settings in the environment).

A process that used tensorflow-io's S3 filesystem aborts at exit (tensorflow/io#2039), so the
tests' own process never does: every step prints one JSON line and ends with ``exit_now``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback

from lensflow.pipeline.object_store import exit_now


def ingest(data: str, out: str, manifest: str = "") -> dict:
    """ImageExampleGen's executor as TFX runs it; the examples it wrote and what it recorded."""
    import tensorflow as tf
    from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
    from tfx.utils import proto_utils

    from lensflow.components.image_example_gen.component import ImageExampleGen
    from lensflow.components.image_example_gen.executor import Executor
    from lensflow.components.transform import features
    from lensflow.pipeline.config import CUSTOM_CONFIG_KEY, LensflowConfig

    cfg = LensflowConfig().replace(**{"data.manifest": manifest or None, "data.path": data})
    component = ImageExampleGen(input_base=data, custom_config={CUSTOM_CONFIG_KEY: cfg.to_json()})
    props = {key: proto_utils.proto_to_json(value) if hasattr(value, "DESCRIPTOR") else value
             for key, value in component.exec_properties.items()}
    examples = standard_artifacts.Examples()
    examples.uri = out
    Executor().Do({}, {standard_component_specs.EXAMPLES_KEY: [examples]}, props)
    rows = []
    for split in json.loads(examples.split_names):
        pattern = f"{artifact_utils.get_split_uri([examples], split)}/*.gz"
        for record in tf.data.TFRecordDataset(tf.io.gfile.glob(pattern), compression_type="GZIP"):
            feature = tf.train.Example.FromString(record.numpy()).features.feature
            rows.append([split] + [feature[key].bytes_list.value[0].decode() for key in
                                   (features.LABEL_KEY, features.PATH_KEY, features.HASH_KEY)])
    with tf.io.gfile.GFile(f"{out}/ingestion_report.json") as fh:
        report = json.loads(fh.read())
    return {"examples": sorted(rows),
            "counts": {key: examples.get_int_custom_property(key)
                       for key in ("found", "ingested", "rejected", "ignored")},
            "rejected": sorted((r["path"], r["reason"]) for r in report["rejected"]),
            "fingerprint": examples.get_string_custom_property("data_fingerprint")}


def fingerprint(data: str) -> dict:
    """The compile-time cache key of the data (``lensflow.pipeline.pipeline.dataset_fingerprint``)."""
    from lensflow.pipeline.config import LensflowConfig
    from lensflow.pipeline.pipeline import dataset_fingerprint

    return {"fingerprint": dataset_fingerprint(LensflowConfig().replace(**{"data.path": data}))}


def push(model_dir: str, base: str, serving_dir: str, name: str) -> dict:
    """One push as the Pusher's executor makes it (``component.push_version``), carrying a
    statistics file as the drift check's baseline."""
    from lensflow.components.pusher import training_statistics
    from lensflow.components.pusher.component import push_version

    added = {training_statistics.PATH_IN_VERSION: f"statistics of {model_dir}".encode()}
    version, final = push_version(model_dir, base, serving_dir, name, 3, {"source": model_dir},
                                  added)
    return {"version": version, "final": final}


def state(base: str, serving_dir: str, name: str) -> dict:
    """What a reader of the serving location sees: complete versions, models.config's entry,
    every numeric prefix, and the incumbent for an unknown fingerprint."""
    from lensflow.components.evaluator.baseline import baseline_version
    from lensflow.components.pusher import models_config, versions

    entry = models_config.entry(models_config.read(f"{serving_dir}/{models_config.CONFIG_FILE}"),
                                name)
    return {"complete": versions.versions(base), "taken": versions.numeric_names(base),
            "named": list(entry.model_version_policy.specific.versions) if entry else None,
            "base_path": entry.base_path if entry else None,
            "labels": dict(entry.version_labels) if entry else None,
            "baseline": baseline_version(base, "no-such-fingerprint")}


def make_model(folder: str, factor: str, extra_files: str = "0") -> dict:
    """A real SavedModel whose ``scale(x)`` returns ``factor * x`` (a variable), with
    ``extra_files`` small asset files so that uploading it takes many requests."""
    import tensorflow as tf

    module = tf.Module()
    module.factor = tf.Variable(float(factor))
    module.scale = tf.function(lambda x: module.factor * x,
                               input_signature=[tf.TensorSpec([], tf.float32)])
    tf.saved_model.save(module, folder)
    for i in range(int(extra_files)):
        with open(os.path.join(folder, "assets", f"extra-{i:04d}.txt"), "w") as fh:
            fh.write(str(i) * 64)
    return {"folder": folder}


def baseline(serving_dir: str, name: str, out: str) -> dict:
    """``ServingBaseline``'s executor as TFX runs it, for a run whose data nobody pushed from."""
    from tfx.types import standard_artifacts
    from tfx.utils import path_utils

    from lensflow.components.evaluator.baseline import ServingBaseline

    examples = standard_artifacts.Examples()
    examples.set_string_custom_property("data_fingerprint", "data nobody pushed from")
    model = standard_artifacts.Model()
    model.uri = out
    ServingBaseline.EXECUTOR_SPEC.executor_class().Do(
        {"examples": [examples]}, {"baseline_model": [model]},
        {"serving_dir": serving_dir, "model_name": name, "settings_fingerprint": "s",
         "serving_state": "none"})
    return {"found": model.get_int_custom_property("found"),
            "version": model.get_string_custom_property("serving_version"),
            "copy": path_utils.serving_model_dir(out)}


def label(serving_dir: str, name: str, label_name: str, version: str) -> dict:
    """Point a version label at ``version`` as ``lensflow serve labels`` does."""
    from lensflow.components.pusher import models_config, versions

    path = f"{serving_dir}/{models_config.CONFIG_FILE}"
    base = models_config.entry(models_config.read(path), name).base_path
    return models_config.set_labels(path, name, {label_name: int(version)},
                                    on_disk=versions.versions(base))


def predict(version_uri: str, value: float) -> dict:
    """Load a pushed SavedModel straight from the store and call it."""
    import tensorflow as tf

    model = tf.saved_model.load(version_uri)
    return {"output": float(model.scale(tf.constant(value)).numpy())}


STEPS = {"ingest": ingest, "fingerprint": fingerprint, "push": push, "state": state,
         "predict": predict, "make_model": make_model,
         "baseline": baseline, "label": label}


class Session:
    """One child process answering many steps (TensorFlow imported once): ``call`` sends a
    step as a JSON line and reads its answer; the test's own process never touches S3."""

    def __init__(self, server):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.object_store_steps", "--session"],
            env={**os.environ, **server.env}, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True)

    def call(self, step: str, *args, check: bool = True):
        self.proc.stdin.write(json.dumps([step, *map(str, args)]) + "\n")
        self.proc.stdin.flush()
        line = " "
        while line and line[:1] not in "{[":  # anything else a library printed is not ours
            line = self.proc.stdout.readline()
        assert line, f"the step process ended (exit {self.proc.wait()}) during {step}"
        answer = json.loads(line)
        if check:
            assert not (isinstance(answer, dict) and "error" in answer), f"{step}: {answer}"
        return answer

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=120)


def _answer(step: str, args) -> tuple:
    """(exit status, JSON answer) of one step."""
    try:
        result = STEPS[step](*(float(a) if step == "predict" and i else a
                               for i, a in enumerate(args)))
    except Exception as err:  # noqa: BLE001 - reported to the test, which asserts on it
        traceback.print_exc()
        return 1, json.dumps({"error": type(err).__name__, "message": str(err)})
    return 0, json.dumps(result)


def main(argv) -> int:
    from lensflow.pipeline.object_store import ensure_filesystem

    ensure_filesystem("s3://")
    if argv == ["--session"]:
        real_stdout, sys.stdout = sys.stdout, sys.stderr  # answers only on the real stdout
        for line in sys.stdin:
            step, *args = json.loads(line)
            real_stdout.write(_answer(step, args)[1] + "\n")
            real_stdout.flush()
        return 0
    status, answer = _answer(argv[0], argv[1:])
    print(answer)
    return status


if __name__ == "__main__":
    exit_now(main(sys.argv[1:]))
