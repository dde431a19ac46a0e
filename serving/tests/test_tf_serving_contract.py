"""The pushed SavedModel honours TF Serving's contract, checked the way TF Serving reads it
(MetaGraphDef by tag, TF1 session loader and tensor names), and, when a real
``tensorflow_model_server`` is installed, TF Serving itself gives the in-process answer."""
import base64
import json
import os
import shutil
import socket
import subprocess

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow.python.saved_model import signature_constants
from tensorflow.python.tools import saved_model_utils

from lensflow.components.pusher import models_config
from lensflow.serving.tests.helpers import assert_same_answer, http, wait_for

OUTPUT_DTYPES = {"probabilities": types_pb2.DT_FLOAT, "class_ids": types_pb2.DT_INT64,
                 "class_names": types_pb2.DT_STRING}


def test_saved_model_has_only_the_serve_tag_set(pushed_model_dir):
    assert saved_model_utils.get_saved_model_tag_sets(pushed_model_dir) == [["serve"]]


@pytest.mark.parametrize("signature, input_name", [("serving_default", "images"),
                                                   ("serving_examples", "examples")])
def test_predict_signatures_follow_the_tf_serving_contract(pushed_model_dir, signature, input_name):
    meta_graph = saved_model_utils.get_meta_graph_def(pushed_model_dir, "serve")
    assert "serve" in meta_graph.meta_info_def.tags
    definition = meta_graph.signature_def[signature]
    assert definition.method_name == signature_constants.PREDICT_METHOD_NAME == \
        "tensorflow/serving/predict"
    assert list(definition.inputs) == [input_name]
    assert definition.inputs[input_name].dtype == types_pb2.DT_STRING
    assert [d.size for d in definition.inputs[input_name].tensor_shape.dim] == [-1]
    assert {name: out.dtype for name, out in definition.outputs.items()} == OUTPUT_DTYPES
    classes = [d.size for d in definition.outputs["probabilities"].tensor_shape.dim]
    with open(os.path.join(pushed_model_dir, "assets.extra", "class_names.json")) as fh:
        assert classes == [-1, len(json.load(fh))]


def test_transform_features_signature_is_exported_for_tfma(pushed_model_dir):
    meta_graph = saved_model_utils.get_meta_graph_def(pushed_model_dir, "serve")
    assert "transform_features" in meta_graph.signature_def


def test_tf1_session_loader_runs_serving_default_by_tensor_name(pushed_model_dir, sample_images,
                                                                reference_outputs):
    """What TF Serving does: load by tag into a session, feed and fetch the SignatureDef's tensors."""
    images = [data for _, data in sample_images]
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], pushed_model_dir)
        definition = meta_graph.signature_def["serving_default"]
        names = sorted(definition.outputs)
        fetched = session.run([definition.outputs[n].name for n in names],
                              feed_dict={definition.inputs["images"].name: images})
    assert_same_answer(dict(zip(names, fetched)), reference_outputs)


# ---- a real TF Serving, when installed ---------------------------------------------------------
def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def model_server(e2e, pushed_model_dir, tmp_path):
    """``tensorflow_model_server`` on the pushed ``models.config``; skipped when not installed."""
    binary = shutil.which("tensorflow_model_server")
    if binary is None:
        pytest.skip("tensorflow_model_server is not on PATH (no registry ships it; install TF "
                    "Serving or use its Docker image to run this test)")
    config = os.path.join(e2e.config.serving_dir, models_config.CONFIG_FILE)
    assert os.path.isfile(config), f"the push wrote no {config}"
    rest_port, grpc_port = _free_port(), _free_port()
    log = open(tmp_path / "model_server.log", "w")
    proc = subprocess.Popen([binary, f"--port={grpc_port}", f"--rest_api_port={rest_port}",
                             f"--model_config_file={config}"], stdout=log, stderr=subprocess.STDOUT)
    try:
        yield f"http://127.0.0.1:{rest_port}/v1/models/{e2e.config.push.model_name}", proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_real_tf_serving_gives_the_in_process_answer(model_server, pushed_model_dir, sample_images,
                                                     reference_outputs):
    url, proc = model_server
    version = os.path.basename(pushed_model_dir)

    def available():
        assert proc.poll() is None, "tensorflow_model_server exited"
        try:
            status, body = http(url, timeout=5)
        except OSError:
            return False
        return status == 200 and any(s["version"] == version and s["state"] == "AVAILABLE"
                                     for s in body["model_version_status"])

    wait_for(available, timeout=120, interval=0.5)
    status, body = http(f"{url}/versions/{version}:predict", "POST", {"instances": [
        {"b64": base64.b64encode(data).decode("ascii")} for _, data in sample_images]})
    assert status == 200, body
    rows = body["predictions"]
    assert_same_answer({k: [r[k] for r in rows] for k in rows[0]}, reference_outputs)
    assert np.allclose(np.sum([r["probabilities"] for r in rows], axis=1), 1.0, atol=1e-4)
