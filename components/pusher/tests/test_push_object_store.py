"""Pushes to an S3 bucket (moto's S3 server on loopback, spoken to over HTTP by tensorflow-io):
a version models.config names is complete and loads; a push killed or failing part-way leaves
no version that models.config names. Steps run in child processes (``tests/object_store_steps``)."""
import os
import signal
import subprocess
import sys
import time

import pytest

from lensflow.components.pusher import models_config, training_statistics
from lensflow.components.pusher.component import push_version
from tests import object_store_steps as steps

BUCKET = "serving-tests"
NAME = "lensflow"


@pytest.fixture(scope="module")
def store(s3_server):
    s3_server.create_bucket(BUCKET)
    session = steps.Session(s3_server)
    yield session
    session.close()


def _lensflow(server, *args):
    """The ``lensflow`` command in its own process, reaching ``server``."""
    return subprocess.run([sys.executable, "-m", "lensflow.pipeline.cli", *args], capture_output=True,
                          text=True, env={**os.environ, **server.env}, timeout=300)


def _models(tmp_path, store):
    """Three real SavedModels: x2, x5 with 300 extra files (a long upload), x7."""
    return [store.call("make_model", tmp_path / f"m{factor}", factor, extra)["folder"]
            for factor, extra in ((2, 0), (5, 300), (7, 0))]


@pytest.mark.slow  # several TensorFlow processes: tens of seconds
def test_pushes_to_a_bucket_are_named_in_models_config_only_when_complete(
        s3_server, store, tmp_path):
    serving = f"s3://{BUCKET}/models"
    base = f"{serving}/{NAME}"
    first, big, last = _models(tmp_path, store)

    pushed = store.call("push", first, base, serving, NAME)
    state = store.call("state", base, serving, NAME)
    assert state["complete"] == state["named"] == [pushed["version"]]
    assert state["base_path"] == base and state["baseline"] == str(pushed["version"])
    assert store.call("predict", pushed["final"], 3.0) == {"output": 6.0}
    assert f"models/{NAME}/{pushed['version']}/{training_statistics.PATH_IN_VERSION}" in \
        s3_server.keys(BUCKET, f"models/{NAME}/")

    # killed mid-upload: objects of the new version exist, but models.config never names it
    proc = subprocess.Popen([sys.executable, "-m", "tests.object_store_steps", "push", big, base,
                             serving, NAME], env={**os.environ, **s3_server.env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    partial = None
    while partial is None and proc.poll() is None:
        keys = s3_server.keys(BUCKET, f"models/{NAME}/")
        others = {key.split("/")[2] for key in keys} - {str(pushed["version"])}
        if others and not any(key.endswith(f"{next(iter(others))}/saved_model.pb") for key in keys):
            partial = int(next(iter(others)))
            os.kill(proc.pid, signal.SIGKILL)
        time.sleep(0.02)  # a pause between listings, for the moto server in this process
    proc.wait()
    assert partial is not None, "the push finished before it could be interrupted"
    state = store.call("state", base, serving, NAME)
    assert partial in state["taken"] and partial not in state["complete"]
    assert state["named"] == state["complete"] == [pushed["version"]]
    assert state["baseline"] == str(pushed["version"])

    # the next push gets a newer number; models.config names complete versions only
    after = store.call("push", last, base, serving, NAME)
    assert after["version"] > partial
    state = store.call("state", base, serving, NAME)
    assert state["named"] == state["complete"] == [pushed["version"], after["version"]]
    assert store.call("predict", after["final"], 3.0) == {"output": 21.0}

    # a label may name a complete version only; the CLI edits the bucket's models.config
    config = f"{serving}/{models_config.CONFIG_FILE}"
    refused = store.call("label", serving, NAME, "stable", partial, check=False)
    assert refused["error"] == "ValueError"
    assert f"no complete version {partial}" in refused["message"]
    labelled = _lensflow(s3_server, "serve", "labels", "--file", config,
                         "--set", f"stable={pushed['version']}")
    assert labelled.returncode == 0, labelled.stderr
    state = store.call("state", base, serving, NAME)
    assert state["labels"] == {"stable": pushed["version"]}
    assert state["named"] == [pushed["version"], after["version"]]

    # the Evaluator's baseline is the newest complete version, copied out of the bucket
    incumbent = store.call("baseline", serving, NAME, tmp_path / "baseline")
    assert (incumbent["found"], incumbent["version"]) == (1, str(after["version"]))
    assert store.call("predict", incumbent["copy"], 3.0) == {"output": 21.0}


@pytest.mark.slow  # starts the step process: TensorFlow and tensorflow-io
def test_a_push_that_fails_part_way_removes_its_upload_and_leaves_models_config(
        s3_server, store, tmp_path):
    serving = f"s3://{BUCKET}/failing"
    base = f"{serving}/{NAME}"
    good = store.call("make_model", tmp_path / "good", 2, 0)["folder"]
    pushed = store.call("push", good, base, serving, NAME)
    broken = store.call("make_model", tmp_path / "broken", 3, 20)["folder"]
    os.symlink(tmp_path / "nowhere", os.path.join(broken, "variables", "zz-unreadable"))
    before = s3_server.keys(BUCKET, "failing/")

    answer = store.call("push", broken, base, serving, NAME, check=False)
    assert answer["error"] == "PushWriteError" and "nothing was published" in answer["message"]
    assert s3_server.keys(BUCKET, "failing/") == before
    state = store.call("state", base, serving, NAME)
    assert state["named"] == state["complete"] == state["taken"] == [pushed["version"]]


def test_a_local_push_keeps_the_latest_policy_and_publishes_by_rename(tmp_path):
    model = tmp_path / "model"
    (model / "variables").mkdir(parents=True)
    (model / "saved_model.pb").write_bytes(b"graph")
    (model / "variables" / "variables.index").write_bytes(b"index")
    serving = tmp_path / "serving"
    version, final = push_version(str(model), str(serving / NAME), str(serving), NAME, 3, {})
    entry = models_config.entry(models_config.read(str(serving / models_config.CONFIG_FILE)), NAME)
    assert entry.model_version_policy.WhichOneof("policy_choice") == "latest"
    assert sorted(os.listdir(serving / NAME)) == [str(version)]
    assert os.path.exists(os.path.join(final, "variables", "variables.index"))
