"""The exported model is the trained network itself, without the optimizer's state; its serving
signatures apply the training scaling, so served answers on image bytes are the network's on
the scaled stored pixels. Uses the shared end-to-end run's Transform graph."""
import glob
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from lensflow.components.trainer import run, scaling
from lensflow.components.trainer.models import build_model
from lensflow.components.transform import features, preprocessing
from lensflow.pipeline.config import LensflowConfig, SAMPLE_DATA

SHAPE = (28, 28, 1)


def _sample_images():
    paths = sorted(glob.glob(os.path.join(str(SAMPLE_DATA), "*", "*.png")))[:6]
    return [open(path, "rb").read() for path in paths]


@pytest.fixture(scope="module")
def transform_output(e2e):
    uri = glob.glob(os.path.join(e2e.config.pipeline_root, "Transform", "transform_graph", "*"))
    return tft.TFTransformOutput(uri[0])


@pytest.fixture(scope="module")
def exported(transform_output, tmp_path_factory):
    """A network trained one step with Adam (so the optimizer has slots), exported."""
    tf.keras.utils.set_random_seed(0)
    names = run.class_names(transform_output)
    cfg = LensflowConfig().replace(**{"model.family": "baseline_cnn", "image.size": SHAPE[0]})
    model = build_model(cfg, SHAPE, len(names))
    run.compile_model(model, 1e-3, 3, cfg.train)
    x = np.random.default_rng(0).normal(size=(8, *SHAPE)).astype(np.float32)
    model.fit(x, np.arange(8) % len(names), epochs=1, verbose=0)
    assert len(model.optimizer.variables()) > 1  # the slots a careless export would carry
    pixel_scaling = scaling.PixelScaling((0.3,), (0.35,))
    folder = str(tmp_path_factory.mktemp("export") / "serving")
    run.export(model, transform_output, names, folder, 10 ** 6, pixel_scaling)
    return model, pixel_scaling, folder


def test_exported_savedmodel_holds_the_networks_weights_and_no_optimizer_state(exported):
    model, _, folder = exported
    keys = [name for name, _ in tf.train.list_variables(os.path.join(folder, "variables",
                                                                     "variables"))]
    assert not [k for k in keys if "optimizer" in k.lower()]
    weights = [k for k in keys if k.startswith("layer_with_weights-")]
    assert len(weights) == len(model.weights)
    # besides the weights only the compiled metrics' counters, as before
    others = set(keys) - set(weights) - {"_CHECKPOINTABLE_OBJECT_GRAPH"}
    assert others and all(k.startswith("keras_api/metrics/") for k in others)


def test_reloaded_keras_model_is_the_network_not_a_wrapper(exported):
    model, pixel_scaling, folder = exported
    reloaded = tf.keras.models.load_model(folder, compile=False)
    assert [layer.name for layer in reloaded.layers] == [layer.name for layer in model.layers]
    # nothing nested but the Transform layer the signatures use (``tft_layer``)
    assert [layer for layer in reloaded.layers if isinstance(layer, tf.keras.Model)] \
        == [reloaded.tft_layer]
    assert reloaded.outputs[0]._keras_history is not None  # what Grad-CAM walks
    assert scaling.PixelScaling.read(folder) == pixel_scaling


def test_served_predictions_on_image_bytes_equal_the_network_on_scaled_pixels(
        exported, transform_output):
    model, pixel_scaling, folder = exported
    images = _sample_images()
    served = tf.saved_model.load(folder).signatures["serving_default"](images=tf.constant(images))
    stored = transform_output.transform_features_layer()(
        {features.IMAGE_KEY: tf.constant([[i] for i in images])})[features.IMAGE_XF]
    expected = model(pixel_scaling(preprocessing.decode_pixels(stored, SHAPE)),
                     training=False).numpy()
    np.testing.assert_allclose(served[features.PROBABILITIES].numpy(), expected, atol=1e-6)
    unscaled = model(scaling.PixelScaling()(preprocessing.decode_pixels(stored, SHAPE)),
                     training=False).numpy()
    assert np.abs(unscaled - expected).max() > 1e-4  # the scaling is really in the graph
