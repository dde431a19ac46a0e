"""train.precision: bfloat16 compute with float32 outputs, chosen per CPU, never leaking."""
import numpy as np
import pytest
import tensorflow as tf

from lensflow.components.trainer import precision
from lensflow.components.trainer.models import build_model, tta
from lensflow.pipeline.config import ConfigError, LensflowConfig, validate

XEON_AMX = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
EPYC_AVX2 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n"


def small_cfg(**dotted):
    return LensflowConfig().replace(**{"model.family": "compact_resnet", "model.widths": [4, 8],
                                       "model.depths": [0, 1], "model.dropout": 0.0, **dotted})


@pytest.mark.parametrize("text, native", [(XEON_AMX, True), (EPYC_AVX2, False), ("", False)])
def test_auto_picks_bfloat16_only_where_the_cpu_has_it(tmp_path, text, native):
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    assert precision.native_bfloat16(str(path)) is native
    assert precision.resolve("auto", cpuinfo_path=str(path), gpu=False) == \
        ("mixed_bfloat16" if native else "float32")
    assert precision.resolve("float32", cpuinfo_path=str(path)) == "float32"
    assert precision.resolve("mixed_bfloat16", cpuinfo_path=str(path)) == "mixed_bfloat16"


def test_missing_cpuinfo_means_float32(tmp_path):
    assert precision.resolve("auto", cpuinfo_path=str(tmp_path / "absent"), gpu=False) == "float32"


def test_auto_keeps_families_that_are_slower_in_bfloat16_in_float32(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(XEON_AMX)
    assert precision.resolve("auto", "transfer", str(path), gpu=False) == "float32"
    assert precision.resolve("auto", "compact_resnet", str(path), gpu=False) == "mixed_bfloat16"
    assert precision.resolve("mixed_bfloat16", "transfer", str(path)) == "mixed_bfloat16"


@pytest.mark.parametrize("flip_tta", [False, True])
def test_bfloat16_model_computes_in_bfloat16_outputs_float32_and_trains(flip_tta):
    model = build_model(small_cfg(**{"train.precision": "mixed_bfloat16",
                                     "model.flip_tta": flip_tta}), (12, 12, 1), 3)
    assert tf.keras.mixed_precision.global_policy().name == "float32"
    inner = tta.unwrap(model)
    assert inner.get_layer("stem_conv").compute_dtype == "bfloat16"
    assert inner.get_layer("stem_conv").kernel.dtype == tf.float32
    x = np.random.default_rng(0).normal(size=(16, 12, 12, 1)).astype("float32")
    y = np.arange(16) % 3
    probabilities = model.predict(x, verbose=0)
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    model.compile(tf.keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=15, verbose=0)
    assert model.evaluate(x, y, verbose=0) < before


def test_float32_default_builds_float32_layers():
    layer = build_model(small_cfg(), (12, 12, 1), 3).get_layer("stem_conv")
    assert layer.compute_dtype == "float32"


def test_policy_is_restored_when_building_fails():
    with pytest.raises(ValueError, match="no_such_backbone"):
        build_model(small_cfg(**{"train.precision": "mixed_bfloat16",
                                 "model.family": "transfer", "model.weights": "imagenet",
                                 "model.backbone": "no_such_backbone"}), (12, 12, 1), 3)
    assert tf.keras.mixed_precision.global_policy().name == "float32"


def test_unknown_precision_is_rejected():
    with pytest.raises(ConfigError, match="train.precision"):
        validate(small_cfg(**{"train.precision": "float16"}))


def test_build_model_resolves_auto_for_its_family(monkeypatch):
    """On a CPU with native bfloat16, ``auto`` builds compact_resnet in bfloat16, transfer in float32."""
    monkeypatch.setattr(precision, "native_bfloat16", lambda cpuinfo_path=precision.CPUINFO: True)
    monkeypatch.setattr(precision, "gpu_present", lambda: False)
    resnet = build_model(small_cfg(**{"train.precision": "auto"}), (12, 12, 1), 3)
    assert resnet.get_layer("stem_conv").compute_dtype == "bfloat16"
    transfer = build_model(small_cfg(**{"train.precision": "auto", "model.family": "transfer",
                                        "model.weights": None, "model.backbone_input_size": 32}),
                           (12, 12, 1), 3)
    assert {layer.compute_dtype for layer in transfer.layers} == {"float32"}


def test_auto_picks_float16_where_there_is_a_gpu(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(XEON_AMX)
    assert precision.resolve("auto", "transfer", str(path), gpu=True) == "mixed_float16"
    assert precision.resolve("auto", "compact_resnet", str(path), gpu=True) == "mixed_float16"
    assert precision.resolve("float32", "compact_resnet", str(path), gpu=True) == "float32"
    assert precision.resolve("auto", gpu=None) == \
        ("mixed_float16" if tf.config.list_physical_devices("GPU") else
         precision.resolve("auto", gpu=False))


def test_float16_model_scales_its_loss_and_outputs_float32():
    """mixed_float16 builds float16 layers with float32 weights and a float32 softmax, and
    compiling wraps the optimiser in a LossScaleOptimizer (float16 gradients underflow without
    it); runs on a CPU too."""
    model = build_model(small_cfg(**{"train.precision": "mixed_float16"}), (12, 12, 1), 3)
    assert tf.keras.mixed_precision.global_policy().name == "float32"
    assert model.get_layer("stem_conv").compute_dtype == "float16"
    assert model.get_layer("stem_conv").kernel.dtype == tf.float32
    model.compile(tf.keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    assert isinstance(model.optimizer, tf.keras.mixed_precision.LossScaleOptimizer)
    x = np.random.default_rng(0).normal(size=(16, 12, 12, 1)).astype("float32")
    assert model.predict(x, verbose=0).dtype == np.float32


@pytest.mark.skipif(not tf.config.list_physical_devices("GPU"),
                    reason="no GPU here: mixed_float16 training on a GPU is not exercised")
def test_float16_model_trains_on_a_gpu():
    model = build_model(small_cfg(**{"train.precision": "auto"}), (12, 12, 1), 3)
    assert model.get_layer("stem_conv").compute_dtype == "float16"
    x = np.random.default_rng(0).normal(size=(32, 12, 12, 1)).astype("float32")
    y = np.arange(32) % 3
    model.compile(tf.keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    before = model.evaluate(x, y, verbose=0)
    with tf.device("/GPU:0"):
        model.fit(x, y, epochs=15, verbose=0)
    assert model.evaluate(x, y, verbose=0) < before
