"""The Kubernetes manifests in ``kubeflow/``: valid offline, built by kustomize, and in step
with the pipeline's config (claim names, mount paths, model name)."""
import posixpath
import shutil
import subprocess

import pytest
import yaml
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

import kubernetes_validate
from lensflow.pipeline.config import REPO_ROOT, LensflowConfig, parse_volume
from lensflow.serving import tf_serving_config

KUBEFLOW = REPO_ROOT / "kubeflow"
KUSTOMIZATIONS = [KUBEFLOW / "serving", KUBEFLOW / "data"]
K8S_VERSIONS = ["1.27", "1.31"]


def resources(folder):
    """The manifests a kustomization lists, loaded."""
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    return {name: yaml.safe_load((folder / name).read_text())
            for name in kustomization["resources"]}


def kustomize(folder):
    """``kubectl kustomize`` output as a list of objects (skips when kubectl is absent)."""
    kubectl = shutil.which("kubectl")
    if not kubectl:
        pytest.skip("kubectl is not on PATH: kustomize build not checked")
    out = subprocess.run([kubectl, "kustomize", str(folder)], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def by_kind(objects, kind):
    return {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == kind}


def models_config() -> model_server_config_pb2.ModelServerConfig:
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse((KUBEFLOW / "serving" / "models.config").read_text(), config)
    return config


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("folder", KUSTOMIZATIONS, ids=lambda f: f.name)
def test_every_manifest_is_valid_kubernetes(folder, version):
    for name, manifest in resources(folder).items():
        kubernetes_validate.validate(manifest, version, strict=True)


def test_models_config_serves_the_push_destination():
    cfg = LensflowConfig()
    (entry,) = models_config().model_config_list.config
    assert entry.name == cfg.push.model_name
    assert entry.base_path == posixpath.join(cfg.kubeflow.serving_dir, cfg.push.model_name)
    assert entry.model_platform == "tensorflow"
    assert entry.model_version_policy.WhichOneof("policy_choice") in ("latest", "specific")


def test_models_config_labels_stable_and_canary_and_loads_exactly_those():
    (entry,) = models_config().model_config_list.config
    assert set(entry.version_labels) == {"stable", "canary"}
    assert sorted(entry.model_version_policy.specific.versions) == \
        sorted(set(entry.version_labels.values()))


def test_batching_and_monitoring_files_parse_as_tf_serving_messages():
    batching = tf_serving_config.parse(str(KUBEFLOW / "serving" / "batching.config"),
                                       tf_serving_config.BatchingParameters)
    assert batching.max_batch_size.value >= 1 and batching.num_batch_threads.value >= 1
    assert 0 < batching.batch_timeout_micros.value <= 100_000
    assert batching.max_enqueued_batches.value >= 1, "a bounded queue refuses overload"
    monitoring = tf_serving_config.parse(str(KUBEFLOW / "serving" / "monitoring.config"),
                                         tf_serving_config.MonitoringConfig)
    assert monitoring.prometheus_config.enable is True
    assert monitoring.prometheus_config.path == "/monitoring/prometheus/metrics"
    with pytest.raises(text_format.ParseError):
        text_format.Parse("max_batch_sise { value: 1 }", tf_serving_config.BatchingParameters())


def test_labels_command_moves_the_cluster_config_without_local_versions(tmp_path):
    from click.testing import CliRunner

    from lensflow.serving.cli import serve

    path = tmp_path / "models.config"
    path.write_text((KUBEFLOW / "serving" / "models.config").read_text())
    result = CliRunner().invoke(serve, ["labels", "--file", str(path), "--set", "canary=1733150000"])
    assert result.exit_code == 0, result.output
    assert "versions not checked" in result.output
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse(path.read_text(), config)
    (entry,) = config.model_config_list.config
    assert entry.version_labels["canary"] == 1733150000
    assert path.read_text().startswith("# TF Serving model config"), "comments are kept"


def test_serving_deployment_reads_the_claim_the_pipeline_pushes_to():
    cfg = LensflowConfig()
    claims = dict(parse_volume(v) for v in cfg.kubeflow.volumes)
    manifests = resources(KUBEFLOW / "serving")
    deployment = manifests["tf-serving-deployment.yaml"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "tensorflow/serving:2.16.1"
    assert container["args"] == ["--model_config_file=/models/models.config",
                                 "--model_config_file_poll_wait_seconds=60",
                                 "--allow_version_labels_for_unavailable_models=true",
                                 "--enable_batching=true",
                                 "--batching_parameters_file=/models/batching.config",
                                 "--monitoring_config_file=/models/monitoring.config"]
    assert {p["containerPort"] for p in container["ports"]} == {8500, 8501}
    status_path = f"/v1/models/{cfg.push.model_name}"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"] == {"path": status_path, "port": "http"}, probe
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] == "/monitoring/prometheus/metrics"
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    models_claim = volumes[mounts[cfg.kubeflow.serving_dir]]["persistentVolumeClaim"]["claimName"]
    assert claims[models_claim] == cfg.kubeflow.serving_dir
    assert manifests["models-pvc.yaml"]["metadata"]["name"] == models_claim
    assert "ReadWriteMany" in manifests["models-pvc.yaml"]["spec"]["accessModes"]
    assert volumes[mounts["/models"]]["configMap"]["name"] == "lensflow-models-config"
    service = manifests["tf-serving-service.yaml"]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_data_claim_is_the_one_the_pipeline_mounts():
    cfg = LensflowConfig()
    claims = dict(parse_volume(v) for v in cfg.kubeflow.volumes)
    manifests = resources(KUBEFLOW / "data")
    claim = manifests["data-pvc.yaml"]["metadata"]["name"]
    assert cfg.kubeflow.data_path.startswith(claims[claim] + "/")
    loader = manifests["loader-pod.yaml"]["spec"]
    assert loader["volumes"][0]["persistentVolumeClaim"]["claimName"] == claim
    assert loader["containers"][0]["volumeMounts"][0]["mountPath"] == claims[claim]


def test_kustomize_build_generates_the_models_config_map():
    objects = kustomize(KUBEFLOW / "serving")
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_VERSIONS[-1], strict=True)
    config_maps = by_kind(objects, "ConfigMap")
    (name,) = [n for n in config_maps if n.startswith("lensflow-models-config-")]
    generated = model_server_config_pb2.ModelServerConfig()
    text_format.Parse(config_maps[name]["data"]["models.config"], generated)
    assert generated == models_config()
    assert set(config_maps[name]["data"]) == {"models.config", "batching.config",
                                              "monitoring.config"}
    pod = by_kind(objects, "Deployment")["lensflow-serving"]["spec"]["template"]["spec"]
    assert {v["name"]: v for v in pod["volumes"]}["models-config"]["configMap"]["name"] == name
    assert {obj["metadata"].get("namespace") for obj in objects} == {"kubeflow"}


def test_kustomize_build_of_the_data_volume():
    objects = kustomize(KUBEFLOW / "data")
    assert set(by_kind(objects, "PersistentVolumeClaim")) == {"lensflow-data"}
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_VERSIONS[-1], strict=True)
