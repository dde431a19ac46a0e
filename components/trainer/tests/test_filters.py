"""Tests for the handcrafted filter bank: exact edge responses, per-channel behaviour,
trainability per mode, serialisation (config, SavedModel, Keras SavedModel) and responses()."""
import math

import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from lensflow.components.trainer import filters
from lensflow.components.trainer.filters import FilterBank, kernel_bank, responses

SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64)
SCHARR_X = np.array([[-3, 0, 3], [-10, 0, 10], [-3, 0, 3]], dtype=np.float64)
LAPLACIAN = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float64)


def _apply(layer, image):
    """Run a layer on one (H, W, C) image and return the (H, W, C * n) numpy result."""
    return layer(image[np.newaxis].astype(np.float32)).numpy()[0]


def _correlate(image2d, kernel):
    """Independent reference: zero-padded cross-correlation (what TF's 'same' conv computes)."""
    return ndimage.correlate(image2d.astype(np.float64), kernel.astype(np.float64),
                             mode="constant", cval=0.0)


def _vertical_step(size=8):
    image = np.zeros((size, size, 1))
    image[:, size // 2:] = 1.0
    return image


def _tiny_model(mode, kernels=("sobel_x", "laplacian")):
    inputs = tf.keras.Input((8, 8, 1))
    features = FilterBank(kernels, mode=mode, size=3, name="bank")(inputs)
    pooled = tf.keras.layers.GlobalAveragePooling2D()(features)
    outputs = tf.keras.layers.Dense(2, activation="softmax")(pooled)
    return tf.keras.Model(inputs, outputs)


def _random_images(count=4, seed=0):
    return np.random.default_rng(seed).random((count, 8, 8, 1)).astype(np.float32)


# --- kernel_bank ---------------------------------------------------------------------------

def test_unknown_kernel_name_lists_valid_names():
    with pytest.raises(ValueError) as err:
        kernel_bank(["sobel_x", "prewitt"])
    message = str(err.value)
    assert "prewitt" in message
    assert all(name in message for name in filters.KERNEL_NAMES)


@pytest.mark.parametrize("kwargs", [
    {"names": []}, {"names": "sobel_x"}, {"names": ["sobel_x", "sobel_x"]},
    {"names": ["sobel_x"], "size": 4}, {"names": ["sobel_x"], "size": 1},
    {"names": ["gabor"], "gabor_orientations": 0}, {"names": ["gabor"], "gabor_scales": 0},
])
def test_bad_bank_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        kernel_bank(**kwargs)


def test_bad_mode_raises():
    with pytest.raises(ValueError, match="fixed"):
        FilterBank(["sobel_x"], mode="frozen")


def test_small_kernels_are_zero_padded_and_centred():
    bank, names = kernel_bank(["sobel_x", "sobel_y", "scharr_x", "scharr_y", "laplacian"], size=7)
    assert bank.shape == (7, 7, 5)
    assert names == ["sobel_x", "sobel_y", "scharr_x", "scharr_y", "laplacian"]
    expected = [SOBEL_X, SOBEL_X.T, SCHARR_X, SCHARR_X.T, LAPLACIAN]
    for i, kernel in enumerate(expected):
        np.testing.assert_array_equal(bank[2:5, 2:5, i], kernel)
        ring = bank[..., i].copy()
        ring[2:5, 2:5] = 0
        assert not ring.any()


def test_gabor_expands_to_orientations_times_scales():
    bank, names = kernel_bank(["laplacian", "gabor"], size=5, gabor_orientations=4, gabor_scales=2)
    assert bank.shape == (5, 5, 9)
    assert names == ["laplacian"] + [f"gabor_o{o}_s{s}" for s in (1, 2) for o in (0, 45, 90, 135)]


# --- exact responses on known images -------------------------------------------------------

def test_vertical_edge_sobel_responses():
    image = _vertical_step()
    out = _apply(FilterBank(["sobel_x", "sobel_y"], size=5), image)
    sobel_x, sobel_y = out[..., 0], out[..., 1]
    np.testing.assert_array_equal(sobel_x, _correlate(image[..., 0], SOBEL_X))
    np.testing.assert_array_equal(sobel_y, _correlate(image[..., 0], SOBEL_X.T))
    interior = slice(1, 7)
    assert (sobel_x[interior, 3:5] == 4).all()
    assert (sobel_x[interior, 1:3] == 0).all() and (sobel_x[interior, 5:7] == 0).all()
    assert (sobel_y[interior, :] == 0).all()


def test_horizontal_edge_is_the_reverse():
    image = np.transpose(_vertical_step(), (1, 0, 2))
    out = _apply(FilterBank(["sobel_x", "sobel_y", "scharr_y"], size=3), image)
    sobel_x, sobel_y, scharr_y = out[..., 0], out[..., 1], out[..., 2]
    interior = slice(1, 7)
    assert (sobel_y[3:5, interior] == 4).all()
    assert (sobel_y[1:3, interior] == 0).all() and (sobel_y[5:7, interior] == 0).all()
    assert (sobel_x[:, interior] == 0).all()
    assert (scharr_y[3:5, interior] == 16).all()
    np.testing.assert_array_equal(scharr_y, _correlate(image[..., 0], SCHARR_X.T))


def test_laplacian_of_constant_is_zero_inside_and_impulse_gives_kernel():
    layer = FilterBank(["laplacian"], size=5)
    flat = _apply(layer, np.full((7, 7, 1), 0.6))
    assert np.abs(flat[1:-1, 1:-1]).max() == 0
    impulse = np.zeros((7, 7, 1))
    impulse[3, 3] = 1.0
    response = _apply(layer, impulse)[..., 0]
    np.testing.assert_array_equal(response[2:5, 2:5], LAPLACIAN)
    assert np.count_nonzero(response) == np.count_nonzero(LAPLACIAN)


def test_impulse_response_is_rotated_kernel_for_every_kernel():
    """TF conv2d is cross-correlation: an impulse returns the kernel rotated by 180 degrees."""
    names = list(filters.KERNEL_NAMES)
    bank, _ = kernel_bank(names, size=5)
    impulse = np.zeros((9, 9, 1))
    impulse[4, 4] = 1.0
    out = _apply(FilterBank(names, size=5), impulse)
    for i in range(bank.shape[-1]):
        np.testing.assert_allclose(out[2:7, 2:7, i], bank[::-1, ::-1, i], atol=1e-6)


def test_every_kernel_matches_scipy_correlation_on_random_image():
    names = list(filters.KERNEL_NAMES)
    image = np.random.default_rng(1).random((10, 9, 1))
    bank, _ = kernel_bank(names, size=5, gabor_orientations=3, gabor_scales=1)
    out = _apply(FilterBank(names, size=5, gabor_orientations=3, gabor_scales=1), image)
    assert out.shape == (10, 9, bank.shape[-1])
    for i in range(bank.shape[-1]):
        np.testing.assert_allclose(out[..., i], _correlate(image[..., 0], bank[..., i]), atol=1e-5)


# --- LoG and Gabor properties --------------------------------------------------------------

def test_log_is_zero_sum_symmetric_with_negative_centre():
    bank, _ = kernel_bank(["log"], size=7)
    log = bank[..., 0].astype(np.float64)
    assert abs(log.sum()) < 1e-5
    assert log[3, 3] == log.min() < 0
    np.testing.assert_allclose(log, np.rot90(log), atol=1e-7)
    np.testing.assert_allclose(log, log.T, atol=1e-7)
    assert log[log > 0].sum() == pytest.approx(4.0, rel=1e-5)


def test_gabor_kernels_are_zero_mean_and_flat_regions_give_no_response():
    bank, names = kernel_bank(["gabor"], size=5, gabor_orientations=6, gabor_scales=2)
    assert len(names) == 12
    assert np.abs(bank.astype(np.float64).sum(axis=(0, 1))).max() < 1e-5
    out = _apply(FilterBank(["gabor"], size=5, gabor_orientations=6, gabor_scales=2),
                 np.full((9, 9, 1), 0.8))
    assert np.abs(out[2:-2, 2:-2]).max() < 1e-5


def test_gabor_orientations_evenly_spaced_in_half_turn():
    degrees = filters.gabor_orientations_deg(6)
    assert degrees[0] == 0 and max(degrees) < 180
    np.testing.assert_allclose(np.diff(degrees), 30.0)
    bank, names = kernel_bank(["gabor"], size=5, gabor_orientations=4, gabor_scales=1)
    by_name = dict(zip(names, np.moveaxis(bank, -1, 0)))
    np.testing.assert_allclose(by_name["gabor_o90_s1"], by_name["gabor_o0_s1"].T, atol=1e-6)
    np.testing.assert_allclose(by_name["gabor_o135_s1"], by_name["gabor_o45_s1"][:, ::-1],
                               atol=1e-6)


@pytest.mark.parametrize("degrees", [0, 45, 90, 135])
def test_gabor_prefers_the_grating_of_its_orientation(degrees):
    """A grating whose stripes vary along theta excites the gabor_o{theta} kernel most."""
    wavelength = filters.gabor_wavelength(2)
    y, x = np.mgrid[0:24, 0:24].astype(np.float64)
    theta = math.radians(degrees)
    grating = np.cos(2 * math.pi * (x * math.cos(theta) + y * math.sin(theta)) / wavelength)
    layer = FilterBank(["gabor"], size=7, gabor_orientations=4, gabor_scales=2)
    energy = np.abs(_apply(layer, grating[..., None])[4:-4, 4:-4]).mean(axis=(0, 1))
    scale_two = {n: e for n, e in zip(layer.base_names, energy) if n.endswith("_s2")}
    assert max(scale_two, key=scale_two.get) == f"gabor_o{degrees}_s2"


# --- per-channel behaviour and layer attributes --------------------------------------------

def test_each_input_channel_is_filtered_independently():
    step = _vertical_step()[..., 0]
    image = np.stack([step, step.T, np.full_like(step, 0.25)], axis=-1)
    names = ["sobel_x", "sobel_y", "laplacian"]
    layer = FilterBank(names, size=3)
    out = _apply(layer, image)
    assert out.shape == (8, 8, 9)
    bank, _ = kernel_bank(names, size=3)
    for c in range(3):
        for i in range(3):
            expected = _correlate(image[..., c], bank[..., i])
            np.testing.assert_array_equal(out[..., c * 3 + i], expected)
    changed = image.copy()
    changed[..., 1] = np.random.default_rng(2).random((8, 8))
    out_changed = _apply(layer, changed)
    np.testing.assert_array_equal(out_changed[..., 0:3], out[..., 0:3])
    np.testing.assert_array_equal(out_changed[..., 6:9], out[..., 6:9])
    assert not np.array_equal(out_changed[..., 3:6], out[..., 3:6])


def test_kernel_names_and_kernels_follow_output_order():
    layer = FilterBank(["sobel_x", "log"], size=5)
    with pytest.raises(RuntimeError, match="not built"):
        _ = layer.kernel_names
    layer.build((None, 6, 6, 2))
    assert layer.kernel_names == ["sobel_x/c0", "log/c0", "sobel_x/c1", "log/c1"]
    bank, _ = kernel_bank(["sobel_x", "log"], size=5)
    assert layer.kernels.shape == (5, 5, 2, 2)
    for c in range(2):
        np.testing.assert_array_equal(layer.kernels[:, :, c, :], bank)


# --- trainability ---------------------------------------------------------------------------

def _fit_a_little(model):
    images = _random_images(16, seed=3)
    labels = (images.mean(axis=(1, 2, 3)) > 0.5).astype(np.int32)
    model.compile(optimizer=tf.keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
    model.fit(images, labels, batch_size=8, epochs=2, verbose=0)


def test_fixed_kernels_do_not_change_during_training():
    model = _tiny_model("fixed")
    bank_layer = model.get_layer("bank")
    before = bank_layer.kernels.copy()
    dense_before = model.layers[-1].get_weights()[0].copy()
    assert bank_layer.trainable_weights == []
    _fit_a_little(model)
    np.testing.assert_array_equal(bank_layer.kernels, before)
    assert not np.array_equal(model.layers[-1].get_weights()[0], dense_before)


def test_init_kernels_start_as_handcrafted_and_then_learn():
    model = _tiny_model("init")
    bank_layer = model.get_layer("bank")
    bank, _ = kernel_bank(["sobel_x", "laplacian"], size=3)
    np.testing.assert_array_equal(bank_layer.kernels[:, :, 0, :], bank)
    assert len(bank_layer.trainable_weights) == 1
    _fit_a_little(model)
    assert not np.allclose(bank_layer.kernels[:, :, 0, :], bank)


# --- serialisation --------------------------------------------------------------------------

def test_config_round_trip():
    layer = FilterBank(["scharr_x", "gabor"], mode="init", size=7, gabor_orientations=3,
                       gabor_scales=1, name="fb")
    config = layer.get_config()
    clone = FilterBank.from_config(config)
    assert clone.get_config() == config
    assert clone.base_names == layer.base_names
    image = np.random.default_rng(4).random((9, 9, 2))
    np.testing.assert_array_equal(_apply(clone, image), _apply(layer, image))
    restored = tf.keras.layers.deserialize(tf.keras.layers.serialize(layer))
    assert isinstance(restored, FilterBank) and restored.get_config() == config


def test_tf_saved_model_export_gives_identical_outputs(tmp_path):
    model = _tiny_model("init", kernels=("sobel_x", "gabor"))
    images = _random_images()
    expected = model(images).numpy()
    tf.saved_model.save(model, str(tmp_path / "sm"))
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    serve = loaded.signatures["serving_default"]
    (actual,) = serve(tf.constant(images)).values()
    np.testing.assert_array_equal(actual.numpy(), expected)


def test_keras_model_save_and_load_gives_identical_outputs(tmp_path):
    model = _tiny_model("fixed", kernels=("sobel_y", "log"))
    images = _random_images()
    model.save(str(tmp_path / "keras_sm"))
    reloaded = tf.keras.models.load_model(str(tmp_path / "keras_sm"))
    assert isinstance(reloaded.get_layer("bank"), FilterBank)
    assert reloaded.get_layer("bank").get_config() == model.get_layer("bank").get_config()
    np.testing.assert_array_equal(reloaded(images).numpy(), model(images).numpy())


# --- responses() ----------------------------------------------------------------------------

def test_responses_from_layer_are_named_per_kernel_maps():
    layer = FilterBank(["sobel_x", "laplacian"], size=3)
    image = np.random.default_rng(5).random((6, 7, 3)).astype(np.float32)
    maps = responses(layer, image)
    assert list(maps) == ["sobel_x", "laplacian"]
    out = _apply(layer, image)
    for i, name in enumerate(maps):
        assert maps[name].shape == (6, 7, 3)
        for c in range(3):
            np.testing.assert_array_equal(maps[name][..., c], out[..., c * 2 + i])


def test_responses_through_a_model_see_the_preprocessed_input():
    inner_in = tf.keras.Input((8, 8, 1))
    inner = tf.keras.Model(inner_in, FilterBank(["sobel_x"], size=3, name="bank")(inner_in))
    outer_in = tf.keras.Input((8, 8, 1))
    scaled = tf.keras.layers.Rescaling(1.0 / 255)(outer_in)
    pooled = tf.keras.layers.GlobalAveragePooling2D()(inner(scaled))
    model = tf.keras.Model(outer_in, tf.keras.layers.Dense(2)(pooled))
    image = _vertical_step() * 255.0
    maps = responses(model, image.astype(np.float32))
    np.testing.assert_allclose(maps["sobel_x"][..., 0], _correlate(image[..., 0] / 255.0, SOBEL_X),
                               atol=1e-5)


def test_responses_needs_one_bank_and_a_single_image():
    inputs = tf.keras.Input((8, 8, 1))
    first = FilterBank(["sobel_x"], size=3, name="first")(inputs)
    second = FilterBank(["laplacian"], size=3, name="second")(inputs)
    model = tf.keras.Model(inputs, tf.keras.layers.Concatenate()([first, second]))
    image = _random_images(1)[0]
    with pytest.raises(ValueError, match="exactly one FilterBank"):
        responses(model, image)
    maps = responses(model, image, bank_name="second")
    assert list(maps) == ["laplacian"]
    with pytest.raises(ValueError, match=r"\(H, W, C\)"):
        responses(model.get_layer("first"), image[..., 0])
    with pytest.raises(ValueError, match="FilterBank or a Keras model"):
        responses("not a model", image)


def test_responses_from_sequential_model_with_bank_first():
    model = tf.keras.Sequential([tf.keras.Input((8, 8, 1)), FilterBank(["sobel_y"], size=3),
                                 tf.keras.layers.GlobalAveragePooling2D()])
    image = np.transpose(_vertical_step(), (1, 0, 2)).astype(np.float32)
    maps = responses(model, image)
    np.testing.assert_array_equal(maps["sobel_y"][..., 0], _correlate(image[..., 0], SOBEL_X.T))


def test_responses_rejects_subclassed_models():
    class Wrapper(tf.keras.Model):
        def __init__(self):
            super().__init__()
            self.bank = FilterBank(["sobel_x"], size=3)

        def call(self, inputs):
            return self.bank(inputs)

    model = Wrapper()
    image = _random_images(1)[0]
    model(image[np.newaxis])
    with pytest.raises(ValueError, match="functional or Sequential"):
        responses(model, image)
