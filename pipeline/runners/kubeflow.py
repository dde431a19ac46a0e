"""Compile the pipeline for Kubeflow Pipelines v2 and submit it.

TFX's ``KubeflowV2DagRunner`` only compiles. On top of it this module makes the spec fit the
open-source KFP v2 backend: paths as seen from inside the pods, PersistentVolumeClaim mounts
(the ``kubernetes`` platform spec that kfp-kubernetes writes), no cache for the two tasks whose
cache key cannot see what they read, pipeline spec schema 2.1 (newer KFP drivers resolve only its
constants), and a refusal to write a spec with resolver executors, which OSS KFP cannot run.
Per-task CPU, memory and GPU from ``kubeflow.resources`` go into each container's
``ResourceSpec`` through TFX's ``with_platform_config``; node selectors into the platform spec.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import json  # noqa: E402
import posixpath  # noqa: E402
from typing import Any, Dict, List, Optional  # noqa: E402

import yaml  # noqa: E402
from google.protobuf import json_format  # noqa: E402
from kfp.kubernetes import kubernetes_executor_config_pb2 as k8s_pb  # noqa: E402
from kfp.pipeline_spec import pipeline_spec_pb2  # noqa: E402
from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner as kv2  # noqa: E402

from pipeline.config import (CURATED_SCHEMA, REPO_ROOT, ConfigError,  # noqa: E402
                             LensflowConfig, parse_volume, quantity)
from pipeline.pipeline import create_pipeline  # noqa: E402

ENTRYPOINT = list(kv2.KUBEFLOW_TFX_CMD)
ResourceSpec = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec
PACKAGE_SUFFIXES = (".yaml", ".yml", ".json")
PLACEHOLDER_BUCKET = "YOUR-BUCKET"

# Tasks whose inputs are fixed at compile time while what they read changes between runs.
UNCACHED_TASKS = {
    "ImageExampleGen": "the images on the data volume can change; the compile-time dataset "
                       "fingerprint cannot see them",
    "ServingBaseline": "it must read the model serving now, not the one of an earlier run",
}


class KubeflowSpecError(ValueError):
    """The compiled spec cannot run on open-source Kubeflow Pipelines."""


def remote_config(cfg: LensflowConfig) -> LensflowConfig:
    """``cfg`` as the pods see it: data and serving paths from ``kubeflow``, no local home."""
    data_path = cfg.kubeflow.data_path
    manifest = data_path if data_path.lower().endswith(".csv") else None
    return cfg.replace(**{"home": None, "data.path": None if manifest else data_path,
                          "data.manifest": manifest, "push.serving_dir": cfg.kubeflow.serving_dir})


def image_schema_file(cfg: LensflowConfig) -> str:
    """Where the curated schema is inside the image built by ``kubeflow/Dockerfile``."""
    return posixpath.join(cfg.kubeflow.workdir, CURATED_SCHEMA.relative_to(REPO_ROOT).as_posix())


def build_pipeline(cfg: LensflowConfig):
    """The TFX pipeline with every path as the Kubeflow pods see it, and each task's
    resources attached as its platform config."""
    remote = remote_config(cfg)
    data = remote.data
    data_root = posixpath.dirname(data.manifest) if data.manifest else data.path
    pipeline = create_pipeline(remote, pipeline_root=cfg.kubeflow.pipeline_root,
                               serving_dir=cfg.kubeflow.serving_dir, data_root=data_root,
                               schema_file=image_schema_file(cfg))
    tasks = [component.id for component in pipeline.components]
    unknown = sorted(set(cfg.kubeflow.resources) - set(tasks) - {"default"})
    if unknown:
        raise ConfigError(f"{', '.join('kubeflow.resources.' + name for name in unknown)}: no "
                          f"such task in this pipeline; tasks: default, {', '.join(tasks)}")
    for component in pipeline.components:
        resources = resource_spec(cfg.kubeflow.resources_for(component.id))
        if resources is not None:
            component.with_platform_config(resources)
    return pipeline


def resource_spec(resources: Dict[str, Any]) -> Optional[ResourceSpec]:
    """The container ``ResourceSpec`` for one task's resources: CPU in cores, memory in GB
    (the KFP driver writes ``<n>G``), the GPU as the accelerator's Kubernetes resource name
    and count; None when nothing is set."""
    spec = ResourceSpec()
    for key, field_name, unit in (("cpu", "cpu_limit", 1), ("cpu_request", "cpu_request", 1),
                                  ("memory", "memory_limit", 1e9),
                                  ("memory_request", "memory_request", 1e9)):
        if key in resources:
            setattr(spec, field_name, quantity(resources[key], key) / unit)
    if resources.get("gpu"):
        spec.accelerator.type = resources["gpu_type"]
        spec.accelerator.count = int(resources["gpu"])
    return spec if spec.ByteSize() else None


def resolver_executors(spec: Dict[str, Any]) -> List[str]:
    """Executor labels that are resolver executors (open-source KFP cannot run these)."""
    executors = spec.get("deploymentSpec", {}).get("executors", {})
    return sorted(label for label, executor in executors.items() if "resolver" in executor)


def check_runnable(spec: Dict[str, Any]) -> None:
    """Raise KubeflowSpecError when the spec holds a resolver executor."""
    resolvers = resolver_executors(spec)
    if resolvers:
        raise KubeflowSpecError(
            f"resolver executors {resolvers} cannot run on open-source Kubeflow Pipelines "
            "('resolver executors not implemented'); read the baseline another way")


def compile_job(cfg: LensflowConfig) -> Dict[str, Any]:
    """Compile to a PipelineJob dict (its ``pipelineSpec`` adjusted for open-source KFP)."""
    runner = kv2.KubeflowV2DagRunner(config=kv2.KubeflowV2DagRunnerConfig(
        default_image=cfg.kubeflow.image, use_pipeline_spec_2_1=True))
    pipeline = build_pipeline(cfg)
    job = runner.run(pipeline, write_out=False)
    spec = job["pipelineSpec"]
    check_runnable(spec)
    restore_dropped_resources(spec, pipeline)
    tasks = spec["root"]["dag"]["tasks"]
    for name in UNCACHED_TASKS:
        tasks[name]["cachingOptions"] = {"enableCache": False}
    spec["defaultPipelineRoot"] = cfg.kubeflow.pipeline_root
    return job


def restore_dropped_resources(spec: Dict[str, Any], pipeline) -> None:
    """Put each step's platform config into its container where TFX left it out: TFX 1.16's
    ``StepBuilder._build_file_based_example_gen_spec`` (ImageExampleGen's container) never
    copies ``platform_config`` into ``resources`` as it does for every other component."""
    executors = spec["deploymentSpec"]["executors"]
    for component in pipeline.components:
        if component.platform_config is None:
            continue
        label = spec["components"][component.id]["executorLabel"]
        executors[label]["container"].setdefault(
            "resources", json_format.MessageToDict(component.platform_config))


def _mount_owners(cfg: LensflowConfig) -> Dict[str, List[str]]:
    """Component id -> the pod paths it reads or writes."""
    kf = cfg.kubeflow
    return {"ImageExampleGen": [kf.data_path], "ServingBaseline": [kf.serving_dir],
            "LensflowPusher": [kf.serving_dir]}


def _under(path: str, mount: str) -> bool:
    return posixpath.commonpath([posixpath.normpath(path), mount]) == mount


def platform_spec(cfg: LensflowConfig, spec: Dict[str, Any]) -> Dict[str, Any]:
    """The ``kubernetes`` PlatformSpec mounting each claim on the tasks using paths under it,
    with the node selectors of ``kubeflow.resources``."""
    volumes = [parse_volume(entry) for entry in cfg.kubeflow.volumes]
    configs: Dict[str, k8s_pb.KubernetesExecutorConfig] = {}

    def config_of(component: str) -> k8s_pb.KubernetesExecutorConfig:
        label = spec["components"][component]["executorLabel"]
        return configs.setdefault(label, k8s_pb.KubernetesExecutorConfig())

    for component, paths in _mount_owners(cfg).items():
        mounts = [k8s_pb.PvcMount(constant=claim, mount_path=mount) for claim, mount in volumes
                  if any(_under(path, mount) for path in paths)]
        if mounts and component in spec["components"]:
            config_of(component).pvc_mount.extend(mounts)
    for component in spec["components"]:
        selector = cfg.kubeflow.resources_for(component).get("node_selector")
        if selector:
            config_of(component).node_selector.labels.update(selector)
    executors = {label: json_format.MessageToDict(config) for label, config in configs.items()}
    if not executors:
        return {}
    return {"platforms": {"kubernetes": {"deploymentSpec": {"executors": executors}}}}


def write_package(job: Dict[str, Any], platform: Dict[str, Any], out_path: str) -> str:
    """``.yaml``: the bare PipelineSpec (+ platform spec document) for ``kfp.Client``;
    ``.json``: the whole PipelineJob (Vertex AI style, which has no Kubernetes volumes)."""
    if not out_path.lower().endswith(PACKAGE_SUFFIXES):
        raise ValueError(f"{out_path!r}: the package must end in .yaml, .yml or .json")
    parent = os.path.dirname(os.path.abspath(out_path))
    os.makedirs(parent, exist_ok=True)
    with open(out_path, "w", encoding="utf-8") as fh:
        if out_path.lower().endswith(".json"):
            json.dump(job, fh, indent=2, sort_keys=True)
        else:
            name = job["pipelineSpec"]["pipelineInfo"]["name"]
            fh.write(f"# PIPELINE DEFINITION\n# Name: {name}\n# Compiled by 'lensflow compile "
                     "--target kubeflow' (TFX KubeflowV2DagRunner).\n")
            documents = [job["pipelineSpec"]] + ([platform] if platform else [])
            yaml.safe_dump_all(documents, fh, sort_keys=True)
    return out_path


def compile_package(cfg: LensflowConfig, out_path: str) -> Dict[str, Any]:
    """Compile ``cfg`` into ``out_path``; return a short description of what was written."""
    job = compile_job(cfg)
    as_json = out_path.lower().endswith(".json")
    platform = {} if as_json else platform_spec(cfg, job["pipelineSpec"])
    write_package(job, platform, out_path)
    executors = platform.get("platforms", {}).get("kubernetes", {}).get(
        "deploymentSpec", {}).get("executors", {})
    return {"path": out_path, "image": cfg.kubeflow.image,
            "pipeline_root": cfg.kubeflow.pipeline_root,
            "components": sorted(job["pipelineSpec"]["components"]),
            "mounts": {label: [m["constant"] + ":" + m["mountPath"] for m in conf["pvcMount"]]
                       for label, conf in executors.items() if conf.get("pvcMount")},
            "uncached": sorted(UNCACHED_TASKS),
            "note": "a PipelineJob (.json) carries no Kubernetes volume mounts" if as_json else ""}


def check_submittable(cfg: LensflowConfig) -> None:
    """Refuse a pipeline root that is still the placeholder of the default config."""
    if PLACEHOLDER_BUCKET in cfg.kubeflow.pipeline_root:
        raise ValueError(f"kubeflow.pipeline_root={cfg.kubeflow.pipeline_root!r} is the "
                         "placeholder; set it (config file or --pipeline-root) to a bucket "
                         "the pipeline's pods can write")


def submit(cfg: LensflowConfig, host: str, package: str, *, experiment: Optional[str] = None,
           run_name: Optional[str] = None, no_cache: bool = False) -> str:
    """Create a run of ``package`` on the KFP API at ``host``; return the run id.

    Caching is overridden only to switch it off: an override to on would also re-enable the
    tasks compiled without cache.
    """
    import kfp

    check_submittable(cfg)
    client = kfp.Client(host=host)
    result = client.create_run_from_pipeline_package(
        package, arguments={}, run_name=run_name, experiment_name=experiment,
        pipeline_root=cfg.kubeflow.pipeline_root, enable_caching=False if no_cache else None)
    return result.run_id
