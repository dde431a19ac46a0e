"""The Trainer's multi-worker TFJob manifest (``kubeflow/training/``), validated offline.

No cluster and no Training Operator here: the TFJob is checked against the fields of the
operator's ``kubeflow.org/v1`` TFJob CRD (``tfjobs.kubeflow.org``: spec, runPolicy and replica
spec keys, replica types, restart and clean-pod policies, the ``tensorflow`` container and
``tfjob-port`` port the operator looks for), its pod template against Kubernetes' own schema
(``kubernetes-validate``, strict), and the command every replica runs against the Trainer's job
spec loader, with the ``TF_CONFIG`` the operator would set resolving to multi_worker.
"""
import json
import shlex

import pytest
import yaml
from click.testing import CliRunner

import kubernetes_validate
from lensflow.components.trainer import distribution, job
from lensflow.pipeline.config import ConfigError, load_config
from lensflow.pipeline.pipeline import RUN_FN
from lensflow.pipeline.runners import tfjob

INPUTS = {"examples": "s3://bucket/run/Transform/transformed_examples/7",
          "split_names": '["train", "eval"]',
          "transform_graph": "s3://bucket/run/Transform/transform_graph/7",
          "schema": "s3://bucket/run/DataGate/validated_schema/6"}
SPEC_KEYS = {"enableDynamicWorker", "runPolicy", "successPolicy", "tfReplicaSpecs"}
RUN_POLICY_KEYS = {"activeDeadlineSeconds", "backoffLimit", "cleanPodPolicy", "schedulingPolicy",
                   "suspend", "ttlSecondsAfterFinished"}
REPLICA_TYPES = {"Chief", "Master", "PS", "Worker", "Evaluator"}
REPLICA_KEYS = {"replicas", "restartPolicy", "template"}
RESTART_POLICIES = {"Always", "OnFailure", "Never", "ExitCode"}
CLEAN_POD_POLICIES = {"All", "Running", "None"}
K8S_VERSIONS = ["1.27", "1.31"]


def gpu_config():
    return load_config(None, {
        "kubeflow.pipeline_root": "s3://bucket/lensflow", "kubeflow.image": "registry/lensflow:1",
        "kubeflow.resources": {"Trainer": {"cpu": 8, "memory": "32Gi", "gpu": 2,
                                           "node_selector": {"pool": "gpu"}}},
        "train.epochs": 5})


def check_against_crd_fields(tfjob_manifest):
    assert tfjob_manifest["apiVersion"] == "kubeflow.org/v1"
    assert tfjob_manifest["kind"] == "TFJob"
    spec = tfjob_manifest["spec"]
    assert set(spec) <= SPEC_KEYS
    assert set(spec["runPolicy"]) <= RUN_POLICY_KEYS
    assert spec["runPolicy"]["cleanPodPolicy"] in CLEAN_POD_POLICIES
    assert isinstance(spec["runPolicy"]["backoffLimit"], int)
    assert set(spec["tfReplicaSpecs"]) <= REPLICA_TYPES
    for replica in spec["tfReplicaSpecs"].values():
        assert set(replica) <= REPLICA_KEYS
        assert isinstance(replica["replicas"], int) and replica["replicas"] >= 1
        assert replica["restartPolicy"] in RESTART_POLICIES
        containers = {c["name"]: c for c in replica["template"]["spec"]["containers"]}
        assert "tensorflow" in containers, "the operator sets TF_CONFIG in 'tensorflow' only"
        assert {p["name"]: p["containerPort"] for p in containers["tensorflow"]["ports"]} == \
            {"tfjob-port": 2222}


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_the_tfjob_has_the_crd_fields_and_a_valid_pod_template(version):
    manifest = tfjob.manifest(gpu_config(), INPUTS, "s3://bucket/trained/1", workers=3)
    check_against_crd_fields(manifest)
    template = manifest["spec"]["tfReplicaSpecs"]["Worker"]["template"]
    kubernetes_validate.validate({"apiVersion": "v1", "kind": "PodTemplate",
                                  "metadata": {"name": "lensflow-trainer"},
                                  "template": template}, version, strict=True)


def test_every_worker_runs_the_trainer_job_on_the_run_artifacts():
    cfg = gpu_config()
    manifest = tfjob.manifest(cfg, INPUTS, "s3://bucket/trained/1", workers=3)
    worker = manifest["spec"]["tfReplicaSpecs"]["Worker"]
    assert worker["replicas"] == 3
    (container,) = worker["template"]["spec"]["containers"]
    assert container["image"] == "registry/lensflow:1"
    assert container["workingDir"] == cfg.kubeflow.workdir
    assert container["command"][:3] == ["python", "-m", "lensflow.components.trainer.job"]
    spec = job.load_spec(container["command"][3])
    assert {key: spec[key] for key in INPUTS} == INPUTS
    assert spec["model"] == "s3://bucket/trained/1/model"
    assert spec["model_run"] == "s3://bucket/trained/1/model_run"
    trainer_cfg = spec["config"]
    assert trainer_cfg["train"]["epochs"] == 5 and trainer_cfg["train"]["distribution"] == "auto"
    assert trainer_cfg["train"]["resume_dir"] == "s3://bucket/trained/1/resume"
    assert job.RUN_FN == RUN_FN

    operator_tf_config = {distribution.TF_CONFIG: json.dumps({
        "cluster": {"worker": [f"lensflow-trainer-worker-{i}.kubeflow.svc:2222"
                               for i in range(3)]},
        "task": {"type": "worker", "index": 2}})}
    cluster = distribution.cluster_from_env(operator_tf_config)
    assert distribution.resolve(trainer_cfg["train"]["distribution"], cluster, 0) == "multi_worker"


def test_the_workers_get_the_trainer_resources_and_the_object_store_settings():
    cfg = gpu_config()
    manifest = tfjob.manifest(cfg, INPUTS, "s3://bucket/trained/1")
    pod = manifest["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"] == {"cpu": "8", "memory": "32Gi",
                                                "nvidia.com/gpu": "2"}
    assert pod["nodeSelector"] == {"pool": "gpu"}
    env = {e["name"]: e for e in container["env"]}
    assert env["S3_ENDPOINT"]["value"] == f"http://{cfg.kubeflow.s3_endpoint}"
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert env[variable]["valueFrom"]["secretKeyRef"]["name"] == cfg.kubeflow.s3_secret


def test_a_gcs_root_without_resources_renders_a_plain_worker():
    cfg = load_config(None, {"kubeflow.pipeline_root": "gs://bucket/lensflow"})
    manifest = tfjob.manifest(cfg, INPUTS, "gs://bucket/trained/2", workers=1)
    check_against_crd_fields(manifest)
    (container,) = manifest["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]["containers"]
    assert "env" not in container and "resources" not in container


@pytest.mark.parametrize("inputs, base, options, message", [
    ({k: v for k, v in INPUTS.items() if k != "schema"}, "s3://b/t", {}, "lack schema"),
    (INPUTS, "relative/out", {}, "--output-base='relative/out'"),
    (INPUTS, "s3://b/t", {"name": "Lensflow_Trainer"}, "TFJob name 'Lensflow_Trainer'"),
    (INPUTS, "s3://b/t", {"workers": 0}, "workers=0"),
])
def test_bad_tfjob_settings_are_refused_naming_them(inputs, base, options, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        tfjob.manifest(load_config(), inputs, base, **options)


def test_the_command_prints_an_appliable_manifest(tmp_path):
    inputs = tmp_path / "inputs.json"
    inputs.write_text(json.dumps(INPUTS))
    args = shlex.split(f"--inputs {inputs} --output-base s3://bucket/trained/3 --workers 2 "
                       "--set kubeflow.pipeline_root=s3://bucket/lensflow --set train.epochs=4")
    result = CliRunner().invoke(tfjob.main, args)
    assert result.exit_code == 0, result.output
    manifest = yaml.safe_load(result.output)
    check_against_crd_fields(manifest)
    (container,) = manifest["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]["containers"]
    assert job.load_spec(container["command"][3])["config"]["train"]["epochs"] == 4
    refused = CliRunner().invoke(tfjob.main, args + ["--set", "train.distribution=tpu"])
    assert refused.exit_code == 2 and "train.distribution='tpu'" in refused.output


def test_a_job_spec_without_its_inputs_is_refused_naming_them():
    with pytest.raises(job.JobSpecError, match="lacks transform_graph, model"):
        job.load_spec(json.dumps({**INPUTS, "transform_graph": "", "model_run": "s3://b/r",
                                  "config": "{}"}))
    with pytest.raises(ConfigError, match="train.epochs"):
        job.load_spec(json.dumps({**INPUTS, "model": "s3://b/m", "model_run": "s3://b/r",
                                  "config": {"train": {"epochs": "many"}}}))
