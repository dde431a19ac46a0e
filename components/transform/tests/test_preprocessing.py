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


def stored(row, shape) -> np.ndarray:
    """A transformed row's image as the model receives it (uint8 pixels)."""
    return preprocessing.decode_pixels(tf.constant([row[features.IMAGE_XF]]), shape).numpy()[0]


@pytest.mark.slow  # a tf.Transform Beam pipeline of its own
def test_constant_images_are_stored_as_exact_uint8_and_labels_keep_names():
    black, white = png(np.zeros((8, 8))), png(np.full((8, 8), 255))
    rows = [{features.IMAGE_KEY: [black], features.LABEL_KEY: [b"boot"]},
            {features.IMAGE_KEY: [white], features.LABEL_KEY: [b"bag"]},
            {features.IMAGE_KEY: [white], features.LABEL_KEY: [b"bag"]},
            {features.IMAGE_KEY: [black], features.LABEL_KEY: [b"boot"]}]
    transformed, output = analyse(rows, config())
    spec = output.transformed_feature_spec()[features.IMAGE_XF]
    assert spec.dtype == tf.string and spec.shape == []
    for row, expected in zip(transformed, (0, 255, 255, 0)):
        image = stored(row, (8, 8, 1))
        assert image.dtype == np.uint8 and image.shape == (8, 8, 1)
        assert (image == expected).all()
    vocab = [v.decode() for v in output.vocabulary_by_name(features.LABEL_VOCAB_NAME)]
    assert sorted(vocab) == ["bag", "boot"]
    for row, name in zip(transformed, ("boot", "bag", "bag", "boot")):
        assert vocab[int(row[features.LABEL_XF])] == name


def test_a_224_px_rgb_image_is_stored_in_at_most_1_2_times_its_uint8_pixels():
    rng = np.random.default_rng(3)
    photo = png(rng.integers(0, 256, (300, 260, 3)))
    cfg = LensflowConfig(image=ImageConfig(size=224, color_mode="rgb"))
    transformed, _ = analyse([{features.IMAGE_KEY: [photo], features.LABEL_KEY: [b"x"]}], cfg)
    example = tf.train.Example(features=tf.train.Features(feature={
        features.IMAGE_XF: tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[transformed[0][features.IMAGE_XF]])),
        features.LABEL_XF: tf.train.Feature(
            int64_list=tf.train.Int64List(value=[int(transformed[0][features.LABEL_XF])]))}))
    assert len(example.SerializeToString()) <= 1.2 * 224 * 224 * 3


def test_stored_pixels_are_the_rounded_resized_image():
    rng = np.random.default_rng(1)
    encoded = [png(rng.integers(0, 256, (13, 9, 3))) for _ in range(3)]
    cfg = ImageConfig(size=8, color_mode="rgb", resize_policy="pad")
    floats = preprocessing.decode_and_resize(tf.constant(encoded), cfg).numpy()
    pixels = preprocessing.decode_pixels(
        preprocessing.encode_pixels(preprocessing.to_uint8(tf.constant(floats))), (8, 8, 3))
    assert pixels.dtype == tf.uint8
    np.testing.assert_array_equal(pixels.numpy(), np.round(floats * 255).astype(np.uint8))
    assert np.abs(pixels.numpy() / 255.0 - floats).max() <= 0.5 / 255 + 1e-6


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
        assert row[features.IMAGE_XF] == got  # the same stored bytes, so the same pixels


@pytest.mark.slow  # a tf.Transform Beam pipeline of its own
def test_rgb_mode_converts_grey_and_jpeg_decodes():
    grey = png(np.full((8, 8), 200))
    buf = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), (255, 0, 0), np.uint8)).save(buf, format="JPEG", quality=100)
    rows = [{features.IMAGE_KEY: [grey], features.LABEL_KEY: [b"x"]},
            {features.IMAGE_KEY: [buf.getvalue()], features.LABEL_KEY: [b"y"]}]
    cfg = LensflowConfig(image=ImageConfig(size=8, color_mode="rgb", normalize=False))
    transformed, _ = analyse(rows, cfg)
    grey_out, red_out = (stored(r, (8, 8, 3)).astype(int) for r in transformed)
    assert (grey_out == 200).all()
    np.testing.assert_allclose(red_out[..., 0], 255, atol=5)
    np.testing.assert_allclose(red_out[..., 1:], 0, atol=5)


@pytest.mark.parametrize("policy,expected_border", [("pad", 0.0), ("crop", 1.0), ("stretch", 1.0)])
def test_resize_policies_on_a_wide_image(policy, expected_border):
    wide = np.ones((4, 16, 1), np.float32)
    out = preprocessing.resize(tf.constant(wide), 8, policy).numpy()
    assert out.shape == (8, 8, 1)
    np.testing.assert_allclose(out[0, :, 0], expected_border, atol=1e-5)
    np.testing.assert_allclose(out[4, :, 0], 1.0, atol=1e-5)
