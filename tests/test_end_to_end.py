"""One real LocalDagRunner run on the bundled sample, shared by the session (see conftest.e2e)."""
import glob
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf
import tensorflow_model_analysis as tfma
import tensorflow_transform as tft
from click.testing import CliRunner

from lensflow.components.trainer import scaling
from lensflow.components.transform import features, preprocessing
from lensflow.pipeline import outcome
from lensflow.pipeline.config import SAMPLE_DATA


def sample_image(cls="trouser"):
    path = sorted(glob.glob(os.path.join(SAMPLE_DATA, cls, "*.png")))[0]
    with open(path, "rb") as fh:
        return fh.read()


def test_run_is_blessed_and_pushed_and_counts_reconcile(e2e):
    s = e2e.summary
    assert s["found"] == s["ingested"] + len(s["rejected"]) + len(s["ignored"]) == 1500
    assert sum(e["total"] for e in s["splits"].values()) == s["ingested"]
    assert s["evaluation_split"] == "test"
    assert s["blessed"] is True
    assert s["pushed_model_dir"].startswith(e2e.config.serving_dir)
    assert os.path.exists(os.path.join(s["pushed_model_dir"], "saved_model.pb"))
    assert s["metrics"]["accuracy"] >= e2e.config.evaluation.min_accuracy
    assert s["metrics"]["example_count"] == s["splits"]["test"]["total"]
    stored = tfma.load_metrics(s["evaluation_uri"])
    overall = next(m for m in stored if not m.slice_key.single_slice_keys)
    accuracy = next(kv.value.double_value.value for kv in overall.metric_keys_and_values
                    if kv.key.name == "sparse_categorical_accuracy" and not kv.key.model_name)
    assert abs(accuracy - s["metrics"]["accuracy"]) < 1e-9


def test_pushed_serving_default_agrees_with_the_keras_model(e2e):
    pushed = tf.saved_model.load(e2e.summary["pushed_model_dir"])
    images = [sample_image(c) for c in ("trouser", "bag", "sneaker")]
    served = pushed.signatures["serving_default"](images=tf.constant(images))
    serving_dir = os.path.join(e2e.summary["model_uri"], "Format-Serving")
    keras_model = tf.keras.models.load_model(serving_dir)
    transform_uri = glob.glob(os.path.join(e2e.config.pipeline_root, "Transform", "transform_graph", "*"))[0]
    transformed = tft.TFTransformOutput(transform_uri).transform_features_layer()(
        {features.IMAGE_KEY: tf.constant([[i] for i in images])})
    pixels = preprocessing.decode_pixels(transformed[features.IMAGE_XF], (28, 28, 1))
    assert pixels.dtype == tf.uint8
    expected = keras_model(scaling.PixelScaling.read(serving_dir)(pixels), training=False).numpy()
    np.testing.assert_allclose(served[features.PROBABILITIES].numpy(), expected, atol=1e-5)
    names = [n.decode() for n in served[features.CLASS_NAMES].numpy()]
    assert names[0] == "trouser"
    assert list(served[features.CLASS_IDS].numpy()) == list(expected.argmax(axis=1))


def test_pushed_model_is_the_trained_network_without_optimizer_state(e2e):
    pushed = e2e.summary["pushed_model_dir"]
    keys = [name for name, _ in tf.train.list_variables(os.path.join(pushed, "variables",
                                                                     "variables"))]
    assert keys and not [k for k in keys if "optimizer" in k.lower()]
    keras_model = tf.keras.models.load_model(pushed, compile=False)
    # nothing nested but the Transform layer the signatures use
    assert [layer for layer in keras_model.layers if isinstance(layer, tf.keras.Model)] \
        == [keras_model.tft_layer]
    assert len([k for k in keys if k.startswith("layer_with_weights-")]) \
        == len([w for layer in keras_model.layers if layer is not keras_model.tft_layer
                for w in layer.weights])
    assert scaling.PixelScaling.read(pushed).mean is not None  # baseline_cnn normalises


def test_examples_signature_and_transform_features_are_exported(e2e):
    pushed = tf.saved_model.load(e2e.summary["pushed_model_dir"])
    assert {"serving_default", "serving_examples", "transform_features"} <= set(pushed.signatures)
    example = tf.train.Example(features=tf.train.Features(feature={
        features.IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[sample_image()])),
        features.LABEL_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"trouser"]))}))
    serialized = tf.constant([example.SerializeToString()])
    by_example = pushed.signatures["serving_examples"](examples=serialized)
    by_image = pushed.signatures["serving_default"](images=tf.constant([sample_image()]))
    np.testing.assert_allclose(by_example[features.PROBABILITIES], by_image[features.PROBABILITIES],
                               atol=1e-6)
    transformed = pushed.signatures["transform_features"](examples=serialized)
    assert transformed[features.IMAGE_XF].dtype == tf.string
    assert preprocessing.decode_pixels(transformed[features.IMAGE_XF], (28, 28, 1)).shape[1:] \
        == (28, 28, 1)


def test_cli_rerun_is_cached_and_writes_the_summary_json(e2e, tmp_path):
    from lensflow.pipeline.cli import main

    out = tmp_path / "summary.json"
    result = CliRunner().invoke(main, [
        "run", "--home", e2e.home, "--epochs", "2", "--min-accuracy", "0.5",
        "--summary-json", str(out)])
    assert result.exit_code == outcome.ALREADY_SERVING.code, result.output
    summary = json.loads(out.read_text())
    assert summary["outcome"] == {
        "name": "already_serving", "exit_code": outcome.ALREADY_SERVING.code,
        "reasons": [f"the push was reused from the cache: {e2e.summary['pushed_model_dir']}"]}
    for key in ("ingested", "rejected", "ignored", "splits", "metrics", "blessed", "pushed_model_dir"):
        assert key in summary
    assert summary["executions"] and set(summary["executions"].values()) == {"CACHED"}, \
        summary["executions"]
    assert "accuracy" in result.output and "images: found 1500" in result.output


def test_a_run_killed_during_training_resumes_from_what_finished(e2e, tmp_path):
    """Kill ``lensflow run`` once the Trainer has started; the re-run reuses ingestion and
    Transform, trains (from the killed Trainer's last finished epoch, if any: see
    tests/test_resume.py) and never takes the killed Trainer's output as a model."""
    env = {**os.environ, "LENSFLOW_HOME": e2e.home}
    args = [sys.executable, "-m", "lensflow.pipeline.cli", "run", "--epochs", "3", "--min-accuracy", "0.0"]
    trainer_dir = os.path.join(e2e.config.pipeline_root, "Trainer", "model_run")
    before = set(os.listdir(trainer_dir))
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and set(os.listdir(trainer_dir)) == before:
        assert proc.poll() is None, "run ended before the Trainer started"
        time.sleep(0.5)
    time.sleep(3)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    killed = set(os.listdir(trainer_dir)) - before
    assert killed, "the Trainer never started"
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
    # resuming is what is tested; whether 3 epochs beat the serving model is not
    assert done.returncode in (outcome.PUSHED.code, outcome.NOT_BLESSED.code), done.stderr[-3000:]
    from lensflow.pipeline import summary
    latest = summary.summarise(e2e.config.metadata_path)
    assert latest["executions"]["ImageExampleGen"] == "CACHED"
    assert latest["executions"]["Transform"] == "CACHED"
    assert latest["executions"]["Trainer"] == "COMPLETE"
    assert os.path.basename(os.path.dirname(latest["model_uri"] + "/")) not in killed
