"""preprocessing_fn: known pixels in, known values out; the same graph at serving time."""
import io
import os
import tempfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from PIL import Image
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from lensflow.components.transform import features, preprocessing
from lensflow.pipeline.config import CUSTOM_CONFIG_KEY, ImageConfig, LensflowConfig


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array.astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


RAW_SPEC = {features.IMAGE_KEY: tf.io.FixedLenFeature([1], tf.string),
            features.LABEL_KEY: tf.io.FixedLenFeature([1], tf.string)}


def analyse(rows, cfg: LensflowConfig):
    """Run tf.Transform (Beam, in-process) over in-memory rows; return (outputs, TFTransformOutput)."""
    custom = {CUSTOM_CONFIG_KEY: cfg.to_json()}
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(RAW_SPEC))
    out_dir = tempfile.mkdtemp()
    with tft_beam.Context(temp_dir=os.path.join(out_dir, "tmp"), force_tf_compat_v1=False):
        (transformed, _), transform_fn = (rows, metadata) | tft_beam.AnalyzeAndTransformDataset(
            lambda inputs: preprocessing.preprocessing_fn(inputs, custom))
        _ = transform_fn | tft_beam.WriteTransformFn(out_dir)
    return transformed, tft.TFTransformOutput(out_dir)


def config(**image) -> LensflowConfig:
    return LensflowConfig(image=ImageConfig(**{"size": 8, **image}))


@pytest.mark.slow  # a tf.Transform Beam pipeline of its own
def test_constant_images_normalise_to_known_values_and_labels_keep_names():
    black, white = png(np.zeros((8, 8))), png(np.full((8, 8), 255))
    rows = [{features.IMAGE_KEY: [black], features.LABEL_KEY: [b"boot"]},
            {features.IMAGE_KEY: [white], features.LABEL_KEY: [b"bag"]},
            {features.IMAGE_KEY: [white], features.LABEL_KEY: [b"bag"]},
            {features.IMAGE_KEY: [black], features.LABEL_KEY: [b"boot"]}]
    transformed, output = analyse(rows, config())
    # mean 0.5, std 0.5 over the training data -> black = -1, white = +1
    for row, expected in zip(transformed, (-1.0, 1.0, 1.0, -1.0)):
        image = np.asarray(row[features.IMAGE_XF])
        assert image.shape == (8, 8, 1)
        np.testing.assert_allclose(image, expected, atol=1e-3)
    vocab = [v.decode() for v in output.vocabulary_by_name(features.LABEL_VOCAB_NAME)]
    assert sorted(vocab) == ["bag", "boot"]
    for row, name in zip(transformed, ("boot", "bag", "bag", "boot")):
        assert vocab[int(row[features.LABEL_XF])] == name


def test_serving_graph_gives_the_same_output_as_training_for_the_same_image():
    rng = np.random.default_rng(0)
    images = [png(rng.integers(0, 256, (12, 10))) for _ in range(4)]
    rows = [{features.IMAGE_KEY: [img], features.LABEL_KEY: [b"a" if i % 2 else b"b"]}
            for i, img in enumerate(images)]
    transformed, output = analyse(rows, config())
    layer = output.transform_features_layer()
    served = layer({features.IMAGE_KEY: tf.constant([[img] for img in images])})
    assert features.LABEL_XF not in served
    for row, got in zip(transformed, served[features.IMAGE_XF].numpy()):
        np.testing.assert_allclose(np.asarray(row[features.IMAGE_XF]), got, atol=1e-5)


@pytest.mark.slow  # a tf.Transform Beam pipeline of its own
def test_rgb_mode_converts_grey_and_jpeg_decodes():
    grey = png(np.full((8, 8), 200))
    buf = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), (255, 0, 0), np.uint8)).save(buf, format="JPEG", quality=100)
    rows = [{features.IMAGE_KEY: [grey], features.LABEL_KEY: [b"x"]},
            {features.IMAGE_KEY: [buf.getvalue()], features.LABEL_KEY: [b"y"]}]
    cfg = LensflowConfig(image=ImageConfig(size=8, color_mode="rgb", normalize=False))
    transformed, _ = analyse(rows, cfg)
    grey_out, red_out = (np.asarray(r[features.IMAGE_XF]) for r in transformed)
    assert grey_out.shape == red_out.shape == (8, 8, 3)
    np.testing.assert_allclose(grey_out, 200 / 255, atol=1e-3)
    np.testing.assert_allclose(red_out[..., 0], 1.0, atol=0.02)
    np.testing.assert_allclose(red_out[..., 1:], 0.0, atol=0.02)


@pytest.mark.parametrize("policy,expected_border", [("pad", 0.0), ("crop", 1.0), ("stretch", 1.0)])
def test_resize_policies_on_a_wide_image(policy, expected_border):
    wide = np.ones((4, 16, 1), np.float32)
    out = preprocessing.resize(tf.constant(wide), 8, policy).numpy()
    assert out.shape == (8, 8, 1)
    np.testing.assert_allclose(out[0, :, 0], expected_border, atol=1e-5)
    np.testing.assert_allclose(out[4, :, 0], 1.0, atol=1e-5)
