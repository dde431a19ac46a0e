"""``lensflow rehearse`` and the pods' entrypoint, on small packages (seconds, no TensorFlow run).

The walk is exercised with a hand-written package whose tasks are ``python -c`` scripts, so every
step the rehearsal takes (order, ExecutorInput, placeholders, environment, mounts, cache, stop at
a failure) is checked by a real subprocess reading what it was given. The entrypoint's fixes are
checked against TFX's and Beam's own code; moto on loopback stands in for S3.
"""
import json
import os
import sys
import textwrap

import pytest
import yaml
from click.testing import CliRunner
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from lensflow.pipeline.config import REPO_ROOT, ConfigError, load_config
from lensflow.pipeline.runners import kfp_entrypoint, rehearse

# Task "produce": writes a file on the mounted volume and returns metadata for its artifact.
PRODUCE = textwrap.dedent("""
    import json, os, sys
    ei = json.loads(sys.argv[1])
    params = ei["inputs"]["parameterValues"]
    with open(params["target"], "w") as fh:
        fh.write(os.environ["GREETING"] + " " + os.environ["TOKEN"])
    out = ei["outputs"]["artifacts"]["data"]["artifacts"][0]
    os.makedirs(os.path.dirname(ei["outputs"]["outputFile"]), exist_ok=True)
    with open(ei["outputs"]["outputFile"], "w") as fh:
        json.dump({"artifacts": {"data": {"artifacts": [
            {"uri": out["uri"], "metadata": {"rows": 3, "word": sys.argv[2]}}]}}}, fh)
    print("produced", out["uri"])
""")
# Task "consume": records what the driver handed it about the upstream artifact.
CONSUME = textwrap.dedent("""
    import json, sys
    ei = json.loads(sys.argv[1])
    if ei["inputs"]["parameterValues"]["fail"] == "yes":
        print("consume: failing on purpose"); sys.exit(3)
    art = ei["inputs"]["artifacts"]["data"]["artifacts"][0]
    with open(ei["inputs"]["parameterValues"]["report"], "w") as fh:
        json.dump(art, fh)
""")


def tiny_package(tmp_path, fail="no", cache=True):
    """A two-task package in the format ``lensflow compile`` writes (spec + platform spec)."""
    def component(label, inputs, outputs):
        return {"executorLabel": label, "inputDefinitions": inputs, "outputDefinitions": outputs}

    spec = {
        "pipelineInfo": {"name": "tiny"}, "schemaVersion": "2.1.0", "sdkVersion": "test",
        "defaultPipelineRoot": str(tmp_path / "root"),
        "components": {
            "produce": component("produce_executor",
                                 {"parameters": {"target": {"parameterType": "STRING"}}},
                                 {"artifacts": {"data": {"artifactType": {
                                     "instanceSchema": "title: tfx.Examples\ntype: object\n"}}}}),
            "consume": component("consume_executor",
                                 {"artifacts": {"data": {"artifactType": {
                                     "instanceSchema": "title: tfx.Examples\ntype: object\n"}}},
                                  "parameters": {"fail": {"parameterType": "STRING"},
                                                 "report": {"parameterType": "STRING"}}}, {}),
        },
        "deploymentSpec": {"executors": {
            "produce_executor": {"container": {
                "image": "tiny:1", "command": ["python", "-c", PRODUCE],
                "args": ["{{$}}", "{{$.inputs.parameters['target']}}"]}},
            "consume_executor": {"container": {
                "image": "tiny:1", "command": ["python", "-c", CONSUME], "args": ["{{$}}"],
                "env": [{"name": "GREETING", "value": "from-container"}]}},
        }},
        "root": {"dag": {"tasks": {
            "consume": {"taskInfo": {"name": "consume"}, "componentRef": {"name": "consume"},
                        "dependentTasks": ["produce"], "cachingOptions": {"enableCache": cache},
                        "inputs": {
                            "artifacts": {"data": {"taskOutputArtifact": {
                                "producerTask": "produce", "outputArtifactKey": "data"}}},
                            "parameters": {
                                "fail": {"runtimeValue": {"constant": fail}},
                                "report": {"runtimeValue": {"constant": "/mnt/vol/report.json"}}}}},
            "produce": {"taskInfo": {"name": "produce"}, "componentRef": {"name": "produce"},
                        "cachingOptions": {"enableCache": cache},
                        "inputs": {"parameters": {
                            "target": {"runtimeValue": {"constant": "/mnt/vol/out.txt"}}}}},
        }}},
    }
    mount = {"pvcMount": [{"constant": "vol-claim", "mountPath": "/mnt/vol"}]}
    secret = {"secretAsEnv": [{"secretName": "tiny-secret",
                               "keyToEnv": [{"secretKey": "token", "envVar": "TOKEN"}]}]}
    platform = {"platforms": {"kubernetes": {"deploymentSpec": {"executors": {
        "produce_executor": {**mount, **secret}, "consume_executor": mount}}}}}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump_all([spec, platform]))
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM base\nENV GREETING=from-image \\\n    OTHER=1\nWORKDIR /app\n")
    return path, dockerfile


def rehearser(tmp_path, package, dockerfile, **kwargs):
    (tmp_path / "vol").mkdir(exist_ok=True)
    return rehearse.Rehearser(
        str(package), state_dir=str(tmp_path / "state"), mounts={"vol-claim": str(tmp_path / "vol")},
        dockerfile=str(dockerfile), secrets={"tiny-secret": {"token": "s3cret"}}, **kwargs)


def test_tasks_run_in_dependency_order_with_the_drivers_executor_input(tmp_path):
    package, dockerfile = tiny_package(tmp_path)
    result = rehearser(tmp_path, package, dockerfile, run_id="run-1").run()

    assert list(result.tasks) == ["produce", "consume"]
    assert [task.state for task in result.tasks.values()] == ["ran", "ran"]
    # The pod path of the parameter resolved to the mapped folder; image ENV and secret as env.
    assert (tmp_path / "vol" / "out.txt").read_text() == "from-image s3cret"
    # Output URI laid out as the driver does: <root>/<pipeline>/<run id>/<task>/<output key>.
    uri = f"{tmp_path / 'root'}/tiny/run-1/produce/data"
    assert result.tasks["produce"].output("data")["uri"] == uri
    # The consumer got the producer's URI, the metadata its executor_output.json returned, an
    # MLMD-style name, and the empty instanceSchema the open-source driver delivers.
    seen = json.loads((tmp_path / "vol" / "report.json").read_text())
    assert seen["uri"] == uri
    # ({{$.inputs.parameters['target']}} resolved by kfp's resolver, to the mapped path.)
    assert seen["metadata"] == {"rows": 3.0, "word": str(tmp_path / "vol" / "out.txt")}
    assert seen["name"].isdigit()
    assert seen["type"] == {"instanceSchema": ""}
    # The container env overrides the image's ENV.
    assert result.tasks["consume"].executor_input["outputs"]["outputFile"] == \
        rehearse.POD_OUTPUT_FILE


def test_cache_hits_like_kfp_and_is_off_where_the_package_says(tmp_path):
    package, dockerfile = tiny_package(tmp_path)
    first = rehearser(tmp_path, package, dockerfile, run_id="run-1").run()
    second = rehearser(tmp_path, package, dockerfile, run_id="run-2").run()
    assert [t.state for t in second.tasks.values()] == ["cached", "cached"]
    assert second.tasks["produce"].executor_output == first.tasks["produce"].executor_output
    forced = rehearser(tmp_path, package, dockerfile, run_id="run-3", enable_cache=False).run()
    assert [t.state for t in forced.tasks.values()] == ["ran", "ran"]

    off = tmp_path / "off"
    off.mkdir()
    uncached, _ = tiny_package(off, cache=False)
    for run_id in ("run-1", "run-2"):
        states = [t.state for t in rehearser(off, uncached, dockerfile, run_id=run_id)
                  .run().tasks.values()]
        assert states == ["ran", "ran"], run_id


def test_stops_at_the_first_failing_task_and_shows_its_log(tmp_path):
    package, dockerfile = tiny_package(tmp_path, fail="yes")
    with pytest.raises(rehearse.RehearsalError) as failure:
        rehearser(tmp_path, package, dockerfile).run()
    assert failure.value.task == "consume"
    assert "exit code 3" in str(failure.value)
    assert "consume: failing on purpose" in failure.value.log


def test_a_missing_mount_or_secret_is_named(tmp_path):
    package, dockerfile = tiny_package(tmp_path)
    with pytest.raises(rehearse.RehearsalError, match="--mount vol-claim="):
        rehearse.Rehearser(str(package), state_dir=str(tmp_path / "s"), mounts={})
    with pytest.raises(rehearse.RehearsalError, match="--secret tiny-secret.token="):
        rehearse.Rehearser(str(package), state_dir=str(tmp_path / "s"),
                           mounts={"/mnt/vol": str(tmp_path)}).run()


def test_the_cli_rehearses_a_package_and_reports_a_failure(tmp_path):
    from lensflow.pipeline.cli import main

    package, _ = tiny_package(tmp_path, fail="yes")
    (tmp_path / "vol").mkdir()
    result = CliRunner().invoke(main, ["rehearse", str(package), "--mount",
                                       f"vol-claim={tmp_path / 'vol'}", "--secret",
                                       "tiny-secret.token=x", "--env", "GREETING=hi"])
    assert result.exit_code == 1
    assert "produce: done" in result.output and "task consume failed" in result.output
    assert "failing on purpose" in result.output
    assert (tmp_path / "vol" / "out.txt").read_text() == "hi x"


def test_pod_paths_are_rewritten_only_as_whole_path_prefixes():
    paths = {"/mnt/models": "/tmp/m", "/mnt/data": "/tmp/d"}
    text = json.dumps({"a": "/mnt/models/lensflow", "b": json.dumps({"c": "/mnt/data"}),
                       "d": "/mnt/models2", "e": "/x/mnt/models"})
    rewritten = json.loads(rehearse.rewrite_paths(text, paths))
    assert rewritten["a"] == "/tmp/m/lensflow"
    assert json.loads(rewritten["b"]) == {"c": "/tmp/d"}
    assert rewritten["d"] == "/mnt/models2" and rewritten["e"] == "/x/mnt/models"


def test_the_image_environment_comes_from_the_dockerfile():
    env, workdir = rehearse.dockerfile_facts(str(REPO_ROOT / "kubeflow" / "Dockerfile"))
    assert env["TF_USE_LEGACY_KERAS"] == "1"
    assert workdir == load_config().kubeflow.workdir


# ---- the entrypoint's fixes -----------------------------------------------------------------

EXAMPLES_SCHEMA = "title: tfx.Examples\ntype: object\n"


@pytest.mark.parametrize("delivered", [{"instanceSchema": ""}, {"schemaTitle": "system.Artifact"}])
def test_entrypoint_restores_the_types_the_oss_driver_loses(delivered):
    """tensorflow/tfx#7768: TFX's parser fails on the driver's types; restored, it finds the class."""
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils as utils
    from tfx.types import standard_artifacts

    executor_input = {"inputs": {"artifacts": {"examples": {"artifacts": [
        {"name": "7", "uri": "s3://b/examples", "type": delivered,
         "metadata": {"split_names": "[\"train\"]"}}]}}}}
    inputs_spec = {"artifacts": {"examples": {"artifactType": {"instanceSchema": EXAMPLES_SCHEMA}}}}

    def parse(raw):
        message = json_format.ParseDict(raw, pipeline_spec_pb2.ExecutorInput())
        return utils.parse_raw_artifact_dict(message.inputs.artifacts)

    with pytest.raises((AttributeError, ImportError)):
        parse(executor_input)
    argv = ["--executor_class_path", "x.Y", "--json_serialized_invocation_args",
            json.dumps(executor_input), "--json_serialized_inputs_spec_args",
            json.dumps(inputs_spec), "--runner=DirectRunner"]
    fixed = kfp_entrypoint.fix_arguments(argv)
    assert fixed[:3] == argv[:3] and fixed[4:] == argv[4:]
    artifact = parse(json.loads(fixed[3]))["examples"][0]
    assert isinstance(artifact, standard_artifacts.Examples)
    assert artifact.split_names == "[\"train\"]" and artifact.uri == "s3://b/examples"


def test_entrypoint_leaves_declared_types_alone():
    executor_input = {"inputs": {"artifacts": {"examples": {"artifacts": [
        {"uri": "u", "type": {"instanceSchema": "title: tfx.Schema\n"}}]}}}}
    assert kfp_entrypoint.restore_artifact_types(executor_input, {"artifacts": {"examples": {
        "artifactType": {"instanceSchema": EXAMPLES_SCHEMA}}}}) == []


def test_beam_writes_an_empty_file_to_s3_only_with_the_entrypoint_fix(s3_server, monkeypatch):
    """apache/beam#21427: Beam's S3 uploader cannot finish a zero-byte file (moto as S3)."""
    from apache_beam.io.aws import s3io
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import PipelineOptions

    bucket = s3_server.create_bucket("empty-files")
    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(s3io.S3Uploader, "finish", s3io.S3Uploader.finish)
    FileSystems.set_options(PipelineOptions([]))

    def write_empty(name):
        handle = FileSystems.create(f"s3://{bucket}/{name}")
        handle.close()

    with pytest.raises(Exception, match="MalformedXML"):
        write_empty("before.txt")
    kfp_entrypoint._patch_beam_s3()
    write_empty("after.txt")
    assert "after.txt" in s3_server.keys(bucket) and "before.txt" not in s3_server.keys(bucket)


def test_entrypoint_reads_and_writes_s3_and_exits_with_the_tasks_status(s3_server, tmp_path):
    """tensorflow-io registers s3:// for tf.io.gfile in the entrypoint's process, and the
    process ends with TFX's status, not tensorflow/io#2039's abort."""
    bucket = s3_server.create_bucket("entrypoint")
    script = textwrap.dedent(f"""
        import sys
        from lensflow.pipeline.runners import kfp_entrypoint
        kfp_entrypoint.register_filesystems()
        import tensorflow as tf
        with tf.io.gfile.GFile("s3://{bucket}/probe.txt", "w") as fh:
            fh.write("written by tf.io.gfile")
        print(tf.io.gfile.listdir("s3://{bucket}/"), flush=True)
        kfp_entrypoint.main(["--executor_class_path"])
    """)
    env = {**os.environ, **s3_server.env}
    import subprocess

    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=str(REPO_ROOT),
                          capture_output=True, text=True, timeout=300)
    assert "probe.txt" in done.stdout, done.stderr[-2000:]
    assert done.returncode == 2, done.stderr[-2000:]  # absl's usage error: a flag is missing
    assert "pure virtual method called" not in done.stderr
    body = s3_server.client().get_object(Bucket=bucket, Key="probe.txt")["Body"].read()
    assert body == b"written by tf.io.gfile"


# ---- compiling for an s3:// root ------------------------------------------------------------

def test_an_s3_root_puts_the_endpoint_in_the_env_and_the_credentials_in_a_secret(tmp_path):
    from lensflow.pipeline.runners import kubeflow

    cfg = load_config(None, {"kubeflow.pipeline_root": "s3://bucket/root",
                             "kubeflow.s3_endpoint": "minio.kubeflow:9000",
                             "kubeflow.s3_secret": "my-minio"})
    info = kubeflow.compile_package(cfg, str(tmp_path / "p.yaml"))
    spec, platform = rehearse.load_package(str(tmp_path / "p.yaml"))
    executors = json_format.MessageToDict(spec.deployment_spec)["executors"]
    for label, executor in executors.items():
        container = executor["container"]
        assert container["command"] == kubeflow.ENTRYPOINT
        env = {item["name"]: item["value"] for item in container["env"]}
        assert env["S3_ENDPOINT"] == "http://minio.kubeflow:9000"
        assert env["AWS_ENDPOINT_URL"] == "http://minio.kubeflow:9000"
        assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & set(env)
        (secret,) = platform[label]["secretAsEnv"]
        assert secret["secretName"] == "my-minio"
        assert {pair["envVar"] for pair in secret["keyToEnv"]} == {"AWS_ACCESS_KEY_ID",
                                                                   "AWS_SECRET_ACCESS_KEY"}
    assert info["secret"] == "my-minio"


@pytest.mark.parametrize("key, value, message", [
    ("kubeflow.pipeline_root", "minio://mlpipeline/v2/artifacts", "cannot write minio"),
    ("kubeflow.s3_endpoint", "http://minio:9000", "kubeflow.s3_endpoint"),
    ("kubeflow.s3_secret", "Bad_Name", "kubeflow.s3_secret"),
])
def test_config_rejects_roots_and_s3_settings_the_pods_cannot_use(key, value, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, {key: value})


def test_s3_with_beam_worker_processes_is_refused():
    from lensflow.pipeline.runners import kubeflow

    cfg = load_config(None, {"kubeflow.pipeline_root": "s3://b/r",
                             "beam.direct_running_mode": "multi_processing"})
    with pytest.raises(kubeflow.KubeflowSpecError, match="multi_processing"):
        kubeflow.compile_job(cfg)
