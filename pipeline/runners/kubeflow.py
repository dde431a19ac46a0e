"""Compile the pipeline for Kubeflow Pipelines v2 and submit it.

TFX's ``KubeflowV2DagRunner`` only compiles. On top of it this module makes the spec fit the
open-source KFP v2 backend: paths as seen from inside the pods, PersistentVolumeClaim mounts
(the ``kubernetes`` platform spec that kfp-kubernetes writes), no cache for the two tasks whose
cache key cannot see what they read, pipeline spec schema 2.1 (newer KFP drivers resolve only its
constants), a refusal to write a spec with resolver executors, which OSS KFP cannot run, every
task's command set to lensflow's entrypoint (``lensflow.pipeline.runners.kfp_entrypoint``: TFX's, behind the
fixes open-source KFP needs), and for an ``s3://`` root the S3 settings as container env plus the
credentials as ``secretAsEnv`` of the ``kubernetes`` platform spec.
Per-task CPU, memory and GPU from ``kubeflow.resources`` go into each container's
``ResourceSpec`` through TFX's ``with_platform_config``; node selectors into the platform spec.
"""
from __future__ import annotations

import json
import os
import posixpath
from typing import Any, Dict, List, Optional

import yaml
from google.protobuf import json_format
from kfp.kubernetes import kubernetes_executor_config_pb2 as k8s_pb
from kfp.pipeline_spec import pipeline_spec_pb2
from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner as kv2

from lensflow.pipeline.config import (CURATED_SCHEMA, REPO_ROOT, ConfigError,
                             LensflowConfig, parse_volume, quantity)
from lensflow.pipeline.pipeline import create_pipeline
from lensflow.pipeline.records import Record

TFX_ENTRYPOINT = list(kv2.KUBEFLOW_TFX_CMD)
ENTRYPOINT = ["python", "-m", "lensflow.pipeline.runners.kfp_entrypoint"]
# Keys of the KFP install's MinIO secret -> the variables tensorflow-io and boto3 read.
S3_SECRET_KEYS = {"accesskey": "AWS_ACCESS_KEY_ID", "secretkey": "AWS_SECRET_ACCESS_KEY"}
ResourceSpec = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec
PACKAGE_SUFFIXES = (".yaml", ".yml", ".json")
PLACEHOLDER_BUCKET = "YOUR-BUCKET"

# Tasks whose inputs are fixed at compile time while what they read changes between runs.
UNCACHED_TASKS = {
    "ImageExampleGen": "the images on the data volume can change; the compile-time dataset "
                       "fingerprint cannot see them",
    "ServingBaseline": "it must read the model serving now, not the one of an earlier run",
    "DriftCheck": "it must read the training statistics of the model serving now",
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
                               schema_file=image_schema_file(cfg), offline=True,
                               code_root=cfg.kubeflow.workdir)
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
    s3_env = s3_environment(cfg)
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
    env = [{"name": k, "value": v} for k, v in sorted(s3_env.items())]
    for executor in spec["deploymentSpec"]["executors"].values():
        container = executor.get("container", {})
        if container.get("command") == TFX_ENTRYPOINT:
            container["command"] = list(ENTRYPOINT)
        if env:
            container["env"] = env
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


def is_s3(cfg: LensflowConfig) -> bool:
    """The pods reach S3: the pipeline root, the data or the serving directory is there."""
    kf = cfg.kubeflow
    return any(str(path).startswith("s3://")
               for path in (kf.pipeline_root, kf.data_path, kf.serving_dir))


def s3_environment(cfg: LensflowConfig) -> Dict[str, str]:
    """What tensorflow-io's S3 filesystem (``S3_ENDPOINT`` with the scheme: 0.37 has no
    ``S3_USE_HTTPS``, it reads the scheme from the endpoint) and boto3, used by Beam's S3
    filesystem (``AWS_ENDPOINT_URL``), need besides the credentials; empty for other roots."""
    if not is_s3(cfg):
        return {}
    kf = cfg.kubeflow
    if cfg.beam.runner == "DirectRunner" and cfg.beam.direct_running_mode == "multi_processing":
        raise KubeflowSpecError(
            "beam.direct_running_mode=multi_processing with an s3:// kubeflow.pipeline_root: "
            "Beam's worker processes start without tensorflow-io and cannot open s3:// paths; "
            "use in_memory or multi_threading")
    scheme = "https" if kf.s3_use_https else "http"
    flag = "1" if kf.s3_use_https else "0"
    return {"S3_ENDPOINT": f"{scheme}://{kf.s3_endpoint}", "S3_USE_HTTPS": flag,
            "S3_VERIFY_SSL": flag,
            "AWS_REGION": kf.s3_region, "AWS_ENDPOINT_URL": f"{scheme}://{kf.s3_endpoint}"}


def _mount_owners(cfg: LensflowConfig) -> Dict[str, List[str]]:
    """Component id -> the pod paths it reads or writes."""
    kf = cfg.kubeflow
    owners = {"ImageExampleGen": [kf.data_path], "ServingBaseline": [kf.serving_dir],
              "DriftCheck": [kf.serving_dir],
              "LensflowPusher": [kf.serving_dir]}
    owners = {task: [path for path in paths if _is_pod_path(path)]  # a URI needs no volume
              for task, paths in owners.items()}
    if cfg.train.resume_dir and _is_pod_path(cfg.train.resume_dir):
        owners["Trainer"] = [cfg.train.resume_dir]  # backups that outlive the Trainer's pod
    return owners


def _is_pod_path(path: str) -> bool:
    return path.startswith("/") and "://" not in path


def _under(path: str, mount: str) -> bool:
    return posixpath.commonpath([posixpath.normpath(path), mount]) == mount


def platform_spec(cfg: LensflowConfig, spec: Dict[str, Any]) -> Dict[str, Any]:
    """The ``kubernetes`` PlatformSpec mounting each claim on the tasks using paths under it,
    with the node selectors of ``kubeflow.resources``."""
    volumes = [parse_volume(entry) for entry in cfg.kubeflow.volumes]
    configs: Dict[str, k8s_pb.KubernetesExecutorConfig] = {}
    secret = [k8s_pb.SecretAsEnv(secret_name=cfg.kubeflow.s3_secret, key_to_env=[
        k8s_pb.SecretAsEnv.SecretKeyToEnvMap(secret_key=key, env_var=var)
        for key, var in S3_SECRET_KEYS.items()])] if is_s3(cfg) else []

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
        if secret:
            config_of(component).secret_as_env.extend(secret)
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


class CompileResult(Record):
    """What ``compile_package`` wrote: the package, its image and root, the components, the
    volumes each mounts, the S3 secret named, the tasks compiled without cache, and a note."""

    path: str
    image: str
    pipeline_root: str
    components: List[str]
    mounts: Dict[str, List[str]]
    secret: str
    uncached: List[str]
    note: str


def compile_package(cfg: LensflowConfig, out_path: str) -> CompileResult:
    """Compile ``cfg`` into ``out_path``; return a short description of what was written."""
    job = compile_job(cfg)
    as_json = out_path.lower().endswith(".json")
    platform = {} if as_json else platform_spec(cfg, job["pipelineSpec"])
    write_package(job, platform, out_path)
    executors = platform.get("platforms", {}).get("kubernetes", {}).get(
        "deploymentSpec", {}).get("executors", {})
    return CompileResult(
        path=out_path, image=cfg.kubeflow.image, pipeline_root=cfg.kubeflow.pipeline_root,
        components=sorted(job["pipelineSpec"]["components"]),
        mounts={label: [m["constant"] + ":" + m["mountPath"] for m in conf["pvcMount"]]
                for label, conf in executors.items() if conf.get("pvcMount")},
        secret=cfg.kubeflow.s3_secret if is_s3(cfg) and not as_json else "",
        uncached=sorted(UNCACHED_TASKS),
        note="a PipelineJob (.json) carries no Kubernetes volume mounts" if as_json else "")


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
