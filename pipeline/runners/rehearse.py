"""Rehearse a compiled Kubeflow package offline, the way open-source KFP v2 executes it.

A rehearsal, not a cluster: it walks ``root.dag`` of the package in dependency order and, per
task, does what KFP v2's Go driver and launcher do (``backend/src/v2/driver``,
``backend/src/v2/component/launcher_v2.go``):

- builds the ``ExecutorInput`` (kfp's ``pipeline_spec_pb2``): output artifact URIs
  ``<pipeline root>/<pipeline name>/<run id>/<task>/<output key>`` with the output definition's
  type, ``outputs.outputFile``, parameter values from the spec's constants, and input artifacts as
  the driver reads them back from ML Metadata: the URI and the metadata that the producer's
  ``executor_output.json`` returned, an MLMD-style numeric name, and an **empty
  ``instanceSchema``** as type (the driver's ``OutputArtifact.Schema`` is left empty:
  "TODO(Bobgy): figure out how to get schema"; tensorflow/tfx#7768);
- substitutes ``{{$}}`` and the other placeholders (kfp's own placeholder forms) and runs the
  task's own ``command`` + ``args`` from the package in a subprocess, with the image's ``ENV``
  (parsed from ``kubeflow/Dockerfile``), the container's ``env`` and the ``secretAsEnv`` of the
  ``kubernetes`` platform spec;
- honours ``cachingOptions`` with a cache keyed like KFP's (input artifact names, parameter
  values, output specs, image and command line);
- never runs ``lifecycle.preCacheCheck`` hooks (the open-source backend does not);
- stops at the first failing task and returns its log.

Pod paths: each PVC mount of the platform spec (and the image's ``WORKDIR``) is mapped to a local
folder; the rehearsal rewrites those pod paths in the task's string parameters (before
substitution, after the cache key is taken) and runs the task in the mapped ``WORKDIR``.
A pod's private ``/tmp`` (where the launcher puts ``outputs.outputFile``) becomes a folder per
task under the rehearsal's state folder.

What it does NOT cover: container images (it runs this machine's Python environment, not the
image), pods and Kubernetes (no scheduling, resources, node selectors, service accounts),
ML Metadata (a JSON file stands in for it), and the Go launcher's download/upload of artifacts
between the bucket and ``/gcs``, ``/minio``, ``/s3`` (TFX's entrypoint reads and writes
``artifact.uri`` itself, so nothing depends on it; kubeflow/pipelines#13476 lives there).

It imports no lensflow code: everything it runs comes from the package.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

import yaml
from google.protobuf import json_format, struct_pb2
from kfp.kubernetes import kubernetes_executor_config_pb2 as k8s_pb
from kfp.local import placeholder_utils
from kfp.pipeline_spec import pipeline_spec_pb2 as pb

# Where the launcher asks the executor to write its ExecutorOutput (component.OutputMetadataFilepath).
POD_OUTPUT_FILE = "/tmp/kfp_outputs/output_metadata.json"
LOG_TAIL_LINES = 60


class RehearsalError(RuntimeError):
    """A task failed, or the package asks for something the rehearsal cannot do."""

    def __init__(self, message: str, task: Optional[str] = None, log: str = ""):
        super().__init__(message)
        self.task = task
        self.log = log


@dataclass
class TaskResult:
    """What happened to one task: ``ran``, ``cached`` or ``failed``."""

    name: str
    state: str
    fingerprint: str
    executor_input: Dict[str, Any]
    executor_output: Dict[str, Any]
    log_path: str
    seconds: float = 0.0

    def output(self, key: str) -> Dict[str, Any]:
        """The runtime artifact (uri, metadata, name) of output ``key``."""
        return self.executor_output["artifacts"][key]["artifacts"][0]


@dataclass
class Rehearsal:
    """A finished rehearsal: its run id and root, and each task's result in execution order."""

    run_id: str
    run_root: str
    tasks: Dict[str, TaskResult] = field(default_factory=dict)


# ---- the package ------------------------------------------------------------------------------

def load_package(path: str) -> Tuple[pb.PipelineSpec, Dict[str, Any]]:
    """The PipelineSpec (parsed strictly) and the ``kubernetes`` platform executors of a
    ``lensflow compile`` ``.yaml`` package (KFP's format: spec, then the platform spec)."""
    with open(path, encoding="utf-8") as fh:
        documents = [doc for doc in yaml.safe_load_all(fh) if doc]
    if not documents or "root" not in documents[0]:
        raise RehearsalError(f"{path}: not a compiled pipeline package (no root DAG)")
    spec = json_format.ParseDict(documents[0], pb.PipelineSpec())
    platform: Dict[str, Any] = {}
    for doc in documents[1:]:
        platform = doc.get("platforms", {}).get("kubernetes", {}).get(
            "deploymentSpec", {}).get("executors", {}) or platform
    for label, conf in platform.items():
        json_format.ParseDict(conf, k8s_pb.KubernetesExecutorConfig())
    return spec, platform


def task_order(spec: pb.PipelineSpec) -> List[str]:
    """Tasks of ``root.dag`` in dependency order (ties by name, so the order is stable)."""
    tasks = spec.root.dag.tasks
    needs = {name: set(task.dependent_tasks) | {
        art.task_output_artifact.producer_task for art in task.inputs.artifacts.values()
        if art.WhichOneof("kind") == "task_output_artifact"} for name, task in tasks.items()}
    order: List[str] = []
    while needs:
        ready = sorted(name for name, deps in needs.items() if deps <= set(order))
        if not ready:
            raise RehearsalError(f"the DAG has a cycle or unknown tasks among {sorted(needs)}")
        order.append(ready[0])
        del needs[ready[0]]
    return order


def dockerfile_facts(path: str) -> Tuple[Dict[str, str], Optional[str]]:
    """``ENV`` variables and the last ``WORKDIR`` of a Dockerfile."""
    with open(path, encoding="utf-8") as fh:
        text = re.sub(r"\\\n", " ", fh.read())
    env: Dict[str, str] = {}
    workdir = None
    for line in text.splitlines():
        words = line.strip().split(None, 1)
        if len(words) < 2:
            continue
        instruction, rest = words[0].upper(), words[1]
        if instruction == "WORKDIR":
            workdir = rest.strip()
        elif instruction == "ENV":
            parts = shlex.split(rest)
            if parts and "=" not in parts[0]:
                env[parts[0]] = " ".join(parts[1:])
            else:
                env.update(part.split("=", 1) for part in parts)
    return env, workdir


# ---- ML Metadata stand-in: artifact names and the cache -----------------------------------------

class Store:
    """A JSON file standing in for KFP's ML Metadata: artifact ids and cached executions."""

    def __init__(self, path: str):
        self.path = path
        self.data = {"next_id": 1, "cache": {}}
        if os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                self.data = json.load(fh)

    def new_id(self) -> str:
        value = self.data["next_id"]
        self.data["next_id"] = value + 1
        return str(value)

    def save(self) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(self.data, fh, indent=1, sort_keys=True)
        os.replace(tmp, self.path)


def cache_fingerprint(executor_input: pb.ExecutorInput, component: pb.ComponentSpec,
                      container: Dict[str, Any]) -> str:
    """KFP's cache key (driver ``getFingerPrint``): input artifact names, parameter values,
    output artifact and parameter specs, image and command line."""
    key = {
        "inputArtifactNames": {k: [a.name for a in v.artifacts]
                               for k, v in executor_input.inputs.artifacts.items()},
        "inputParameterValues": json_format.MessageToDict(executor_input.inputs)
        .get("parameterValues", {}),
        "outputArtifactsSpec": json_format.MessageToDict(component.output_definitions)
        .get("artifacts", {}),
        "outputParametersSpec": json_format.MessageToDict(component.output_definitions)
        .get("parameters", {}),
        "containerSpec": {"image": container.get("image", ""),
                          "cmdArgs": list(container.get("command", [])) +
                          list(container.get("args", []))},
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


# ---- pod paths ----------------------------------------------------------------------------------

def _path_pattern(pod_path: str) -> "re.Pattern[str]":
    """``pod_path`` as a whole path prefix: not inside a longer name on either side."""
    return re.compile(r"(?<![\w.\-/])" + re.escape(pod_path.rstrip("/")) + r"(?![\w.\-])")


def rewrite_paths(value: str, paths: Mapping[str, str]) -> str:
    """Replace each pod path prefix in ``value`` (also inside embedded JSON) by its local folder."""
    for pod_path in sorted(paths, key=len, reverse=True):
        value = _path_pattern(pod_path).sub(paths[pod_path].replace("\\", "\\\\"), value)
    return value


# ---- the walk -----------------------------------------------------------------------------------

class Rehearser:
    """Executes a package's tasks one by one as KFP v2 would (see the module docstring)."""

    def __init__(self, package: str, *, state_dir: str, mounts: Mapping[str, str],
                 dockerfile: Optional[str] = None, workdir: Optional[str] = None,
                 pipeline_root: Optional[str] = None,
                 secrets: Optional[Mapping[str, Mapping[str, str]]] = None,
                 env: Optional[Mapping[str, str]] = None, enable_cache: bool = True,
                 run_id: Optional[str] = None, python: str = sys.executable,
                 echo=None):
        self.spec, self.platform = load_package(package)
        self.state_dir = os.path.abspath(state_dir)
        self.image_env, image_workdir = dockerfile_facts(dockerfile) if dockerfile else ({}, None)
        self.workdir = os.path.abspath(workdir) if workdir else None
        self.paths = self._pod_paths(mounts, image_workdir)
        self.pipeline_root = pipeline_root or self.spec.default_pipeline_root
        if not self.pipeline_root:
            raise RehearsalError("the package has no defaultPipelineRoot; pass a pipeline root")
        self.secrets = {k: dict(v) for k, v in (secrets or {}).items()}
        self.env = dict(env or {})
        self.enable_cache = enable_cache
        self.run_id = run_id or time.strftime("rehearsal-%Y%m%d-%H%M%S")
        self.python = python
        self.echo = echo or (lambda _msg: None)
        self.store = Store(os.path.join(self.state_dir, "metadata.json"))
        self.image_workdir = image_workdir

    def _pod_paths(self, mounts: Mapping[str, str], image_workdir: Optional[str]) -> Dict[str, str]:
        """Pod path -> local folder, for every PVC mount of the platform spec and the WORKDIR.
        ``mounts`` is keyed by claim name or by mount path."""
        paths: Dict[str, str] = {}
        for label, conf in self.platform.items():
            for mount in conf.get("pvcMount", []):
                claim, pod_path = mount.get("constant"), mount["mountPath"]
                local = mounts.get(claim) or mounts.get(pod_path)
                if not local:
                    raise RehearsalError(
                        f"executor {label} mounts claim {claim!r} at {pod_path}; map it to a "
                        f"local folder (--mount {claim}=/local/dir)")
                paths[pod_path] = os.path.abspath(local)
        if image_workdir and self.workdir:
            paths[image_workdir] = self.workdir
        return paths

    @property
    def run_root(self) -> str:
        """KFP's run root: ``<pipeline root>/<pipeline name>/<run id>``."""
        return "/".join([self.pipeline_root.rstrip("/"), self.spec.pipeline_info.name, self.run_id])

    def run(self) -> Rehearsal:
        """Run every task in order; raise RehearsalError at the first failure."""
        self._check_supported()
        result = Rehearsal(self.run_id, self.run_root)
        for name in task_order(self.spec):
            result.tasks[name] = self._run_task(name, result.tasks)
        return result

    def _check_supported(self) -> None:
        for name, task in self.spec.root.dag.tasks.items():
            component = self.spec.components[task.component_ref.name]
            if component.WhichOneof("implementation") != "executor_label":
                raise RehearsalError(f"task {name}: nested DAGs are not rehearsed")
            if task.HasField("trigger_policy") or task.WhichOneof("iterator"):
                raise RehearsalError(f"task {name}: conditions and loops are not rehearsed")
            executor = self._executor(component)
            if "container" not in executor:
                raise RehearsalError(f"task {name}: only container executors can be rehearsed "
                                     f"(found {sorted(executor)})")

    def _executor(self, component: pb.ComponentSpec) -> Dict[str, Any]:
        executors = json_format.MessageToDict(self.spec.deployment_spec)["executors"]
        return executors[component.executor_label]

    # ---- one task ----
    def _executor_input(self, name: str, done: Mapping[str, TaskResult]) -> pb.ExecutorInput:
        task = self.spec.root.dag.tasks[name]
        component = self.spec.components[task.component_ref.name]
        executor_input = pb.ExecutorInput()
        for key, param in task.inputs.parameters.items():
            if param.WhichOneof("kind") != "runtime_value":
                raise RehearsalError(f"task {name}: parameter {key} is not a constant")
            executor_input.inputs.parameter_values[key].CopyFrom(param.runtime_value.constant)
        for key, art in task.inputs.artifacts.items():
            if art.WhichOneof("kind") != "task_output_artifact":
                raise RehearsalError(f"task {name}: artifact {key} is not a task output")
            source = art.task_output_artifact
            produced = done[source.producer_task].output(source.output_artifact_key)
            runtime = executor_input.inputs.artifacts[key].artifacts.add()
            runtime.name = produced["name"]
            runtime.uri = produced["uri"]
            runtime.metadata.update(produced.get("metadata", {}))
            # The open-source driver reads input artifacts back from ML Metadata with an empty
            # schema (metadata client: Schema: "" // TODO(Bobgy)); see tensorflow/tfx#7768.
            runtime.type.instance_schema = ""
        for key, definition in component.output_definitions.artifacts.items():
            runtime = executor_input.outputs.artifacts[key].artifacts.add()
            runtime.uri = "/".join([self.run_root, name, key])
            runtime.type.CopyFrom(definition.artifact_type)
            if definition.HasField("metadata"):
                runtime.metadata.CopyFrom(definition.metadata)
        for key in component.output_definitions.parameters:
            executor_input.outputs.parameters[key].output_file = f"/tmp/kfp/outputs/{key}"
        executor_input.outputs.output_file = POD_OUTPUT_FILE
        return executor_input

    def _localise(self, executor_input: pb.ExecutorInput, task_dir: str) -> pb.ExecutorInput:
        """The ExecutorInput with pod paths mapped to local folders (see module docstring)."""
        local = copy.deepcopy(executor_input)
        for value in local.inputs.parameter_values.values():
            if value.WhichOneof("kind") == "string_value":
                value.string_value = rewrite_paths(value.string_value, self.paths)
        tmp = {"/tmp": os.path.join(task_dir, "tmp")}
        local.outputs.output_file = rewrite_paths(local.outputs.output_file, tmp)
        for value in local.outputs.parameters.values():
            value.output_file = rewrite_paths(value.output_file, tmp)
        return local

    def _command(self, name: str, container: Dict[str, Any],
                 executor_input: pb.ExecutorInput) -> List[str]:
        """``command + args`` with ``{{$}}`` and the other placeholders substituted by kfp's own
        resolver (``kfp.local.placeholder_utils``)."""
        argv = placeholder_utils.replace_placeholders(
            list(container.get("command", [])) + list(container.get("args", [])),
            json_format.MessageToDict(executor_input), pipeline_resource_name=self.run_id,
            task_resource_name=name, pipeline_root=self.run_root)
        unresolved = [word for word in argv if word.startswith("{{$")]
        if unresolved:
            raise RehearsalError(f"task {name}: unresolved placeholder in {unresolved[0][:120]!r}")
        return argv

    def _environment(self, label: str, container: Dict[str, Any]) -> Dict[str, str]:
        """The pod's environment: image ENV, the container's env, secrets as env, overrides;
        PATH starts with this Python's folder so the package's ``python`` is this one."""
        env = {"PATH": os.path.dirname(self.python) + os.pathsep + os.environ.get("PATH", ""),
               "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}
        env.update({k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_")})
        env.update(self.image_env)
        env.update({item["name"]: item.get("value", "") for item in container.get("env", [])})
        for secret in self.platform.get(label, {}).get("secretAsEnv", []):
            name = secret["secretName"]
            for pair in secret.get("keyToEnv", []):
                value = self.secrets.get(name, {}).get(pair["secretKey"])
                if value is None:
                    raise RehearsalError(f"executor {label} takes {pair['envVar']} from secret "
                                         f"{name}/{pair['secretKey']}; pass --secret "
                                         f"{name}.{pair['secretKey']}=VALUE")
                env[pair["envVar"]] = value
        env.update(self.env)
        return env

    def _run_task(self, name: str, done: Mapping[str, TaskResult]) -> TaskResult:
        task = self.spec.root.dag.tasks[name]
        component = self.spec.components[task.component_ref.name]
        label = component.executor_label
        container = self._executor(component)["container"]
        executor_input = self._executor_input(name, done)
        fingerprint = cache_fingerprint(executor_input, component, container)
        task_dir = os.path.join(self.state_dir, "runs", self.run_id, name)
        os.makedirs(task_dir, exist_ok=True)
        log_path = os.path.join(task_dir, "log.txt")
        as_dict = json_format.MessageToDict(executor_input)
        cached = self.store.data["cache"].get(fingerprint)
        if self.enable_cache and task.caching_options.enable_cache and cached:
            self.echo(f"{name}: cached (execution of run {cached['run_id']})")
            return TaskResult(name, "cached", fingerprint, as_dict, cached["executor_output"],
                              log_path)
        if "lifecycle" in container:
            self.echo(f"{name}: lifecycle hooks {sorted(container['lifecycle'])} not run "
                      "(the open-source KFP backend never runs them)")
        local_input = self._localise(executor_input, task_dir)
        argv = self._command(name, container, local_input)
        env = self._environment(label, container)
        cwd = self.paths.get(self.image_workdir or "", task_dir)
        self.echo(f"{name}: running {' '.join(argv[:3])} ...")
        started = time.time()
        with open(log_path, "wb") as log:
            code = subprocess.call(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        seconds = time.time() - started
        log_text = _tail(log_path)
        if code != 0:
            raise RehearsalError(f"task {name} failed with exit code {code} after {seconds:.0f}s "
                                 f"(log: {log_path})", task=name, log=log_text)
        executor_output = self._collect_outputs(name, executor_input, local_input)
        self.store.data["cache"][fingerprint] = {"run_id": self.run_id, "task": name,
                                                 "executor_output": executor_output}
        self.store.save()
        self.echo(f"{name}: done in {seconds:.0f}s")
        return TaskResult(name, "ran", fingerprint, as_dict, executor_output, log_path, seconds)

    def _collect_outputs(self, name: str, executor_input: pb.ExecutorInput,
                         local_input: pb.ExecutorInput) -> Dict[str, Any]:
        """What the launcher records in ML Metadata: each output artifact at the URI the driver
        chose, with the metadata the executor returned in ``executor_output.json`` merged in."""
        output = pb.ExecutorOutput()
        path = local_input.outputs.output_file
        if os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                json_format.Parse(fh.read(), output, ignore_unknown_fields=True)
        recorded: Dict[str, Any] = {"artifacts": {}}
        for key, arts in executor_input.outputs.artifacts.items():
            runtime = pb.RuntimeArtifact()
            runtime.CopyFrom(arts.artifacts[0])
            returned = output.artifacts.get(key)
            if returned is not None and returned.artifacts:
                metadata = struct_pb2.Struct()
                metadata.update(json_format.MessageToDict(runtime.metadata))
                metadata.update(json_format.MessageToDict(returned.artifacts[0].metadata))
                runtime.metadata.CopyFrom(metadata)
            runtime.name = self.store.new_id()
            recorded["artifacts"][key] = {"artifacts": [json_format.MessageToDict(runtime)]}
        recorded["parameterValues"] = json_format.MessageToDict(output).get("parameterValues", {})
        return recorded


def _tail(path: str, lines: int = LOG_TAIL_LINES) -> str:
    with open(path, "rb") as fh:
        text = fh.read().decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


def parse_assignments(values, what: str) -> Dict[str, str]:
    """``["a=b", ...]`` -> {"a": "b"}; a clear error naming ``what`` otherwise."""
    out = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{what} {item!r}: expected KEY=VALUE")
        out[key] = value
    return out


def parse_secrets(values) -> Dict[str, Dict[str, str]]:
    """``["secret.key=value", ...]`` -> {"secret": {"key": "value"}}."""
    out: Dict[str, Dict[str, str]] = {}
    for dotted, value in parse_assignments(values, "--secret").items():
        name, sep, key = dotted.partition(".")
        if not sep or not key:
            raise ValueError(f"--secret {dotted}=...: expected SECRET.KEY=VALUE")
        out.setdefault(name, {})[key] = value
    return out
