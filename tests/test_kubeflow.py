"""``lensflow compile --target kubeflow`` and ``lensflow submit``, offline.

The compiled package is checked the ways KFP itself would read it (strict proto parsing, kfp's
component loader); submission goes through the real ``kfp.Client`` to a local stand-in of the
KFP REST API (``tests/kfp_standin.py``) that records what the client sent. No cluster is used.
"""
import json
import re
import sys
from types import SimpleNamespace

import pytest
import yaml
from click.testing import CliRunner
from google.protobuf import json_format
from kfp.kubernetes import kubernetes_executor_config_pb2 as k8s_pb
from kfp.pipeline_spec import pipeline_spec_pb2

from lensflow.pipeline.config import REPO_ROOT, ConfigError, KubeflowConfig, load_config
from lensflow.pipeline.pipeline import PREPROCESSING_FN, RUN_FN, beam_pipeline_args
from tests.kfp_standin import EXPERIMENT_ID, RUN_ID, serve_standin

IMAGE = "registry.example.com/lensflow:test"
ROOT = "gs://lensflow-test/kfp"
DATA = "/mnt/data/shoes"
COMPONENTS = {"ImageExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator",
              "DriftCheck", "DataGate", "Transform", "Trainer", "ServingBaseline",
              "LensflowEvaluator",
              "ServingCheck", "LensflowPusher", "RunReport"}
# lensflow's launcher of TFX's kubeflow_v2_run_executor (pipeline/runners/kfp_entrypoint.py).
ENTRYPOINT = ["python", "-m", "lensflow.pipeline.runners.kfp_entrypoint"]
GPU_NODES = {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}
RESOURCES = {"default": {"cpu": "1", "memory": "2Gi", "cpu_request": "500m",
                         "memory_request": "1Gi"},
             "Trainer": {"cpu": 4, "memory": "8Gi", "gpu": 1, "node_selector": GPU_NODES},
             "Transform": {"memory": "6G"}}
CONFIG = {"kubeflow": {"data_path": DATA, "resources": RESOURCES},
          "train": {"resume_dir": "/mnt/models/resume"},
          "beam": {"direct_running_mode": "multi_processing", "direct_num_workers": 2}}


def invoke(command, args):
    result = CliRunner().invoke(command, args)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """The pipeline compiled once through the CLI, as .yaml and as .json."""
    from lensflow.pipeline.cli_kubeflow import compile_command

    out = tmp_path_factory.mktemp("kfp")
    config_file = out / "lensflow.yaml"
    config_file.write_text(yaml.safe_dump(CONFIG))
    common = ["--config", str(config_file), "--image", IMAGE, "--pipeline-root", ROOT]
    outputs = {}
    for name in ("pipeline.yaml", "pipeline.json"):
        result = invoke(compile_command, common + ["--out", str(out / name)])
        assert result.exit_code == 0, result.output
        outputs[name] = result.output
    text = (out / "pipeline.yaml").read_text()
    docs = list(yaml.safe_load_all(text))
    return SimpleNamespace(
        dir=out, config_file=config_file, yaml_path=out / "pipeline.yaml", text=text,
        spec=docs[0], platform=docs[1] if len(docs) > 1 else {}, documents=len(docs),
        job=json.loads((out / "pipeline.json").read_text()), outputs=outputs,
        cfg=load_config(str(config_file), {"kubeflow.image": IMAGE,
                                           "kubeflow.pipeline_root": ROOT}))


def constant(spec, task, name):
    """A task's constant input parameter (pipeline spec schema 2.1)."""
    parameter = spec["root"]["dag"]["tasks"][task]["inputs"]["parameters"][name]
    return parameter["runtimeValue"]["constant"]


def test_yaml_is_a_strict_pipeline_spec_with_a_kubernetes_platform_spec(compiled):
    spec = json_format.ParseDict(compiled.spec, pipeline_spec_pb2.PipelineSpec())
    assert spec.schema_version == "2.1.0"
    assert compiled.documents == 2
    platform = json_format.ParseDict(compiled.platform, pipeline_spec_pb2.PlatformSpec())
    executors = json_format.MessageToDict(
        platform.platforms["kubernetes"].deployment_spec)["executors"]
    for config in executors.values():
        json_format.ParseDict(config, k8s_pb.KubernetesExecutorConfig())


def test_yaml_loads_with_kfps_component_loader(compiled):
    from kfp.components import load_component_from_file

    component = load_component_from_file(str(compiled.yaml_path))
    assert component.name == compiled.cfg.pipeline_name
    assert set(component.pipeline_spec.root.dag.tasks) == COMPONENTS


def test_every_component_runs_the_image_with_the_tfx_entrypoint(compiled):
    from tfx.utils import import_utils

    from lensflow.pipeline.runners import kubeflow

    pipeline = kubeflow.build_pipeline(compiled.cfg)
    expected = {c.id: c.executor_spec.executor_class for c in pipeline.components}
    assert set(compiled.spec["components"]) == set(expected) == COMPONENTS
    executors = compiled.spec["deploymentSpec"]["executors"]
    for name, component in compiled.spec["components"].items():
        container = executors[component["executorLabel"]]["container"]
        assert container["image"] == IMAGE, name
        assert container["command"] == ENTRYPOINT, name
        args = container["args"]
        class_path = args[args.index("--executor_class_path") + 1]
        cls = expected[name]
        assert class_path == f"{cls.__module__}.{cls.__name__}"
        assert import_utils.import_class_by_path(class_path) is cls
        beam = beam_pipeline_args(compiled.cfg, compiled.cfg.kubeflow.workdir)
        assert args[-len(beam):] == beam
    assert "--direct_num_workers=2" in beam
    assert f"--requirements_file={compiled.cfg.kubeflow.workdir}/requirements.lock" in beam
    assert "--requirements_cache=skip" in beam and not [a for a in beam if "setup_file" in a]


def test_no_resolver_executor_and_the_guard_rejects_one(compiled):
    from tfx import v1 as tfx
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner as kv2

    from lensflow.pipeline.runners import kubeflow

    assert kubeflow.resolver_executors(compiled.spec) == []
    assert not re.search(r"\bresolver\b", compiled.text)
    resolver = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model")
    job = kv2.KubeflowV2DagRunner(kv2.KubeflowV2DagRunnerConfig(default_image=IMAGE)).run(
        tfx.dsl.Pipeline(pipeline_name="with-resolver", pipeline_root=ROOT,
                         components=[resolver]), write_out=False)
    assert kubeflow.resolver_executors(job["pipelineSpec"])
    with pytest.raises(kubeflow.KubeflowSpecError, match="resolver executors"):
        kubeflow.check_runnable(job["pipelineSpec"])


def test_transform_and_trainer_reference_module_paths_not_files(compiled):
    parameters = {task: compiled.spec["root"]["dag"]["tasks"][task]["inputs"]["parameters"]
                  for task in ("Transform", "Trainer")}
    assert constant(compiled.spec, "Transform", "preprocessing_fn") == PREPROCESSING_FN
    assert constant(compiled.spec, "Trainer", "run_fn") == RUN_FN
    for task, params in parameters.items():
        assert not {"module_file", "module_path"} & set(params), task


def test_pipeline_root_is_the_configured_one(compiled):
    assert compiled.spec["defaultPipelineRoot"] == ROOT
    assert compiled.job["runtimeConfig"]["gcsOutputDirectory"] == ROOT
    json_format.ParseDict(compiled.job, pipeline_spec_pb2.PipelineJob())
    assert compiled.job["pipelineSpec"]["root"] == compiled.spec["root"]


def test_paths_are_the_pods_paths_not_this_machines(compiled):
    assert str(REPO_ROOT) not in compiled.text
    assert str(load_config().home_dir) not in compiled.text
    schema_file = constant(compiled.spec, "ImportSchemaGen", "schema_file")
    assert schema_file == "/lensflow/schemas/schema.pbtxt"
    assert constant(compiled.spec, "ImageExampleGen", "input_base") == DATA
    destination = json.loads(constant(compiled.spec, "LensflowPusher", "push_destination"))
    assert destination["filesystem"]["base_directory"] == "/mnt/models/lensflow"
    from lensflow.components.image_example_gen.executor import _custom_config

    custom = _custom_config({"custom_config": constant(compiled.spec, "ImageExampleGen",
                                                       "custom_config")})
    data = json.loads(custom["lensflow_config"])["data"]
    assert data["path"] == DATA and data["manifest"] is None


def test_claims_are_mounted_only_on_the_tasks_that_use_their_paths(compiled):
    executors = compiled.platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    mounts = {label: [(m["constant"], m["mountPath"]) for m in conf["pvcMount"]]
              for label, conf in executors.items() if "pvcMount" in conf}
    assert mounts == {"ImageExampleGen_executor": [("lensflow-data", "/mnt/data")],
                      "ServingBaseline_executor": [("lensflow-models", "/mnt/models")],
                      "DriftCheck_executor": [("lensflow-models", "/mnt/models")],
                      "LensflowPusher_executor": [("lensflow-models", "/mnt/models")],
                      "Trainer_executor": [("lensflow-models", "/mnt/models")]}
    assert "lensflow-data:/mnt/data" in compiled.outputs["pipeline.yaml"]
    assert "no Kubernetes volume mounts" in compiled.outputs["pipeline.json"]


def test_data_and_serving_dir_in_a_bucket_compile_without_volumes_or_reading_them(tmp_path):
    """URIs are the pods' paths as they are: no claim is mounted for them, and compiling
    never reads the bucket (no S3 endpoint is reachable here)."""
    from lensflow.pipeline.runners.kubeflow import build_pipeline, platform_spec

    cfg = load_config(None, {"kubeflow.image": IMAGE, "kubeflow.pipeline_root": ROOT,
                             "kubeflow.data_path": "s3://photos/shoes",
                             "kubeflow.serving_dir": "s3://models/serving",
                             "kubeflow.volumes": ["lensflow-models:/mnt/models"],
                             "train.resume_dir": "/mnt/models/resume"})
    pipeline = build_pipeline(cfg)
    by_id = {component.id: component for component in pipeline.components}
    assert by_id["ImageExampleGen"].exec_properties["input_base"] == "s3://photos/shoes"
    destination = json.loads(by_id["LensflowPusher"].exec_properties["push_destination"])
    assert destination["filesystem"]["base_directory"] == "s3://models/serving/lensflow"
    assert by_id["ServingBaseline"].exec_properties["serving_dir"] == "s3://models/serving"
    spec = {"components": {task: {"executorLabel": f"{task}_executor"} for task in by_id}}
    executors = platform_spec(cfg, spec)["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert {label for label, conf in executors.items() if "pvcMount" in conf} == {
        "Trainer_executor"}
    assert all(conf.get("secretAsEnv") for conf in executors.values())  # S3 keys in every pod


def test_tasks_that_read_outside_their_inputs_are_not_cached(compiled):
    caching = {name: task.get("cachingOptions", {}).get("enableCache", False)
               for name, task in compiled.spec["root"]["dag"]["tasks"].items()}
    assert {name for name, on in caching.items() if not on} == {"ImageExampleGen",
                                                                "ServingBaseline", "DriftCheck"}


@pytest.mark.parametrize("key, value, message", [
    ("kubeflow.volumes", ["Models:/mnt/models"], "claim name"),
    ("kubeflow.volumes", ["a:/mnt/x", "b:/mnt/x"], "share a mount path"),
    ("kubeflow.data_path", "images", "absolute path"),
    ("kubeflow.workdir", "s3://bucket/lensflow", "absolute path"),
    ("kubeflow.serving_dir", "models", "absolute path"),
    ("kubeflow.pipeline_root", "/local/root", "object store URI"),
    ("beam.direct_num_workers", 0, "at least 1"),
    ("kubeflow.resources", {"Trainer": {"memory": "8GB"}}, r"kubeflow\.resources\.Trainer\.memory"),
    ("kubeflow.resources", {"Trainer": {"cpus": 2}}, r"kubeflow\.resources\.Trainer\.cpus"),
    ("kubeflow.resources", {"Transform": {"gpu": 1}}, "only Trainer and Tuner train"),
    ("kubeflow.resources", {"Trainer": {"gpu": 0}}, "whole number of GPUs"),
    ("kubeflow.resources", {"Trainer": {"gpu_type": "nvidia.com/gpu"}}, "beside gpu"),
    ("kubeflow.resources", {"default": {"cpu": "1"}, "Trainer": {"cpu_request": "2"}},
     r"kubeflow\.resources\.Trainer\.cpu_request='2' exceeds its limit"),
    ("kubeflow.resources", {"Trainer": {"node_selector": ["gpu"]}}, "node_selector"),
    ("kubeflow.resources", ["Trainer"], r"kubeflow\.resources=\['Trainer'\]: .*dictionary"),
    ("kubeflow.resources", {"Trainer": 2}, r"kubeflow\.resources\.Trainer=2: .*dictionary"),
])
def test_config_rejects_values_the_pods_cannot_use(key, value, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, {key: value})


def test_report_outputs_carry_the_types_the_kfp_ui_renders_and_tfx_can_import(compiled):
    """The KFP UI shows an artifact by its type name (the schema title); TFX's entrypoint
    imports the class by the same title, given as instanceSchema or as schemaTitle."""
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils
    from tfx.utils import import_utils

    outputs = compiled.spec["components"]["RunReport"]["outputDefinitions"]["artifacts"]
    titles = {key: yaml.safe_load(output["artifactType"]["instanceSchema"])["title"]
              for key, output in outputs.items()}
    assert titles == {"report": "system.HTML", "summary": "system.Markdown",
                      "metrics": "system.Metrics"}
    for key, title in titles.items():
        for schema in (pipeline_spec_pb2.ArtifactTypeSchema(
                           instance_schema=outputs[key]["artifactType"]["instanceSchema"]),
                       pipeline_spec_pb2.ArtifactTypeSchema(schema_title=title)):
            path = kubeflow_v2_entrypoint_utils._retrieve_class_path(schema)
            assert import_utils.import_class_by_path(path).TYPE_NAME == title


def test_resources_reach_each_container_and_node_selectors_the_platform_spec(compiled):
    """Strictly parsed: limits and requests in cores and GB (the KFP driver appends ``G``), the
    Trainer's GPU as its Kubernetes resource name; the default entry applies to every task."""
    executors = compiled.spec["deploymentSpec"]["executors"]
    resources = {label[:-len("_executor")]: json_format.ParseDict(
        executor["container"]["resources"],
        pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec())
        for label, executor in executors.items()}
    assert set(resources) == COMPONENTS
    trainer, transform = resources.pop("Trainer"), resources.pop("Transform")
    assert (trainer.cpu_limit, trainer.memory_limit) == (4.0, 8 * 2 ** 30 / 1e9)
    assert (trainer.accelerator.type, trainer.accelerator.count) == ("nvidia.com/gpu", 1)
    assert (trainer.cpu_request, trainer.memory_request) == (0.5, 2 ** 30 / 1e9)
    assert (transform.memory_limit, transform.cpu_limit) == (6.0, 1.0)
    assert not transform.HasField("accelerator")
    for name, spec in resources.items():
        assert (spec.cpu_limit, spec.memory_limit, spec.cpu_request, spec.memory_request) == \
            (1.0, 2 ** 31 / 1e9, 0.5, 2 ** 30 / 1e9), name
        assert not spec.HasField("accelerator"), name
    platform = json_format.ParseDict(compiled.platform, pipeline_spec_pb2.PlatformSpec())
    configs = json_format.MessageToDict(platform.platforms["kubernetes"].deployment_spec)[
        "executors"]
    selectors = {}
    for label in configs:
        config = json_format.ParseDict(configs[label], k8s_pb.KubernetesExecutorConfig())
        if config.HasField("node_selector"):
            selectors[label] = dict(config.node_selector.labels)
    assert selectors == {"Trainer_executor": GPU_NODES}


def test_resources_of_an_unknown_task_name_the_key_and_the_tasks(compiled):
    from lensflow.pipeline.runners import kubeflow

    cfg = compiled.cfg.replace(**{"kubeflow.resources": {"Trainr": {"cpu": 2}}})
    with pytest.raises(ConfigError, match=r"kubeflow\.resources\.Trainr: no such task.*Trainer"):
        kubeflow.build_pipeline(cfg)


def test_no_resources_leave_the_containers_unconstrained(compiled):
    from lensflow.pipeline.runners import kubeflow

    assert kubeflow.resource_spec(compiled.cfg.replace(
        **{"kubeflow.resources": {}}).kubeflow.resources_for("Trainer")) is None


def test_compile_rejects_an_unknown_package_extension(tmp_path):
    from lensflow.pipeline.cli_kubeflow import compile_command

    result = invoke(compile_command, ["--out", str(tmp_path / "pipeline.txt")])
    assert result.exit_code == 2 and ".yaml" in result.output
    assert not (tmp_path / "pipeline.txt").exists()


def dockerfile_instructions():
    lines = (REPO_ROOT / "kubeflow" / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
    return [line.split(None, 1) for line in lines if line.strip() and not line.startswith("#")]


def test_dockerfile_matches_the_lock_and_the_config():
    from tfx import version

    instructions = dockerfile_instructions()
    assert ["FROM", f"tensorflow/tfx:{version.__version__}"] in instructions
    assert f"tfx=={version.__version__}" in (REPO_ROOT / "requirements.lock").read_text().split()
    assert ["WORKDIR", KubeflowConfig().workdir] in instructions
    runs = " ".join(arg for op, arg in instructions if op == "RUN")
    assert "pip install --no-cache-dir --no-deps -r requirements.lock" in runs
    assert "pip install --no-cache-dir --no-deps ." in runs
    env = " ".join(arg for op, arg in instructions if op == "ENV")
    assert "TF_USE_LEGACY_KERAS=1" in env.split()
    copied = [src for op, arg in instructions if op == "COPY" and not arg.startswith("--from=")
              for src in arg.split()[:-1]]
    assert {"pipeline", "components", "schemas", "requirements.lock", "setup.py"} <= set(copied)
    for source in copied:
        assert (REPO_ROOT / source).exists(), source


def test_dockerfile_is_a_beam_sdk_container_of_the_pinned_beam():
    """DOCKER / EXTERNAL Beam workers and Dataflow start lensflow's image through Beam's boot
    launcher, which must come from the apache-beam the image installs."""
    import apache_beam

    instructions = dockerfile_instructions()
    python = f"python{sys.version_info.major}.{sys.version_info.minor}"
    sdk = f"apache/beam_{python}_sdk:{apache_beam.__version__}"
    assert ["COPY", f"--from={sdk} /opt/apache/beam /opt/apache/beam"] in instructions
    assert ["ENTRYPOINT", '["/opt/apache/beam/boot"]'] in instructions
    assert f"apache-beam=={apache_beam.__version__}" in (
        REPO_ROOT / "requirements.lock").read_text().split()


def submit(args, **standin):
    from lensflow.pipeline.cli_kubeflow import submit_command

    with serve_standin() as (host, state):
        for key, value in standin.items():
            setattr(state, key, value)
        result = invoke(submit_command, ["--host", host] + args)
    return result, state


@pytest.mark.timeout(120)
def test_submit_sends_the_package_and_pipeline_root_to_kfp(compiled):
    args = ["--package", str(compiled.yaml_path), "--experiment", "lensflow-ci",
            "--run-name", "nightly", "--pipeline-root", ROOT, "--config", str(compiled.config_file)]
    result, state = submit(args)
    assert result.exit_code == 0, result.output
    assert f"submitted run {RUN_ID}" in result.output
    (experiment,) = state.calls("POST", "/experiments")
    assert experiment.body["display_name"] == "lensflow-ci"
    (run,) = state.calls("POST", "/runs")
    assert run.body["experiment_id"] == EXPERIMENT_ID
    assert run.body["display_name"] == "nightly"
    assert run.body["runtime_config"]["pipeline_root"] == ROOT
    sent = run.body["pipeline_spec"]
    assert json_format.ParseDict(sent["pipeline_spec"], pipeline_spec_pb2.PipelineSpec()) == \
        json_format.ParseDict(compiled.spec, pipeline_spec_pb2.PipelineSpec())
    assert json_format.ParseDict(sent["platform_spec"], pipeline_spec_pb2.PlatformSpec()) == \
        json_format.ParseDict(compiled.platform, pipeline_spec_pb2.PlatformSpec())


@pytest.mark.timeout(300)
def test_submit_compiles_a_missing_package_and_can_switch_the_cache_off(tmp_path):
    package = tmp_path / "fresh.yaml"
    result, state = submit(["--package", str(package), "--image", IMAGE,
                            "--pipeline-root", ROOT, "--no-cache"])
    assert result.exit_code == 0, result.output
    assert package.exists() and f"compiled {len(COMPONENTS)} components" in result.output
    (run,) = state.calls("POST", "/runs")
    spec = run.body["pipeline_spec"]["pipeline_spec"]
    executors = spec["deploymentSpec"]["executors"].values()
    assert {executor["container"]["image"] for executor in executors} == {IMAGE}
    tasks = spec["root"]["dag"]["tasks"].values()
    assert not any(task.get("cachingOptions", {}).get("enableCache") for task in tasks)


@pytest.mark.timeout(120)
def test_submit_reports_a_refused_run_in_one_line(compiled):
    result, state = submit(["--package", str(compiled.yaml_path), "--pipeline-root", ROOT],
                           refuse_runs_with=400)
    assert result.exit_code == 1
    assert "answered 400" in result.output and "stand-in refuses this run" in result.output
    assert "Traceback" not in result.output


def test_submit_refuses_the_placeholder_pipeline_root(compiled):
    result, state = submit(["--package", str(compiled.yaml_path)])
    assert result.exit_code == 2 and "placeholder" in result.output
    assert state.requests == []
