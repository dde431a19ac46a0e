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
from pathlib import Path
from typing import List, Optional

from tfx import v1 as tfx

from components.data_validation.drift import DriftCheck
from components.data_validation.gate import DataGate
from components.evaluator.baseline import ServingBaseline, baseline_version
from components.evaluator.eval_config import build_eval_config
from components.evaluator.component import LensflowEvaluator
from components.image_example_gen.component import ImageExampleGen
from components.pusher.component import LensflowPusher
from components.report.component import RunReport
from components.serving_check.component import ServingCheck
from pipeline.config import CURATED_SCHEMA, CUSTOM_CONFIG_KEY, LensflowConfig

PREPROCESSING_FN = "components.transform.preprocessing.preprocessing_fn"
RUN_FN = "components.trainer.run.run_fn"
TUNER_FN = "components.trainer.tuning.tuner_fn"
PRESPLIT_NAMES = {"train", "test", "eval", "validation"}
TRAINER_KEYS = ["home", "augment", "model", "train", "tuner", "evaluation.top_k",
                "data.max_file_bytes"]


def transform_config(cfg: LensflowConfig) -> str:
    """Transform sees only the image settings, with normalisation resolved for the family, and
    the pixel limit its decode enforces (``data.max_image_pixels``, not the whole data section)."""
    image = {**cfg.to_dict()["image"], "normalize": cfg.effective_normalize}
    data = {"max_image_pixels": cfg.data.max_image_pixels}
    return json.dumps({"image": image, "data": data}, sort_keys=True)


def beam_pipeline_args(cfg: LensflowConfig) -> List[str]:
    """Beam options for the Beam-powered components, from ``config.beam``."""
    beam = cfg.beam
    args = [f"--runner={beam.runner}"]
    if beam.runner == "DirectRunner":
        args += [f"--direct_running_mode={beam.direct_running_mode}",
                 f"--direct_num_workers={beam.direct_num_workers}"]
    if beam.runner == "PortableRunner":
        if not beam.job_endpoint:
            raise ValueError("beam.job_endpoint is required with PortableRunner")
        args += [f"--job_endpoint={beam.job_endpoint}", "--environment_type=LOOPBACK"]
    return args + list(beam.extra_args)


def dataset_fingerprint(cfg: LensflowConfig) -> str:
    """Names, sizes and modification times of every file under the data (local data only), so
    a changed dataset invalidates the cached ingestion. A cache key only: what a model was
    trained from is fingerprinted at run time (``components.pusher.fingerprint``)."""
    root = cfg.data.manifest or cfg.data.path
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


def settings_fingerprint(cfg: LensflowConfig) -> str:
    """The compile-time part of the training fingerprint: ingestion, Transform and Trainer
    settings, and the lensflow version (the data part is taken at run time)."""
    from importlib import metadata

    try:
        version = metadata.version("lensflow")
    except metadata.PackageNotFoundError:
        version = "unknown"
    parts = [cfg.to_json(["data"]), transform_config(cfg), cfg.to_json(TRAINER_KEYS), version]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def evaluation_split(cfg: LensflowConfig) -> str:
    """The split TFMA evaluates: ``test`` when the data has one, else ``eval``."""
    root = cfg.data.path
    if not cfg.data.manifest and root and os.path.isdir(root):
        top = {name.lower() for name in os.listdir(root)
               if os.path.isdir(os.path.join(root, name))}
        if top and top <= PRESPLIT_NAMES:
            return "test" if "test" in top else "eval"
    return "test" if "test" in cfg.data.split_buckets else "eval"


def input_base(cfg: LensflowConfig) -> str:
    """The folder ExampleGen reads (the manifest's folder for a manifest)."""
    if cfg.data.manifest:
        return os.path.dirname(os.path.abspath(cfg.data.manifest))
    if not cfg.data.path:
        raise ValueError("set data.path (an image folder) or data.manifest (a CSV)")
    return cfg.data.path if "://" in cfg.data.path else os.path.abspath(cfg.data.path)


def create_pipeline(cfg: LensflowConfig, *, metadata_connection_config=None,
                    pipeline_root: Optional[str] = None, serving_dir: Optional[str] = None,
                    data_root: Optional[str] = None,
                    schema_file: Optional[str] = None) -> tfx.dsl.Pipeline:
    """Build the TFX pipeline for ``cfg``; runners supply metadata, roots and, for a container
    image, where the curated schema lives in it."""
    custom = {CUSTOM_CONFIG_KEY: cfg.to_json(TRAINER_KEYS)}
    data_fingerprint = dataset_fingerprint(cfg)
    settings = settings_fingerprint(cfg)
    cache_key = hashlib.sha256(f"{data_fingerprint}\0{settings}".encode()).hexdigest()
    example_gen = ImageExampleGen(
        input_base=data_root or input_base(cfg),
        custom_config={CUSTOM_CONFIG_KEY: cfg.to_json(["data"]),
                       "dataset_fingerprint": data_fingerprint})
    schema_gen = tfx.components.ImportSchemaGen(schema_file=schema_file or str(CURATED_SCHEMA))
    statistics_gen = tfx.components.StatisticsGen(
        examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"])
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"])
    serving = serving_dir or cfg.serving_dir
    serving_state = baseline_version(os.path.join(serving, cfg.push.model_name), cache_key,
                                     field="cache_key") or "none"
    drift_check = DriftCheck(
        examples=example_gen.outputs["examples"], statistics=statistics_gen.outputs["statistics"],
        serving_dir=serving, model_name=cfg.push.model_name, settings_fingerprint=settings,
        serving_state=serving_state, drift_config=cfg.to_json(["drift"]))
    gate = DataGate(statistics=statistics_gen.outputs["statistics"],
                    schema=schema_gen.outputs["schema"],
                    anomalies=example_validator.outputs["anomalies"],
                    drift=drift_check.outputs["drift"] if cfg.drift.policy == "gate" else None)
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=gate.outputs["validated_schema"],
        preprocessing_fn=PREPROCESSING_FN,
        splits_config=tfx.proto.SplitsConfig(
            analyze=["train"], transform=sorted({"train", "eval", evaluation_split(cfg)})),
        custom_config={CUSTOM_CONFIG_KEY: transform_config(cfg)})
    components = [example_gen, schema_gen, statistics_gen, example_validator, drift_check, gate,
                  transform]

    hyperparameters = None
    if cfg.tuner.enabled:
        tuner = tfx.components.Tuner(
            tuner_fn=TUNER_FN,
            examples=transform.outputs["transformed_examples"],
            transform_graph=transform.outputs["transform_graph"],
            train_args=tfx.proto.TrainArgs(splits=["train"]),
            eval_args=tfx.proto.EvalArgs(splits=["eval"]),
            custom_config=custom)
        hyperparameters = tuner.outputs["best_hyperparameters"]
        components.append(tuner)

    trainer = tfx.components.Trainer(
        run_fn=RUN_FN,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=gate.outputs["validated_schema"],
        hyperparameters=hyperparameters,
        train_args=tfx.proto.TrainArgs(splits=["train"]),
        eval_args=tfx.proto.EvalArgs(splits=["eval"]),
        custom_config=custom)
    baseline = ServingBaseline(
        examples=example_gen.outputs["examples"], serving_dir=serving,
        model_name=cfg.push.model_name, settings_fingerprint=settings,
        serving_state=serving_state)
    evaluator = LensflowEvaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=baseline.outputs["baseline_model"],
        example_splits=[evaluation_split(cfg)],
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
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(
                base_directory=os.path.join(serving, cfg.push.model_name))),
        custom_config={"keep_versions": cfg.push.keep_versions, "model_name": cfg.push.model_name,
                       "serving_dir": serving, "settings_fingerprint": settings,
                       "cache_key": cache_key})
    report = RunReport(
        examples=example_gen.outputs["examples"], model=trainer.outputs["model"],
        model_run=trainer.outputs["model_run"], evaluation=evaluator.outputs["evaluation"],
        blessing=evaluator.outputs["blessing"], pushed_model=pusher.outputs["pushed_model"],
        drift=drift_check.outputs["drift"], evaluation_split=evaluation_split(cfg))
    components += [trainer, baseline, evaluator, serving_check, pusher, report]

    return tfx.dsl.Pipeline(
        pipeline_name=cfg.pipeline_name,
        pipeline_root=pipeline_root or cfg.pipeline_root,
        components=components,
        enable_cache=cfg.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_pipeline_args(cfg))
