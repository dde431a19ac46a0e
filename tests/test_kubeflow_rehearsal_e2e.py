"""The compiled Kubeflow package really runs: the bundled-sample pipeline rehearsed task by task
as open-source KFP v2 executes it, on an ``s3://`` pipeline root (moto on loopback, an S3/MinIO
stand-in), with PVCs mapped to local folders (session fixture ``kfp_rehearsal``).

Not covered here (see ``kubeflow/README.md``): the container image, pods, and the KFP launcher's
artifact upload step.
"""
import hashlib
import json
import os
import random
import re
import shutil

import numpy as np
import pytest
import tensorflow as tf

from lensflow.components.data_validation import drift
from lensflow.components.pusher import training_statistics, versions
from lensflow.pipeline.config import SAMPLE_DATA
from tests.s3_server import KFP_BUCKET

TASKS = {"ImageExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator", "DriftCheck",
         "DataGate", "Transform", "Trainer", "ServingBaseline", "LensflowEvaluator",
         "ServingCheck", "LensflowPusher", "RunReport"}
# Images compared between the rehearsed and the local model (the sample, in a fixed order).
COMPARED_IMAGES = 60
# Same data, seeds and settings: on these machines the two models came out identical (top-1
# agreement 1.0, mean |dp| < 1e-4). The bounds leave room only for float reduction order (a
# different CPU or thread count), far below what a different split, label or setting causes.
AGREEMENT = 0.98
PROBABILITY_GAP = 1e-3


def model_base(run):
    return os.path.join(run.volumes["lensflow-models"], run.config.push.model_name)


def metadata(task, key):
    return task.output(key).get("metadata", {})


def s3_json(run, uri, name):
    """A JSON file under an ``s3://`` artifact URI, read with boto3 (not tensorflow-io, which
    aborts this process at exit)."""
    bucket, _, key = uri[len("s3://"):].partition("/")
    body = run.s3.client().get_object(Bucket=bucket, Key=f"{key.rstrip('/')}/{name}")["Body"]
    return json.loads(body.read())


def test_every_task_ran_from_the_package(kfp_rehearsal):
    tasks = kfp_rehearsal.result.tasks
    assert set(tasks) == TASKS
    assert {name: task.state for name, task in tasks.items()} == dict.fromkeys(TASKS, "ran")
    examples = metadata(tasks["ImageExampleGen"], "examples")
    assert examples["ingested"] == 1500 and re.fullmatch(r"[0-9a-f]{64}",
                                                         examples["data_fingerprint"])
    assert metadata(tasks["ServingBaseline"], "baseline_model")["found"] == 0
    assert metadata(tasks["DriftCheck"], "drift")["baseline_found"] == 0
    assert metadata(tasks["LensflowEvaluator"], "blessing")["blessed"] == 1
    assert metadata(tasks["ServingCheck"], "infra_blessing")["blessed"] == 1


def test_a_version_was_pushed_to_the_mapped_serving_volume(kfp_rehearsal):
    found = versions.versions(model_base(kfp_rehearsal))
    assert len(found) == 1
    record = versions.push_record(model_base(kfp_rehearsal), found[0])
    baseline = metadata(kfp_rehearsal.result.tasks["ServingBaseline"], "baseline_model")
    assert record["training_fingerprint"] == baseline["training_fingerprint"]
    assert record["model_uri"].startswith(f"s3://{KFP_BUCKET}/root/")
    version_dir = os.path.join(model_base(kfp_rehearsal), str(found[0]))
    carried = training_statistics.load(version_dir, record)
    assert carried is not None and carried.datasets[0].num_examples > 1000
    pushed = metadata(kfp_rehearsal.result.tasks["LensflowPusher"], "pushed_model")
    assert pushed["pushed"] == 1 and pushed["pushed_version"] == str(found[0])


def test_the_artifacts_are_on_the_s3_server(kfp_rehearsal):
    keys = set(kfp_rehearsal.s3.keys(KFP_BUCKET, "root/"))
    run_root = kfp_rehearsal.result.run_root
    assert run_root == f"s3://{KFP_BUCKET}/root/lensflow/first"
    for name, task in kfp_rehearsal.result.tasks.items():
        for key, listing in task.executor_output["artifacts"].items():
            uri = listing["artifacts"][0]["uri"]
            assert uri == f"{run_root}/{name}/{key}"
    prefix = "root/lensflow/first/"
    for expected in ("Trainer/model/Format-Serving/saved_model.pb",
                     "Transform/transform_graph/transform_fn/saved_model.pb",
                     "ImageExampleGen/examples/ingestion_report.json",
                     "LensflowEvaluator/evaluation/validations",
                     "RunReport/report", "RunReport/summary", "RunReport/metrics"):
        assert any(key.startswith(prefix + expected) for key in keys), expected
    # tensorflow-io's S3 filesystem writes no zero-byte "directory" objects
    # (kubeflow/pipelines#13476 is about such markers, written by GCS clients).
    assert not [key for key in keys if key.endswith("/")]


def test_the_report_artifacts_render_in_kfp_and_rebuild_from_the_bucket(kfp_rehearsal, tmp_path):
    """RunReport's outputs carry the titles and display names the KFP UI renders, and
    ``lensflow report --artifacts s3://...`` rebuilds the page from the bucket alone."""
    import subprocess
    import sys

    report = kfp_rehearsal.result.tasks["RunReport"]
    for key in ("report", "summary", "metrics"):
        assert metadata(report, key).get("display_name"), key
    assert "accuracy" in metadata(report, "metrics")
    out = tmp_path / "report.html"
    env = {**os.environ, **kfp_rehearsal.s3.env}
    done = subprocess.run(
        [sys.executable, "-m", "lensflow.pipeline.cli", "report", "--artifacts",
         kfp_rehearsal.result.run_root, "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    page = out.read_text()
    assert "onfusion" in page
    assert all(label in page for label in os.listdir(SAMPLE_DATA))


def sample_images(count):
    paths = sorted(str(p) for p in SAMPLE_DATA.rglob("*.png"))
    random.Random(0).shuffle(paths)
    return [open(path, "rb").read() for path in paths[:count]]


def test_serving_default_answers_like_the_local_runs_model(kfp_rehearsal, e2e):
    """Same data, same settings, trained twice: in the rehearsal's task processes (from the
    package, on S3) and in the local run (LocalDagRunner). What is validated locally is what
    Kubeflow would deploy: the same answers on the same images, probabilities within float
    noise."""
    (version,) = versions.versions(model_base(kfp_rehearsal))
    rehearsed = tf.saved_model.load(os.path.join(model_base(kfp_rehearsal), str(version)))
    local = tf.saved_model.load(e2e.summary["pushed_model_dir"])
    images = tf.constant(sample_images(COMPARED_IMAGES))
    ours = rehearsed.signatures["serving_default"](images=images)
    theirs = local.signatures["serving_default"](images=images)
    assert [n.decode() for n in ours["class_names"].numpy()[:5]] and \
        ours["probabilities"].shape == theirs["probabilities"].shape
    agreement = float(np.mean(ours["class_ids"].numpy() == theirs["class_ids"].numpy()))
    gap = float(np.mean(np.abs(ours["probabilities"].numpy() - theirs["probabilities"].numpy())))
    print(f"top-1 agreement {agreement:.3f}, mean |dp| {gap:.4f}")
    assert agreement >= AGREEMENT and gap <= PROBABILITY_GAP


def serving_digest(folder):
    digest = hashlib.sha256()
    for root, dirs, files in sorted(os.walk(folder)):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            digest.update(os.path.relpath(path, folder).encode())
            digest.update(open(path, "rb").read())
    return digest.hexdigest()


def shuffle_training_labels(images_dir, buckets):
    """Move every image of the train split into a random other class folder (eval and test
    keep their labels), so the candidate learns noise while the test split stays true."""
    from lensflow.components.image_example_gen.executor import assign_split

    classes = sorted(os.listdir(images_dir))
    rng = random.Random(7)
    moved = 0
    files = [(label, name) for label in classes
             for name in sorted(os.listdir(os.path.join(images_dir, label)))]
    for label, name in files:
        path = os.path.join(images_dir, label, name)
        content = hashlib.sha256(open(path, "rb").read()).hexdigest()
        if assign_split(None, content, buckets, []) != "train":
            continue
        other = rng.choice([c for c in classes if c != label])
        shutil.move(path, os.path.join(images_dir, other, f"moved_{label}_{name}"))
        moved += 1
    return moved


def test_a_worse_candidate_on_changed_data_is_judged_against_the_pushed_model_and_refused(
        kfp_rehearsal):
    """Run the same package again after the data volume changed (train labels shuffled): the
    data fingerprint is taken at run time, so the version the first run pushed is the baseline,
    and the worse candidate is refused with the serving volume unchanged. (The package's
    accuracy floor is 0, so only the comparison with the baseline can refuse it.)"""
    base = model_base(kfp_rehearsal)
    (first_version,) = versions.versions(base)
    before = serving_digest(kfp_rehearsal.volumes["lensflow-models"])
    images = os.path.join(kfp_rehearsal.volumes["lensflow-data"], "images")
    assert shuffle_training_labels(images, kfp_rehearsal.config.data.split_buckets) > 1000

    second = kfp_rehearsal.rehearse("second")

    first_tasks = kfp_rehearsal.result.tasks
    assert metadata(second.tasks["ImageExampleGen"], "examples")["data_fingerprint"] != \
        metadata(first_tasks["ImageExampleGen"], "examples")["data_fingerprint"]
    baseline = metadata(second.tasks["ServingBaseline"], "baseline_model")
    assert baseline["found"] == 1 and baseline["serving_version"] == str(first_version)
    assert baseline["training_fingerprint"] != \
        metadata(first_tasks["ServingBaseline"], "baseline_model")["training_fingerprint"]
    compared = metadata(second.tasks["DriftCheck"], "drift")
    assert compared["baseline_found"] == 1 and compared["serving_version"] == str(first_version)
    result = s3_json(kfp_rehearsal, second.tasks["DriftCheck"].output("drift")["uri"],
                     drift.DRIFT_FILE)
    assert result["serving_version"] == str(first_version) and result["policy"] == "report-only"
    assert {row["feature"] for row in result["measurements"]} == set(drift.COMPARED)
    blessing = metadata(second.tasks["LensflowEvaluator"], "blessing")
    assert blessing["blessed"] == 0
    assert blessing["baseline_model"] == second.tasks["ServingBaseline"].output(
        "baseline_model")["uri"]
    assert metadata(second.tasks["LensflowPusher"], "pushed_model")["pushed"] == 0
    assert versions.versions(base) == [first_version]
    assert serving_digest(kfp_rehearsal.volumes["lensflow-models"]) == before
