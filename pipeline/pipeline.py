"""``create_pipeline(config) -> tfx.dsl.Pipeline``: the wiring, and nothing but the wiring.

ImageExampleGen -> StatisticsGen -> ImportSchemaGen -> ExampleValidator, DriftCheck -> DataGate ->
Transform -> [Tuner] -> Trainer -> ServingBaseline -> Evaluator -> ServingCheck -> Pusher ->
RunReport.
Module code is referenced by module path, so the same pipeline runs locally and in the
Kubeflow image where lensflow is installed.
"""
from __future__ import annotations

import hashlib
import json
import os
import posixpath
from pathlib import Path
from typing import Any, Dict, List, Optional

from tfx.components import ExampleValidator, StatisticsGen, Trainer, Transform, Tuner
from tfx.components.schema_gen.import_schema_gen.component import ImportSchemaGen
from tfx.orchestration.pipeline import Pipeline
from tfx.proto import pusher_pb2, trainer_pb2, transform_pb2

from lensflow.components.data_validation.drift import DriftCheck
from lensflow.components.data_validation.gate import DataGate
from lensflow.components.evaluator.baseline import ServingBaseline, baseline_version
from lensflow.components.evaluator.eval_config import build_eval_config
from lensflow.components.evaluator.component import LensflowEvaluator
from lensflow.components.image_example_gen.component import ImageExampleGen
from lensflow.components.pusher.component import LensflowPusher
from lensflow.components.report.component import RunReport
from lensflow.components.serving_check.component import ServingCheck
from lensflow.components.trainer import choice
from lensflow.pipeline import auto_model
from lensflow.pipeline.object_store import ensure_filesystem, is_uri
from lensflow.pipeline.config import CURATED_SCHEMA, CUSTOM_CONFIG_KEY, REPO_ROOT, LensflowConfig
from lensflow.pipeline.registry import AUTO

PREPROCESSING_FN = "lensflow.components.transform.preprocessing.preprocessing_fn"
RUN_FN = "lensflow.components.trainer.run.run_fn"
TUNER_FN = "lensflow.components.trainer.tuning.tuner_fn"
PRESPLIT_NAMES = {"train", "test", "eval", "validation"}
TRAINER_KEYS = ["home", "augment", "image", "model", "train", "tuner", "evaluation.top_k",
                "data.max_file_bytes"]


def transform_config(cfg: LensflowConfig) -> str:
    """Transform sees only the image settings, with normalisation resolved for the family, and
    the pixel limit its decode enforces (``data.max_image_pixels``, not the whole data section)."""
    image = {**cfg.to_dict()["image"], "normalize": cfg.effective_normalize}
    data = {"max_image_pixels": cfg.data.max_image_pixels}
    return json.dumps({"image": image, "data": data}, sort_keys=True)


def beam_pipeline_args(cfg: LensflowConfig, code_root: Optional[str] = None) -> List[str]:
    """Beam options for the Beam-powered components, from ``config.beam``: PortableRunner runs
    lensflow's code in the launching process (LOOPBACK) unless ``beam.environment_type`` names
    workers elsewhere. ``code_root``: where lensflow's repository is for the tasks (default:
    this checkout; a container image's folder when compiling for Kubeflow)."""
    beam = cfg.beam
    args = [f"--runner={beam.runner}"]
    if beam.runner == "DirectRunner":
        args += [f"--direct_running_mode={beam.direct_running_mode}",
                 f"--direct_num_workers={beam.direct_num_workers}"]
        if not _names_dependencies(beam.extra_args):
            args += _direct_dependency_args(code_root)
    if beam.runner == "PortableRunner":
        if not beam.job_endpoint:
            raise ValueError("beam.job_endpoint is required with PortableRunner")
        args.append(f"--job_endpoint={beam.job_endpoint}")
    environment = beam.environment_type or (
        "LOOPBACK" if beam.runner == "PortableRunner" else None)
    if environment:
        args.append(f"--environment_type={environment}")
    if beam.environment_config:
        args.append(f"--environment_config={beam.environment_config}")
    return args + list(beam.extra_args)


def _direct_dependency_args(code_root: Optional[str]) -> List[str]:
    """How DirectRunner's workers get lensflow: they import it (and TFX) from this environment
    and install nothing, but without a dependency flag TFX builds an sdist of itself before
    every Beam step, and with ``--setup_file`` Beam's stager runs ``setup.py sdist`` twice per
    Beam pipeline (2-8 s each, measured: the largest fixed cost of a fresh run, docs/PERFORMANCE.md).
    The lock file is named instead with ``--requirements_cache=skip``: staged as a file, nothing
    built or downloaded. In Kubeflow's pods (``code_root``) it is the image's copy, which the
    image was installed from; an installed wheel with neither file leaves TFX to build its sdist
    as it would anyway."""
    if code_root:
        return [f"--requirements_file={posixpath.join(code_root, 'requirements.lock')}",
                "--requirements_cache=skip"]
    lock = REPO_ROOT / "requirements.lock"
    if lock.is_file():
        return [f"--requirements_file={lock}", "--requirements_cache=skip"]
    setup_file = REPO_ROOT / "setup.py"
    return [f"--setup_file={setup_file}"] if setup_file.is_file() else []


# Beam flags that tell TFX how its code reaches the workers (tfx.utils.dependency_utils).
_DEPENDENCY_FLAGS = ("--extra_package", "--setup_file", "--requirements_file",
                     "--worker_harness_container_image", "--sdk_container_image")


def _names_dependencies(extra_args) -> bool:
    return any(arg.startswith(_DEPENDENCY_FLAGS) for arg in extra_args)


def dataset_fingerprint(cfg: LensflowConfig) -> str:
    """Names, sizes and modification times of every file under the data, so a changed dataset
    invalidates the cached ingestion. A cache key only: what a model was trained from is
    fingerprinted at run time (``lensflow.components.pusher.fingerprint``)."""
    root = cfg.data.manifest or cfg.data.path
    if is_uri(root):
        return object_fingerprint(root)
    if not root or not os.path.exists(root):
        return ""
    digest = hashlib.sha256()
    paths = [Path(root)] if os.path.isfile(root) else sorted(Path(root).rglob("*"))
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            continue
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode("utf-8", "replace"))
    return digest.hexdigest()


def object_fingerprint(root: str) -> str:
    """The same for a URI, from one listing through ``tf.io.gfile``: every object's key, size
    and modification time (an object store rewrites an object whole, so a change shows in
    one of them; sub-second same-size rewrites aside, which the content-hash fingerprint
    ingestion records still tells apart). FileNotFoundError names a location that holds
    nothing."""
    import tensorflow as tf

    ensure_filesystem(root)
    root = root.rstrip("/")
    if not tf.io.gfile.isdir(root):
        paths = [root]
    else:
        paths = sorted(posixpath.join(folder, name) for folder, _, files in tf.io.gfile.walk(root)
                       for name in files)
    digest = hashlib.sha256()
    for path in paths:
        try:
            stat = tf.io.gfile.stat(path)
        except tf.errors.NotFoundError:
            raise FileNotFoundError(f"data {root!r}: no such object or prefix") from None
        digest.update(f"{path}\0{stat.length}\0{stat.mtime_nsec}\n".encode("utf-8", "replace"))
    return digest.hexdigest()


def settings_fingerprint(cfg: LensflowConfig) -> str:
    """The compile-time part of the training fingerprint: ingestion, Transform and Trainer
    settings, and the lensflow version (the data part is taken at run time)."""
    from lensflow import installed_version

    parts = [cfg.to_json(["data"]), transform_config(cfg), cfg.to_json(TRAINER_KEYS),
             installed_version()]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def evaluation_split(cfg: LensflowConfig, offline: bool = False) -> str:
    """The split TFMA evaluates: ``test`` when the data has one, else ``eval`` (``offline``:
    from ``data.split_buckets`` alone, the data is not looked at)."""
    root = None if offline else cfg.data.path
    if not cfg.data.manifest and root and is_uri(root):
        import tensorflow as tf

        ensure_filesystem(root)
        top = {name.rstrip("/").lower() for name in tf.io.gfile.listdir(root)
               if tf.io.gfile.isdir(posixpath.join(root, name))}
        if top and top <= PRESPLIT_NAMES:
            return "test" if "test" in top else "eval"
    elif not cfg.data.manifest and root and os.path.isdir(root):
        top = {name.lower() for name in os.listdir(root)
               if os.path.isdir(os.path.join(root, name))}
        if top and top <= PRESPLIT_NAMES:
            return "test" if "test" in top else "eval"
    return "test" if "test" in cfg.data.split_buckets else "eval"


def input_base(cfg: LensflowConfig) -> str:
    """The folder ExampleGen reads (the manifest's folder for a manifest)."""
    if cfg.data.manifest:
        if is_uri(cfg.data.manifest):
            return posixpath.dirname(cfg.data.manifest)
        return os.path.dirname(os.path.abspath(cfg.data.manifest))
    if not cfg.data.path:
        raise ValueError("set data.path (an image folder) or data.manifest (a CSV)")
    return cfg.data.path if is_uri(cfg.data.path) else os.path.abspath(cfg.data.path)


def create_pipeline(cfg: LensflowConfig, *, metadata_connection_config=None,
                    pipeline_root: Optional[str] = None, serving_dir: Optional[str] = None,
                    data_root: Optional[str] = None,
                    schema_file: Optional[str] = None, offline: bool = False,
                    code_root: Optional[str] = None,
                    model_choice: Optional[Dict[str, Any]] = None) -> Pipeline:
    """Build the TFX pipeline for ``cfg``; runners supply metadata, roots and, for a container
    image, where the curated schema and the code (``code_root``) live in it. ``offline``: the data and the serving
    directory are not read while building (Kubeflow compiles where its pods' paths and buckets
    are not reachable; its ingestion and baseline are never cached anyway).
    ``model.family: auto`` is resolved here from the data (``auto_model``) unless the caller
    did it and passes its ``model_choice``; the Trainer records the choice for the summary."""
    if cfg.model.family == AUTO or model_choice is None:
        cfg, model_choice = auto_model.resolve(cfg, offline=offline)
    custom = {CUSTOM_CONFIG_KEY: cfg.to_json(TRAINER_KEYS),
              choice.CUSTOM_CONFIG_KEY: json.dumps(model_choice, sort_keys=True)}
    data_fingerprint = "" if offline else dataset_fingerprint(cfg)
    eval_split = evaluation_split(cfg, offline)
    settings = settings_fingerprint(cfg)
    cache_key = hashlib.sha256(f"{data_fingerprint}\0{settings}".encode()).hexdigest()
    example_gen = ImageExampleGen(
        input_base=data_root or input_base(cfg),
        custom_config={CUSTOM_CONFIG_KEY: cfg.to_json(["data"]),
                       "dataset_fingerprint": data_fingerprint})
    schema_gen = ImportSchemaGen(schema_file=schema_file or str(CURATED_SCHEMA))
    statistics_gen = StatisticsGen(
        examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"])
    example_validator = ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"])
    serving = serving_dir or cfg.serving_dir
    serving_state = "none" if offline else (baseline_version(
        os.path.join(serving, cfg.push.model_name), cache_key, field="cache_key") or "none")
    drift_check = DriftCheck(
        examples=example_gen.outputs["examples"], statistics=statistics_gen.outputs["statistics"],
        serving_dir=serving, model_name=cfg.push.model_name, settings_fingerprint=settings,
        serving_state=serving_state, drift_config=cfg.to_json(["drift"]))
    gate = DataGate(statistics=statistics_gen.outputs["statistics"],
                    schema=schema_gen.outputs["schema"],
                    anomalies=example_validator.outputs["anomalies"],
                    drift=drift_check.outputs["drift"] if cfg.drift.policy == "gate" else None)
    transform = Transform(
        examples=example_gen.outputs["examples"],
        schema=gate.outputs["validated_schema"],
        preprocessing_fn=PREPROCESSING_FN,
        splits_config=transform_pb2.SplitsConfig(
            analyze=["train"], transform=sorted({"train", "eval", eval_split})),
        custom_config={CUSTOM_CONFIG_KEY: transform_config(cfg)},
        # No pre/post-transform statistics: TFX's post-transform pass waits for the transformed
        # data's write through a side input, so DirectRunner buffers every transformed example
        # in memory (peak RSS grew with the dataset). StatisticsGen has the raw data's
        # statistics; the transformed images are stored bytes.
        disable_statistics=True)
    components = [example_gen, schema_gen, statistics_gen, example_validator, drift_check, gate,
                  transform]

    hyperparameters = None
    if cfg.tuner.enabled:
        tuner = Tuner(
            tuner_fn=TUNER_FN,
            examples=transform.outputs["transformed_examples"],
            transform_graph=transform.outputs["transform_graph"],
            train_args=trainer_pb2.TrainArgs(splits=["train"]),
            eval_args=trainer_pb2.EvalArgs(splits=["eval"]),
            custom_config=custom)
        hyperparameters = tuner.outputs["best_hyperparameters"]
        components.append(tuner)

    trainer = Trainer(
        run_fn=RUN_FN,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=gate.outputs["validated_schema"],
        hyperparameters=hyperparameters,
        train_args=trainer_pb2.TrainArgs(splits=["train"]),
        eval_args=trainer_pb2.EvalArgs(splits=["eval"]),
        custom_config=custom)
    baseline = ServingBaseline(
        examples=example_gen.outputs["examples"], serving_dir=serving,
        model_name=cfg.push.model_name, settings_fingerprint=settings,
        serving_state=serving_state)
    evaluator = LensflowEvaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=baseline.outputs["baseline_model"],
        example_splits=[eval_split],
        eval_config=build_eval_config(cfg))
    serving_check = ServingCheck(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        model_name=cfg.push.model_name,
        timeout_seconds=float(cfg.serving_check.timeout_seconds),
        images_per_class=cfg.serving_check.images_per_class,
        start_server=int(cfg.serving_check.enabled))
    pusher = LensflowPusher(
        examples=example_gen.outputs["examples"],
        statistics=statistics_gen.outputs["statistics"],
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        infra_blessing=serving_check.outputs["infra_blessing"],
        push_destination=pusher_pb2.PushDestination(
            filesystem=pusher_pb2.PushDestination.Filesystem(
                base_directory=os.path.join(serving, cfg.push.model_name))),
        custom_config={"keep_versions": cfg.push.keep_versions, "model_name": cfg.push.model_name,
                       "serving_dir": serving, "settings_fingerprint": settings,
                       "cache_key": cache_key})
    report = RunReport(
        examples=example_gen.outputs["examples"], model=trainer.outputs["model"],
        model_run=trainer.outputs["model_run"], evaluation=evaluator.outputs["evaluation"],
        blessing=evaluator.outputs["blessing"], pushed_model=pusher.outputs["pushed_model"],
        drift=drift_check.outputs["drift"], evaluation_split=eval_split)
    components += [trainer, baseline, evaluator, serving_check, pusher, report]

    return Pipeline(
        pipeline_name=cfg.pipeline_name,
        pipeline_root=pipeline_root or cfg.pipeline_root,
        components=components,
        enable_cache=cfg.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_pipeline_args(cfg, code_root))
