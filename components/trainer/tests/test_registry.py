"""One registry per kind of thing (``pipeline/registry.py``): model families and backbones. The
config, the CLI, the Trainer, the precision policy and ``lensflow models`` all read it, and a new
family is one registration."""
import json

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from lensflow.components.trainer import precision
from lensflow.components.trainer.models import build_model
from lensflow.pipeline.cli import main
from lensflow.components.trainer import backbones
from lensflow.pipeline.config import ConfigError, LensflowConfig, choices, load_config
from lensflow.pipeline.registry import AUTO, BACKBONES, FAMILIES, Family


def build_tiny(input_shape, num_classes, *, weights=None, options=None, cache_dir=None):
    """A family registered only by this test: flatten + softmax."""
    del weights, options, cache_dir
    inputs = tf.keras.Input(input_shape)
    outputs = tf.keras.layers.Dense(num_classes, activation="softmax")(
        tf.keras.layers.Flatten()(inputs))
    return tf.keras.Model(inputs, outputs, name="tiny")


def test_config_and_cli_choices_are_the_registry():
    assert choices("model.family") == (AUTO, *FAMILIES)  # auto: chosen from the data
    result = CliRunner().invoke(main, ["run", "--model", "no_such_family"])
    assert result.exit_code != 0 and "no_such_family" in result.output
    for family in FAMILIES:
        assert family in result.output


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_registered_family_builds_to_its_contract(name):
    family = FAMILIES[name]
    cfg = LensflowConfig().replace(**{
        "model.family": name, "model.weights": None, "model.widths": [4, 8],
        "model.depths": [0, 1], "model.backbone_input_size": 32, "image.size": 16})
    model = build_model(cfg, (16, 16, 1), 3)
    probabilities = model(np.zeros((2, 16, 16, 1), np.float32)).numpy()
    assert probabilities.shape == (2, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert cfg.effective_normalize is family.normalize
    assert (family.load_unfreeze() is not None) == bool(family.unfreeze)


def test_a_new_family_is_one_registration(monkeypatch, tmp_path):
    tiny = Family("tiny", "flatten + softmax (test only)",
                  "lensflow.components.trainer.tests.test_registry:build_tiny", normalize=False,
                  auto_float32="test: keep float32")
    monkeypatch.setitem(FAMILIES, "tiny", tiny)
    cfg = LensflowConfig().replace(**{"model.family": "tiny"})
    assert cfg.effective_normalize is False
    assert build_model(cfg, (8, 8, 1), 4).name == "tiny"
    assert precision.resolve("auto", "tiny", cpuinfo_path=str(tmp_path / "none"),
                             gpu=False) == "float32"
    listed = CliRunner().invoke(main, ["models", "--json", "--home", str(tmp_path)])
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output)["families"]["tiny"] == tiny.description


def test_backbone_choices_everywhere_are_the_registry(tmp_path):
    assert choices("model.backbone") == tuple(BACKBONES) == backbones.BACKBONE_NAMES
    with pytest.raises(ConfigError, match="model.backbone='no_such_net'.*efficientnet_lite0"):
        load_config(None, {"model.backbone": "no_such_net"})
    refused = CliRunner().invoke(main, ["run", "--backbone", "no_such_net"])
    assert refused.exit_code != 0 and "mobilenet_v2" in refused.output
    listed = CliRunner().invoke(main, ["models", "--json", "--home", str(tmp_path)])
    assert listed.exit_code == 0, listed.output
    entries = json.loads(listed.output)["backbones"]
    assert [entry["name"] for entry in entries] == list(BACKBONES)
    for entry in entries:
        assert entry["licence"] == BACKBONES[entry["name"]].licence
        assert entry["weights_source"] == BACKBONES[entry["name"]].weights_source


def test_readme_name_lists_are_the_registries():
    """The user's document lists the same names the registries hold (families, presets, the
    compare variants), so a registration that is not documented, or a stale name, fails here."""
    import re

    from lensflow.pipeline.compare.variants import VARIANTS
    from lensflow.pipeline.config import REPO_ROOT
    from lensflow.pipeline.registry import AUGMENT_PRESETS

    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")

    def listed(flag):
        return tuple(re.search(rf"`{flag} ([a-z_0-9|]+)`", readme).group(1).split("|"))

    assert listed("--model") == (AUTO, *FAMILIES)
    assert listed("--augment") == tuple(AUGMENT_PRESETS)
    variants = re.search(r"--variants ([a-z_,]+)", readme).group(1).split(",")
    assert variants == list(VARIANTS)
